pub mod inventory;
pub mod versions;
pub mod runlog;
pub mod ssh;
pub mod ui;
