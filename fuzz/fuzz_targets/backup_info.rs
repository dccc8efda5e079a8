//! Fuzz target `backup_info`: see `checks::backup_info` for what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| barman_cloud_exporter_fuzz::checks::backup_info(data));
