//! The scenario SDK: everything a Rust scenario needs so that the scenario itself is one short file.
//! It generates the bindings for `wit/scenario.wit` once and re-exports their types, exports a scenario
//! with [`export_scenario!`], and offers the pieces benchmarks share: describing the scenario ([`metadata`]),
//! reading records ([`records`]), few-shot chats ([`chat`]), multiple-choice prompts and scoring
//! ([`multiple_choice`]), answer extraction ([`numbers`], [`choice`], [`latex`] with [`expression`],
//! [`label`]), metrics ([`text`], [`rouge`], [`metrics`]), option checks and the cell that keeps what
//! `configure` decided ([`config`]), logging ([`log`]) and, natively, a test harness ([`harness`])
//! that runs a scenario's `Guest` implementation in unit tests without a host. See scenarios/README.md.

/// The generated bindings for the `scenario` world; scenario crates use the re-exports below instead.
#[allow(clippy::too_many_arguments, missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "scenario",
        pub_export_macro: true,
        export_macro_name: "export_scenario_bindings",
        default_bindings_module: "::runner_scenario_sdk::bindings",
    });
}

pub mod chat;
pub mod choice;
pub mod config;
pub mod decode;
pub mod expression;
#[cfg(not(target_arch = "wasm32"))]
pub mod harness;
pub mod label;
pub mod latex;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod multiple_choice;
pub mod numbers;
pub mod records;
pub mod rouge;
pub mod text;

pub use bindings::Guest;
pub use bindings::runner::scenario::host::LogLevel;
pub use bindings::runner::scenario::types::*;
pub use records::Row;

/// Exports a type implementing [`Guest`] as the component's scenario: `export_scenario!(MyScenario);`.
#[macro_export]
macro_rules! export_scenario {
    ($ty:ident) => {
        $crate::bindings::export_scenario_bindings!($ty with_types_in $crate::bindings);
    };
}
