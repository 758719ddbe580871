pub mod inventory;
pub mod versions;
