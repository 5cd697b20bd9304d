//! The scenario host: loads a benchmark scenario (a WebAssembly component implementing
//! `wit/scenario.wit`) and calls it in a sandbox. The guest gets WASI preview 2 with nothing granted
//! (no files, environment, arguments, network or stdin), fixed clocks and seeded randomness (the same
//! inputs give byte-identical prompts), a memory cap and a time limit per call. A trap or timeout
//! fails only that call: the instance is rebuilt and configured again, so the next call works. What
//! the guest returns is checked (empty prompts, undeclared or NaN metrics, duplicate sample ids...)
//! and refused as a scenario error naming the scenario and the sample.

mod cache;
pub mod fewshot;
mod imports;
mod sandbox;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, WasmBacktrace};

use crate::prompt::{ChatMessage, Prompt as EnginePrompt, Role as EngineRole};
pub use cache::{CacheOutcome, ComponentCache, LoadReport};
use sandbox::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        world: "scenario",
        path: "../wit",
        additional_derives: [Clone, PartialEq],
    });
}

pub use bindings::runner::scenario::host::LogLevel;
pub use bindings::runner::scenario::types::{
    Aggregation, ChoiceLikelihood, ConfigError, DatasetError, DatasetInfo, DatasetInput, EmbeddedDataset, Field,
    GenerationDefaults, HfDataset, Message, Metadata, Metric, MetricInfo, ModelOutput, NamedFile, Options,
    Prompt as WitPrompt, Record, Request, Role as WitRole, Sample, Score, ScoredSample, ScoringMode, ScoringModes,
    SubsetInfo, Value,
};

/// The WIT package every scenario must be built against (wit/scenario.wit)...
pub const WIT_PACKAGE: &str = "runner:scenario";
/// ...and its version; the host refuses components that import another version.
pub const WIT_VERSION: &str = "0.3.0";

/// How often the epoch ticker advances; the granularity of the per-call time limit.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resources one scenario may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioLimits {
    /// Linear memory the guest may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall time one call into the guest may take.
    pub call_timeout: Duration,
}

