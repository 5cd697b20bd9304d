//! The scenario host: loads a benchmark scenario (a WebAssembly component implementing
//! `wit/scenario.wit`) and calls it in a sandbox. The guest gets WASI preview 2 with nothing granted
//! (no files, environment, arguments, network or stdin), fixed clocks and seeded randomness (the same
//! inputs give byte-identical prompts), a memory cap and a time limit per call. A trap or timeout
//! fails only that call: the instance is rebuilt, so the next call works.

mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Engine, Store, Trap, WasmBacktrace};

use crate::prompt::{ChatMessage, Prompt as EnginePrompt, Role as EngineRole};
use sandbox::GuestState;

mod bindings {
    wasmtime::component::bindgen!({
        world: "scenario",
        path: "../wit",
        additional_derives: [serde::Serialize, serde::Deserialize, Clone, PartialEq],
    });
}

pub use bindings::runner::scenario::host::LogLevel;
pub use bindings::runner::scenario::types::{
    DatasetError, EmbeddedDataset, Field, GenerationDefaults, Message, Metadata, Metric, MetricInfo,
    Prompt as WitPrompt, Role as WitRole, Sample, Score,
};

/// The WIT package every scenario must be built against (wit/scenario.wit)...
pub const WIT_PACKAGE: &str = "runner:scenario";
/// ...and its version; the host refuses components that import another version.
pub const WIT_VERSION: &str = "0.1.0";

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
    #[error("{file}{}{}: {message}", row.map(|r| format!(", row {r}")).unwrap_or_default(),
        field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Dataset { file: String, row: Option<u32>, field: Option<String>, message: String },
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

/// A loaded scenario with a live instance.
pub struct Scenario {
    path: PathBuf,
    hash: String,
    metadata: Metadata,
    limits: ScenarioLimits,
    pre: bindings::ScenarioPre<GuestState>,
    /// None after a failed call: the next call starts a fresh instance.
    instance: Option<Instance>,
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
    /// Reads and compiles the component at `path`, checks that it implements this host's WIT, and
    /// calls `describe`.
    pub fn load(path: &Path, limits: ScenarioLimits) -> Result<Scenario, ScenarioError> {
        let load_error = |message: String| ScenarioError::Load { path: path.to_path_buf(), message };
        let bytes = std::fs::read(path).map_err(|e| load_error(e.to_string()))?;
        let hash = format!("sha256:{:x}", Sha256::digest(&bytes));
        let engine = engine();
        let component = Component::new(engine, &bytes).map_err(|e| {
            load_error(format!("not a valid WebAssembly component (build scenarios for wasm32-wasip2): {e:#}"))
        })?;
        check_wit_version(engine, &component).map_err(load_error)?;

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
        instance.store.data_mut().scenario_name = Arc::from(metadata.name.as_str());
        Ok(Scenario { path: path.to_path_buf(), hash, metadata, limits, pre, instance: Some(instance) })
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

    /// The dataset the scenario carries, used when the user gives none.
    pub fn embedded_dataset(&mut self) -> Result<Option<EmbeddedDataset>, ScenarioError> {
        self.call("embedded-dataset", |b, s| b.call_embedded_dataset(s))
    }

    /// Parses a dataset file into samples.
    pub fn parse_dataset(&mut self, file_name: &str, data: &[u8]) -> Result<Vec<Sample>, ScenarioError> {
        self.call("parse-dataset", |b, s| b.call_parse_dataset(s, file_name, data))?.map_err(|e| {
            ScenarioError::Dataset { file: file_name.to_string(), row: e.row, field: e.field, message: e.message }
        })
    }

    /// The prompt the model sees for `sample`.
    pub fn build_prompt(&mut self, sample: &Sample) -> Result<EnginePrompt, ScenarioError> {
        let prompt = self
            .call("build-prompt", |b, s| b.call_build_prompt(s, sample))?
            .map_err(|message| ScenarioError::Guest { function: "build-prompt", message })?;
        Ok(engine_prompt(prompt))
    }

    /// Scores the model's `output` for `sample`.
    pub fn score(&mut self, sample: &Sample, output: &str) -> Result<Score, ScenarioError> {
        self.call("score", |b, s| b.call_score(s, sample, output))?
            .map_err(|message| ScenarioError::Guest { function: "score", message })
    }

    /// Calls into the guest. A trap or timeout leaves the instance unusable, so it is dropped and the
    /// next call gets a fresh one (tens of microseconds); so is an instance whose stderr buffer is
    /// filling up, before a chatty guest's writes start failing.
    fn call<R>(
        &mut self,
        function: &'static str,
        call: impl FnOnce(&bindings::Scenario, &mut Store<GuestState>) -> wasmtime::Result<R>,
    ) -> Result<R, ScenarioError> {
        let mut instance = match self.instance.take() {
            Some(instance) => instance,
            None => Instance::new(&self.pre, &self.metadata.name, self.limits)?,
        };
        let result = instance.call(function, self.limits, call);
        if result.is_ok() && !instance.store.data().stderr_filling() {
            self.instance = Some(instance);
        }
        result
    }
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

/// Refuses components built against another version of `runner:scenario`, naming both versions.
fn check_wit_version(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let names = ty.imports(engine).map(|(name, _)| name).chain(
        ty.exports(engine)
            .filter_map(|(name, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)).then_some(name)),
    );
    for name in names {
        let Some(rest) = name.strip_prefix(WIT_PACKAGE).and_then(|rest| rest.strip_prefix('/')) else { continue };
        let version = rest.split_once('@').map_or("(none)", |(_, version)| version);
        if version != WIT_VERSION {
            return Err(format!(
                "it was built against {WIT_PACKAGE}@{version}, but this runner hosts {WIT_PACKAGE}@{WIT_VERSION}; \
                 rebuild the scenario against this runner's wit/scenario.wit"
            ));
        }
    }
    Ok(())
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
