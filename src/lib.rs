//! The `bootstrap` library: the pipeline inventory -> ssh -> facts -> plan -> phases ->
//! ui/report, and the commands layer (`cli`, `commands`) that src/main.rs dispatches to.
//! Imports go one way, from the commands down the pipeline (docs/architecture.md;
//! tests/architecture.rs fails on a cycle), so each module can be read and tested alone.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod duration;
pub mod embedded;
pub mod exit;
pub mod facts;
pub mod failure;
#[doc(hidden)]
pub mod fuzz;
pub mod inventory;
pub mod kubeconfig;
pub mod node_address;
pub mod phases;
pub mod plan;
pub mod playbook;
pub mod private_file;
pub mod report;
pub mod reset;
pub mod runlog;
pub mod ssh;
pub mod ui;
pub mod versions;
