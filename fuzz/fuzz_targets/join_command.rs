#![no_main]
// The body is bootstrap::fuzz::join_command, shared with tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootstrap::fuzz::join_command(data));
