//! Checking a run's options in `configure`: the scoring mode is one the scenario supports, selected
//! subsets exist, `--scenario-arg` keys are known ([`check`] does all three against the scenario's own
//! metadata). Errors are `config-error`s naming the option.
//!
//! Keeping what `configure` decided for the calls after it: [`Cell`], declared with
//! [`config_cell!`](crate::config_cell). It is thread-local, because a component is single-threaded and
//! native tests each run on their own thread with their own options; a static shared by threads would let
//! one test's options leak into another's.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::thread::LocalKey;

use crate::{ConfigError, Metadata, Options, ScoringMode, ScoringModes};

/// Checks options against what `metadata` declares (scoring modes, subsets) and the `--scenario-arg` keys
/// in `known_args`, in that order; returns the arguments as a map.
pub fn check(
    options: &Options,
    metadata: &Metadata,
    known_args: &[&str],
) -> Result<BTreeMap<String, String>, ConfigError> {
    check_scoring_mode(options, metadata.scoring_modes)?;
    let subsets: Vec<&str> = metadata.subsets.iter().map(|s| s.name.as_str()).collect();
    check_subsets(&options.subsets, &subsets)?;
    args(options, known_args)
}

/// A `config-error` for `option`.
pub fn error(option: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { option: option.to_string(), message: message.into() }
}

/// Refuses a scoring mode the scenario does not offer.
pub fn check_scoring_mode(options: &Options, supported: ScoringModes) -> Result<(), ConfigError> {
    if supported.contains(flag(options.scoring_mode)) {
        return Ok(());
    }
    let mut names = Vec::new();
    if supported.contains(ScoringModes::GENERATE) {
        names.push("generate");
    }
    if supported.contains(ScoringModes::LOGLIKELIHOOD) {
        names.push("loglikelihood");
    }
    let chosen = match options.scoring_mode {
        ScoringMode::Generate => "generate",
        ScoringMode::Loglikelihood => "loglikelihood",
    };
    Err(error("scoring-mode", format!("this scenario scores by {}, not by {chosen}", names.join(", "))))
}

/// The declared-modes flag of one scoring mode.
pub fn flag(mode: ScoringMode) -> ScoringModes {
    match mode {
        ScoringMode::Generate => ScoringModes::GENERATE,
        ScoringMode::Loglikelihood => ScoringModes::LOGLIKELIHOOD,
    }
}

/// Refuses selected subsets that do not exist, listing the ones that do.
pub fn check_subsets(selected: &[String], available: &[&str]) -> Result<(), ConfigError> {
    let unknown: Vec<&str> = selected.iter().map(String::as_str).filter(|s| !available.contains(s)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(error("subsets", format!("no subset named {}; the subsets are: {}", unknown.join(", "), available.join(", "))))
}

/// The `--scenario-arg` settings as a map; a key not in `known` is an error listing the known ones.
pub fn args(options: &Options, known: &[&str]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    for (key, value) in &options.args {
        if !known.contains(&key.as_str()) {
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(error("args", format!("unknown scenario argument `{key}`; this scenario takes: {known}")));
        }
        map.insert(key.clone(), value.clone());
    }
    Ok(map)
}

/// A scenario's settings, set by `configure` and read by `parse-dataset`, `build-prompt`, `score`...
/// Declare one with [`config_cell!`](crate::config_cell): `config_cell!(static CONFIG: Config = ...);`
/// then `CONFIG.set(config)` in `configure` and `CONFIG.get()` after it. Until set it holds its initial
/// value (the host always calls `configure` first, and again after a trap).
pub struct Cell<T: 'static> {
    key: &'static LocalKey<RefCell<T>>,
}

impl<T: Clone + 'static> Cell<T> {
    /// The cell over a thread-local; [`config_cell!`](crate::config_cell) declares both.
    #[doc(hidden)]
    pub const fn over(key: &'static LocalKey<RefCell<T>>) -> Self {
        Cell { key }
    }

    /// Keeps `value` for the calls that follow.
    pub fn set(&self, value: T) {
        self.key.set(value);
    }

    /// A copy of the kept settings, so no borrow is held while the scenario works.
    pub fn get(&self) -> T {
        self.key.with_borrow(T::clone)
    }
}

/// Declares a scenario's [`config::Cell`](crate::config::Cell):
/// `config_cell!(static CONFIG: Config = Config { mode: ScoringMode::Generate });`, the initial value
/// standing until `configure` sets one.
#[macro_export]
macro_rules! config_cell {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr $(;)?) => {
        $(#[$attr])*
        $vis static $name: $crate::config::Cell<$ty> = {
            ::std::thread_local! {
                static KEY: ::std::cell::RefCell<$ty> = ::std::cell::RefCell::new($init);
            }
            $crate::config::Cell::over(&KEY)
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::config_cell!(static KEPT: Vec<String> = Vec::new());

    #[test]
    fn a_cell_keeps_what_configure_set_on_its_own_thread() {
        assert!(KEPT.get().is_empty());
        KEPT.set(vec!["physics".to_string()]);
        assert_eq!(KEPT.get(), ["physics"]);
        // Another thread (another native test) starts from the initial value.
        std::thread::spawn(|| assert!(KEPT.get().is_empty())).join().unwrap();
        assert_eq!(KEPT.get(), ["physics"]);
    }

    fn options(mode: ScoringMode, args: &[(&str, &str)]) -> Options {
        Options {
            subsets: Vec::new(),
            few_shot: None,
            scoring_mode: mode,
            seed: 0,
            task_file: None,
            args: args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn scoring_modes_subsets_and_args_are_checked() {
        assert!(check_scoring_mode(&options(ScoringMode::Generate, &[]), ScoringModes::GENERATE).is_ok());
        let error = check_scoring_mode(&options(ScoringMode::Loglikelihood, &[]), ScoringModes::GENERATE).unwrap_err();
        assert_eq!(error.option, "scoring-mode");
        assert!(check_subsets(&["a".into()], &["a", "b"]).is_ok());
        let error = check_subsets(&["c".into()], &["a", "b"]).unwrap_err();
        assert!(error.message.contains("c") && error.message.contains("a, b"), "{}", error.message);
        assert_eq!(args(&options(ScoringMode::Generate, &[("k", "v")]), &["k"]).unwrap()["k"], "v");
        assert!(args(&options(ScoringMode::Generate, &[("x", "v")]), &["k"]).unwrap_err().message.contains("`x`"));
    }

    #[test]
    fn check_refuses_what_the_metadata_does_not_declare() {
        let metadata = crate::metadata::MetadataBuilder::new("s", "1", "d").subsets([("a", "A"), ("b", "B")]).build();
        assert_eq!(check(&options(ScoringMode::Generate, &[("k", "v")]), &metadata, &["k"]).unwrap()["k"], "v");
        let error = check(&options(ScoringMode::Loglikelihood, &[]), &metadata, &[]).unwrap_err();
        assert_eq!(error.option, "scoring-mode");
        let mut unknown = options(ScoringMode::Generate, &[]);
        unknown.subsets = vec!["c".into()];
        let error = check(&unknown, &metadata, &[]).unwrap_err();
        assert!(error.option == "subsets" && error.message.contains("a, b"), "{error:?}");
        assert_eq!(check(&options(ScoringMode::Generate, &[("k", "v")]), &metadata, &[]).unwrap_err().option, "args");
    }
}
