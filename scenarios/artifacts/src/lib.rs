//! Paths of the scenario components, built for `wasm32-wasip2` by this crate's build script from the
//! guest crates under `scenarios/`. Tests load the real components through these constants; the
//! `install-scenarios` binary copies the non-fixture ones next to their sources.
//!
//! Each guest has a constant named after its package (`GSM8K`, `FAULTY`, ...), plus [`ALL`] and
//! [`SCENARIOS`].

include!(concat!(env!("OUT_DIR"), "/components.rs"));
