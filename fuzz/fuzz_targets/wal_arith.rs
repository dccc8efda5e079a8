//! Fuzz target `wal_arith`: see `checks::wal_arith` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| barman_cloud_exporter_fuzz::checks::wal_arith(data));