impl Default for ScenarioLimits {
    fn default() -> Self {
        ScenarioLimits { memory_bytes: 512 << 20, call_timeout: Duration::from_secs(30) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot load scenario {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("scenario trapped in `{function}`: {message}{}", stderr_suffix(stderr))]
    Trap { function: &'static str, message: String, stderr: String },
    #[error("scenario exceeded its time limit of {limit:?} in `{function}`")]
    Timeout { function: &'static str, limit: Duration },
    #[error("scenario exceeded its memory limit of {} MiB in `{function}`{}", limit_bytes >> 20, stderr_suffix(stderr))]
    MemoryLimit { function: &'static str, limit_bytes: usize, stderr: String },
    #[error("scenario `{function}` failed: {message}")]
    Guest { function: &'static str, message: String },
    #[error("scenario {scenario} rejected option `{option}`: {message}")]
    Config { scenario: String, option: String, message: String },
    #[error("{file}{}{}{}: {message}", row.map(|r| format!(", record {r}")).unwrap_or_default(),
        location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default(),
        field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Dataset { file: String, row: Option<u32>, location: Option<String>, field: Option<String>, message: String },
    /// The guest returned something the contract forbids: a scenario bug, not a model or data problem.
    #[error("scenario {scenario} returned malformed data from `{function}`{}: {message}",
        sample.as_ref().map(|s| format!(" for sample {s:?}")).unwrap_or_default())]
    Malformed { scenario: String, function: &'static str, sample: Option<String>, message: String },
    #[error("cannot start a new instance of the scenario: {message}")]
    Instantiate { message: String },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.trim().is_empty() { String::new() } else { format!("\nguest stderr:\n{}", stderr.trim_end()) }
}

/// The one engine all scenarios share, with epoch interruption driven by a background ticker.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("the scenario engine configuration is valid");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("scenario-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawn the scenario epoch ticker");
        engine
    })
}

/// What the model is asked for one sample, as the engine takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRequest {
    pub prompt: EnginePrompt,
    /// The continuations to compare by log-likelihood; empty when the run generates.
    pub choices: Vec<String>,
    /// This sample's token budget, when the scenario sets one (LongBench's per-task budgets).
    pub max_new_tokens: Option<usize>,
}

/// A loaded scenario with a live instance.
pub struct Scenario {
    path: PathBuf,
    hash: String,
    metadata: Metadata,
    limits: ScenarioLimits,
    report: LoadReport,
    pre: bindings::ScenarioPre<GuestState>,
    /// The options of the last successful `configure`, given again to every rebuilt instance.
    options: Option<Options>,
    /// None after a failed call: the next call starts a fresh instance.
    instance: Option<Instance>,
    /// Warnings the guest logged, until [`Scenario::take_warnings`] takes them.
    warnings: Vec<String>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("path", &self.path)
            .field("hash", &self.hash)
            .field("name", &self.metadata.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

struct Instance {
    store: Store<GuestState>,
    bindings: bindings::Scenario,
}

impl Scenario {
    /// Reads and compiles the component at `path`, checks that it implements this host's WIT and asks
    /// for nothing the host does not grant, and calls `describe`. No compilation cache is used.
    pub fn load(path: &Path, limits: ScenarioLimits) -> Result<Scenario, ScenarioError> {
        Scenario::load_cached(path, limits, None)
    }

    /// Like [`Scenario::load`], reusing (and filling) a cache of precompiled components.
    pub fn load_cached(
        path: &Path,
        limits: ScenarioLimits,
        cache: Option<&ComponentCache>,
    ) -> Result<Scenario, ScenarioError> {
        let load_error = |message: String| ScenarioError::Load { path: path.to_path_buf(), message };
        let started = Instant::now();
        let bytes = std::fs::read(path).map_err(|e| load_error(e.to_string()))?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let hash = format!("sha256:{}", hex(&digest));
        let engine = engine();
        let (component, outcome) = match cache {
            Some(cache) => cache.component(engine, &bytes, &digest).map_err(load_error)?,
            None => (compile(engine, &bytes).map_err(load_error)?, CacheOutcome::Uncached),
        };
        imports::check(engine, &component).map_err(load_error)?;

        let mut linker = Linker::<GuestState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| load_error(format!("{e:#}")))?;
        bindings::Scenario::add_to_linker::<GuestState, wasmtime::component::HasSelf<GuestState>>(
            &mut linker,
            |state| state,
        )
        .map_err(|e| load_error(format!("{e:#}")))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| load_error(format!("imports something the scenario host does not provide: {e:#}")))?;
        let pre = bindings::ScenarioPre::new(instance_pre).map_err(|e| {
            load_error(format!("is not a runner scenario ({WIT_PACKAGE}@{WIT_VERSION} world `scenario`): {e:#}"))
        })?;

        let fallback_name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mut instance = Instance::new(&pre, &fallback_name, limits).map_err(|e| load_error(e.to_string()))?;
        let metadata =
            instance.call("describe", limits, |b, s| b.call_describe(s)).map_err(|e| load_error(e.to_string()))?;
        validate::metadata(&metadata).map_err(|message| load_error(format!("its metadata is malformed: {message}")))?;
        instance.store.data_mut().scenario_name = Arc::from(metadata.name.as_str());
        let report = LoadReport { cache: outcome, millis: started.elapsed().as_secs_f64() * 1e3 };
        Ok(Scenario {
            path: path.to_path_buf(),
            hash,
            metadata,
            limits,
            report,
            pre,
            options: None,
            instance: Some(instance),
            warnings: Vec::new(),
        })
    }

    /// "sha256:<hex>" of the component file.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the scenario said about itself at load.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn limits(&self) -> ScenarioLimits {
        self.limits
    }

    /// How the component was obtained (compiled, or read from the cache) and how long loading took.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// The options the scenario accepted, if `configure` was called.
    pub fn options(&self) -> Option<&Options> {
        self.options.as_ref()
    }

    /// Gives the scenario the user's options. They are kept and given again to every rebuilt instance.
    pub fn configure(&mut self, options: Options) -> Result<(), ScenarioError> {
        let mut instance = self.take_instance()?;
        instance.configure(&options, self.limits, &self.metadata.name)?;
        self.options = Some(options);
        self.instance = Some(instance);
        // Asked again: defaults may follow the options (a task file's token budget and stop strings).
        let metadata: Metadata = self.call("describe", |b, s| b.call_describe(s))?;
        validate::metadata(&metadata).map_err(|message| ScenarioError::Malformed {
            scenario: self.metadata.name.clone(),
            function: "describe",
            sample: None,
            message: format!("its metadata after `configure` is malformed: {message}"),
        })?;
        self.metadata = metadata;
        Ok(())
    }

    /// The warnings the guest logged since the last call of this (`log` at level warn), oldest first.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The dataset the scenario carries, used when the user gives none.
    pub fn embedded_dataset(&mut self) -> Result<Option<EmbeddedDataset>, ScenarioError> {
        self.call("embedded-dataset", |b, s| b.call_embedded_dataset(s))
    }

