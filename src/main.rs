//! `bootstrap`: from a YAML inventory of Ubuntu hosts to a kubeadm cluster over SSH.
//!
//! The pipeline, one module per stage: inventory -> ssh -> facts -> plan -> phases -> ui.

#![allow(dead_code)]

mod inventory;
mod ssh;
mod ui;

fn main() {}
