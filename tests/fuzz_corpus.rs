//! The fuzz corpus as regression tests (issue 12, item 5): every input in
//! fuzz/corpus/TARGET (seeds, and what `cargo fuzz run TARGET` found interesting or
//! crashing, once fixed) goes through the target's body again, on stable. No root, no
//! network.

use std::path::Path;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in bootstrap::fuzz::TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{}: no inputs", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let ran = std::panic::catch_unwind(|| target(&data));
            assert!(ran.is_ok(), "{name} panicked on {}", input.display());
        }
    }
}
