//! What a run measured, written so nothing finished is ever lost: per-sample records appended to
//! `samples.jsonl` as samples finish, a `summary.json` with provenance and aggregates, a Markdown summary,
//! `samples.csv` for spreadsheets, and the terminal table.

pub mod csv;
pub mod folder;
pub mod paired_table;
pub mod record;
pub mod summary;
pub mod table;
pub mod writer;

pub use record::{ChoiceRecord, SampleError, SampleRecord, SampleStatus, SampleTimings, Stage};
pub use summary::{Aggregates, MetricSpec, MetricSummary, ModelThroughput, RunStatus, RunSummary};
pub use writer::RunWriter;
