//! The statistics runner reports, apart from the results they are computed on: summaries of a distribution
//! of measurements (`distribution`), bootstrap confidence intervals (`bootstrap`), the exact McNemar test
//! (`mcnemar`), the paired comparison of two runs on the samples they share (`paired`), and what a LoRA
//! adapter costs against its base run (`overhead`). The first three are pure functions of numbers, seeded so
//! that the same values give the same interval everywhere; the last two apply them to results folders.

pub mod bootstrap;
pub mod distribution;
pub mod mcnemar;
pub mod overhead;
pub mod paired;

pub use distribution::{Distribution, percentile};
