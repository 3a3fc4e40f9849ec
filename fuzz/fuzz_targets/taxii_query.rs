#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tanoa_daemon::fuzzing::taxii_query(data));
