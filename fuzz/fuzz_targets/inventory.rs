#![no_main]
// The body is bootstrap::fuzz::inventory, shared with tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootstrap::fuzz::inventory(data));
