#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tanoa_core::fuzzing::peer_messages(data));
