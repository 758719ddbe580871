//! Gives the library and `tb-sim` the same source id: a hash of every file under src/.
//! `cargo test --test NAME` of the bootstrap package rebuilds this library but not the
//! `tb-sim` binary the hosts run (only `cargo test -p testbed` or `cargo build -p testbed`
//! builds it), so a test could quietly run an old stand-in; `sim_binary` compares the two
//! ids and refuses a stale one with how to rebuild it.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src");
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    files.sort();
    // DefaultHasher::new() has fixed keys: the same within one toolchain, which is all
    // that is needed (the library and the binary come from one build of this script).
    let mut h = DefaultHasher::new();
    for f in &files {
        f.hash(&mut h);
        std::fs::read(f).expect("read a source file").hash(&mut h);
    }
    println!("cargo:rustc-env=TESTBED_SOURCE_ID={:016x}", h.finish());
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
