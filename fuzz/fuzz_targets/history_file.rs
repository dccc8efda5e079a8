//! Fuzz target `history_file`: see `checks::history_file` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| barman_cloud_exporter_fuzz::checks::history_file(data));
