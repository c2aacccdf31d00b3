#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| xlreg_fuzzing::session_msg(data));
