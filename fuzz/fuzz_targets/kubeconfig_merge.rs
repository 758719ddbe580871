#![no_main]
// The body is bootstrap::fuzz::kubeconfig_merge, shared with tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bootstrap::fuzz::kubeconfig_merge(data));
