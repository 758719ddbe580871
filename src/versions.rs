//! The supported-versions table, re-exported at the crate root for convenience; it lives
//! in `inventory::versions` so the inventory module compiles on its own.

pub use crate::inventory::versions::*;
