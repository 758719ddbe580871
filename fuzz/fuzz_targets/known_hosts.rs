#![no_main]
// The body is bootstrap::fuzz::known_hosts, shared with tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootstrap::fuzz::known_hosts(data));
