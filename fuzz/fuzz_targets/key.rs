//! Fuzz target `key`: see `checks::key` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| barman_cloud_exporter_fuzz::checks::key(data));