    /// Turns a dataset into samples. Sample ids must be unique and subsets ones the scenario declared.
    pub fn parse_dataset(&mut self, info: &DatasetInfo, input: &DatasetInput) -> Result<Vec<Sample>, ScenarioError> {
        let samples = self.call("parse-dataset", |b, s| b.call_parse_dataset(s, info, input))?.map_err(|e| {
            ScenarioError::Dataset {
                file: info.name.clone(),
                row: e.row,
                location: None,
                field: e.field,
                message: e.message,
            }
        })?;
        validate::samples(&self.metadata, &samples)
            .map_err(|(sample, message)| self.malformed("parse-dataset", sample, message))?;
        Ok(samples)
    }

    /// What the model is asked for `sample`, with the few-shot `examples` the host chose.
    /// `loglikelihood` runs need at least one choice.
    pub fn build_prompt(
        &mut self,
        sample: &Sample,
        examples: &[Sample],
        loglikelihood: bool,
    ) -> Result<PromptRequest, ScenarioError> {
        let request = self
            .call("build-prompt", |b, s| b.call_build_prompt(s, sample, examples))?
            .map_err(|message| ScenarioError::Guest { function: "build-prompt", message })?;
        validate::request(&request, loglikelihood)
            .map_err(|message| self.malformed("build-prompt", Some(sample.id.clone()), message))?;
        Ok(PromptRequest {
            prompt: engine_prompt(request.prompt),
            choices: request.choices,
            max_new_tokens: request.max_new_tokens.map(|n| n as usize),
        })
    }

    /// Scores the model's output for `sample`. Every metric must be declared in the metadata and finite.
    pub fn score(&mut self, sample: &Sample, output: &ModelOutput) -> Result<Score, ScenarioError> {
        let score = self
            .call("score", |b, s| b.call_score(s, sample, output))?
            .map_err(|message| ScenarioError::Guest { function: "score", message })?;
        validate::score(&self.metadata, &score)
            .map_err(|message| self.malformed("score", Some(sample.id.clone()), message))?;
        Ok(score)
    }

    /// Scores a generated text (no log-likelihoods).
    pub fn score_text(&mut self, sample: &Sample, text: &str) -> Result<Score, ScenarioError> {
        self.score(sample, &ModelOutput { text: text.to_string(), choices: Vec::new() })
    }

    /// The scenario's own run-level figures.
    pub fn aggregate(&mut self, samples: &[ScoredSample]) -> Result<Vec<Metric>, ScenarioError> {
        let metrics = self
            .call("aggregate", |b, s| b.call_aggregate(s, samples))?
            .map_err(|message| ScenarioError::Guest { function: "aggregate", message })?;
        validate::aggregate(&metrics).map_err(|message| self.malformed("aggregate", None, message))?;
        Ok(metrics)
    }

    fn malformed(&self, function: &'static str, sample: Option<String>, message: String) -> ScenarioError {
        ScenarioError::Malformed { scenario: self.metadata.name.clone(), function, sample, message }
    }

    /// The live instance, or a fresh one configured with the kept options.
    fn take_instance(&mut self) -> Result<Instance, ScenarioError> {
        if let Some(instance) = self.instance.take() {
            return Ok(instance);
        }
        let mut instance = Instance::new(&self.pre, &self.metadata.name, self.limits)?;
        if let Some(options) = &self.options {
            instance.configure(options, self.limits, &self.metadata.name)?;
        }
        Ok(instance)
    }

