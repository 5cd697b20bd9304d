//! `cargo xtask`: repository tasks (placeholder until implemented).
fn main() {}
