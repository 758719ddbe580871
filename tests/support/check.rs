//! `check!`, shared by both crates' end-to-end tests: tests/support/mod.rs (the
//! bootstrap tests) and testbed/tests/common/mod.rs (the testbed's) each include this
//! file as a module of their own, so the macro has one definition.

/// Runs one of the checks that share a cluster (a test function that builds one cluster
/// and puts it through several checks in turn, because CI's time goes to building
/// clusters), announced on stderr first as `BINARY::TEST: CHECK` so a failure says which check
/// it was: `check!(conntrack_is_installed(&tb))`. (Unused in some test binaries, as the
/// rest of this module.)
#[allow(unused_macros)]
macro_rules! check {
    ($check:ident($($arg:expr),* $(,)?)) => {{
        fn here() {}
        let test = std::any::type_name_of_val(&here).trim_end_matches("::here");
        eprintln!("{test}: {}", stringify!($check));
        $check($($arg),*)
    }};
}
#[allow(unused_imports)]
pub(crate) use check;