    /// Calls into the guest. A trap or timeout leaves the instance unusable, so it is dropped and the
    /// next call gets a fresh one (tens of microseconds); so is an instance whose stderr buffer is
    /// filling up, before a chatty guest's writes start failing.
    fn call<R>(
        &mut self,
        function: &'static str,
        call: impl FnOnce(&bindings::Scenario, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, ScenarioError> {
        let mut instance = self.take_instance()?;
        let result = instance.call(function, self.limits, call);
        self.warnings.append(&mut instance.store.data_mut().warnings);
        if result.is_ok() && !instance.store.data().stderr_filling() {
            self.instance = Some(instance);
        }
        result
    }
}

/// Compiles a component, naming the target it must be built for when it is not one.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, String> {
    Component::new(engine, bytes)
        .map_err(|e| format!("not a valid WebAssembly component (build scenarios for wasm32-wasip2): {e:#}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Instance {
    fn new(
        pre: &bindings::ScenarioPre<GuestState>,
        scenario_name: &str,
        limits: ScenarioLimits,
    ) -> Result<Instance, ScenarioError> {
        let mut store = Store::new(pre.engine(), GuestState::new(scenario_name, limits.memory_bytes));
        store.limiter(|state| &mut state.limiter);
        // Instantiation may run the guest's start code: it gets one call's time.
        store.set_epoch_deadline(deadline_ticks(limits.call_timeout));
        store.epoch_deadline_trap();
        let bindings =
            pre.instantiate(&mut store).map_err(|e| ScenarioError::Instantiate { message: format!("{e:#}") })?;
        Ok(Instance { store, bindings })
    }

    fn configure(&mut self, options: &Options, limits: ScenarioLimits, scenario: &str) -> Result<(), ScenarioError> {
        self.call("configure", limits, |b, s| b.call_configure(s, options))?.map_err(|e| ScenarioError::Config {
            scenario: scenario.to_string(),
            option: e.option,
            message: e.message,
        })
    }

    fn call<R>(
        &mut self,
        function: &'static str,
        limits: ScenarioLimits,
        call: impl FnOnce(&bindings::Scenario, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, ScenarioError> {
        self.store.set_epoch_deadline(deadline_ticks(limits.call_timeout));
        let stderr_before = self.store.data().stderr_len();
        let result = call(&self.bindings, &mut self.store);
        let state = self.store.data();
        let stderr = state.stderr_since(stderr_before);
        let error = match result {
            Ok(value) => {
                if !stderr.is_empty() {
                    tracing::debug!(scenario = &*state.scenario_name, function, "guest stderr: {}", stderr.trim_end());
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        Err(if state.limiter.exceeded() {
            ScenarioError::MemoryLimit { function, limit_bytes: limits.memory_bytes, stderr }
        } else if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            ScenarioError::Timeout { function, limit: limits.call_timeout }
        } else {
            ScenarioError::Trap { function, message: trap_message(&error), stderr }
        })
    }
}

/// The trap's reason, then the guest's backtrace when the component kept function names.
fn trap_message(error: &wasmtime::Error) -> String {
    let Some(trap) = error.downcast_ref::<Trap>() else { return format!("{error:#}") };
    let mut message = trap.to_string();
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>()
        && backtrace.frames().iter().any(|frame| frame.func_name().is_some())
    {
        message.push('\n');
        message.push_str(&backtrace.to_string());
    }
    message
}

/// Epoch ticks from now until `timeout` has surely passed (a tick may already be under way).
fn deadline_ticks(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos())).unwrap_or(u64::MAX / 2).min(u64::MAX / 2) + 1
}

fn engine_prompt(prompt: WitPrompt) -> EnginePrompt {
    match prompt {
        WitPrompt::Text(text) => EnginePrompt::Text(text),
        WitPrompt::Chat(messages) => EnginePrompt::Chat(
            messages
                .into_iter()
                .map(|m| ChatMessage {
                    role: match m.role {
                        WitRole::System => EngineRole::System,
                        WitRole::User => EngineRole::User,
                        WitRole::Assistant => EngineRole::Assistant,
                    },
                    content: m.content,
                })
                .collect(),
        ),
    }
}

impl Sample {
    /// The value of the field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.name == name).map(|f| f.value.as_str())
    }
}

impl Score {
    /// The value of the metric called `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }
}

impl Metadata {
    /// The scoring modes the scenario supports, by their CLI names.
    pub fn scoring_mode_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.scoring_modes.contains(ScoringModes::GENERATE) {
            names.push("generate");
        }
        if self.scoring_modes.contains(ScoringModes::LOGLIKELIHOOD) {
            names.push("loglikelihood");
        }
        names
    }
}

impl Options {
    /// The options a run gets when the user chooses nothing: every subset, the scenario's few-shot
    /// count, generation if the scenario supports it, seed 0.
    pub fn defaults_for(metadata: &Metadata) -> Options {
        let scoring_mode = if metadata.scoring_modes.contains(ScoringModes::GENERATE)
            || metadata.scoring_modes == ScoringModes::empty()
        {
            ScoringMode::Generate
        } else {
            ScoringMode::Loglikelihood
        };
        Options { subsets: Vec::new(), few_shot: None, scoring_mode, seed: 0, task_file: None, args: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_version_is_the_version_the_wit_file_declares() {
        let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/scenario.wit")).unwrap();
        let package = format!("package {WIT_PACKAGE}@{WIT_VERSION};");
        assert!(wit.lines().any(|line| line.trim() == package), "wit/scenario.wit must declare `{package}`");
    }
}
