//! The `runner exec` command line that reproduces a run, rebuilt from what its summary recorded (scenario,
//! model folder, dataset and selection, provider, threads and generation settings), shell-quoted so it can
//! be pasted as is. Reports travel, so inputs are named by what they are, never by a path of the machine
//! that ran them: the default model by its precision, another model folder by its name, a dataset file by
//! its folder and name (the page's provenance gives its sha256).

use crate::results::RunSummary;

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%^".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// The exec command line for the run. Flags that were at their defaults are left out, except the
/// generation budget and the selection, which a reader compares between pages.
pub fn reproduce_command(s: &RunSummary) -> String {
    let mut args: Vec<String> = vec!["runner".into(), "exec".into(), portable_path(&s.scenario.path)];
    let mut flag = |name: &str, value: Option<String>| {
        args.push(format!("--{name}"));
        args.extend(value);
    };
    match portable_model(&s.model.dir) {
        PortableModel::Default { precision } => flag("precision", Some(precision)),
        // A precision runner derived from an import of the default model with its own options (w8a8 always is):
        // `--precision` derives it again on any machine.
        PortableModel::Folder(_)
            if s.model.derivation.as_ref().is_some_and(|d| {
                matches!(portable_model(&d.source_dir), PortableModel::Default { .. })
                    && d.options == crate::derive::DeriveOptions::for_precision(d.options.precision)
            }) =>
        {
            let derived = s.model.derivation.as_ref().expect("checked above");
            flag("precision", Some(derived.options.precision.to_string()))
        }
        PortableModel::Folder(folder) => flag("model", Some(folder)),
    }
    if s.dataset.source == "file" {
        flag("data", Some(portable_path(&s.dataset.label)));
    }
    // The split a Hub dataset was read from (the run's configuration names it when the user chose one).
    if let Some(split) = s.config.as_ref().and_then(|c| c.get("split")).and_then(|v| v.as_str()) {
        flag("split", Some(split.to_string()));
    }
    for subset in &s.dataset.subsets {
        flag("subset", Some(subset.clone()));
    }
    if let Some(n) = s.dataset.max_samples {
        flag("max-samples", Some(n.to_string()));
    }
    if let Some(seed) = s.dataset.shuffle_seed {
        flag("shuffle-seed", Some(seed.to_string()));
    }
    let settings = &s.settings;
    if settings.few_shot == 0 && s.few_shot_chosen() {
        // Zero-shot where the scenario would give examples (MMLU's default is 5): the count must be said.
        flag("few-shot", Some("0".to_string()));
    }
    if settings.few_shot > 0 {
        flag("few-shot", Some(settings.few_shot.to_string()));
        if let Some(source) = &s.dataset.few_shot_source {
            flag("few-shot-data", Some(portable_path(&source.label)));
        }
        if let Some(order) = &settings.few_shot_order {
            flag("few-shot-order", Some(order.clone()));
        }
        if settings.few_shot_order.as_deref() == Some("seeded") && settings.temperature == 0.0 && settings.seed != 0 {
            // The seed picks the examples even when decoding is greedy.
            flag("seed", Some(settings.seed.to_string()));
        }
    }
    if settings.scoring != "generate" {
        flag("scoring", Some(settings.scoring.clone()));
    }
    for (key, value) in &settings.scenario_args {
        flag("scenario-arg", Some(format!("{key}={value}")));
    }
    flag("max-new-tokens", Some(settings.max_new_tokens.to_string()));
    // Stop strings the user chose (the run's configuration names them; the scenario's own go unsaid).
    if let Some(stops) = s.config.as_ref().and_then(|c| c.get("stop")).and_then(|v| v.as_array()) {
        for stop in stops.iter().filter_map(|v| v.as_str()) {
            flag("stop", Some(stop.replace('\\', "\\\\").replace('\n', "\\n").replace('\t', "\\t")));
        }
    }
    if settings.temperature != 0.0 {
        flag("temperature", Some(settings.temperature.to_string()));
        if let Some(k) = settings.top_k {
            flag("top-k", Some(k.to_string()));
        }
        if let Some(p) = settings.top_p {
            flag("top-p", Some(p.to_string()));
        }
        flag("seed", Some(settings.seed.to_string()));
    }
    if settings.repetition_penalty != 1.0 {
        flag("repetition-penalty", Some(settings.repetition_penalty.to_string()));
    }
    if settings.ignore_eos {
        flag("ignore-eos", None);
    }
    if settings.batch_size != 1 {
        flag("batch-size", Some(settings.batch_size.to_string()));
    }
    if let Some(prompt) = &settings.system_prompt {
        flag("system-prompt", Some(prompt.clone()));
    }
    if settings.no_chat_template {
        flag("no-chat-template", None);
    }
    if s.runtime.execution_provider != "cpu" {
        flag("ep", Some(s.runtime.execution_provider.clone()));
    }
    // --threads is the run's: with workers, each session had its share.
    let workers = s.runtime.workers.unwrap_or(1);
    if let Some(threads) = s.runtime.intra_threads {
        flag("threads", Some((threads * workers).to_string()));
    }
    if workers > 1 {
        flag("workers", Some(workers.to_string()));
    }
    if let Some(session) = &s.runtime.session {
        let mode = session.mode.to_string();
        if mode != "compiled" {
            flag("mode", Some(mode));
        }
        if let Some(inter) = session.inter_threads {
            flag("inter-threads", Some(inter.to_string()));
        }
        if session.intra_op_spinning == Some(false) {
            flag("no-spin", None);
        }
    }
    if let Some(adapter) = &s.adapter {
        flag("adapter", Some(portable_path(&adapter.path.display().to_string())));
    }
    if settings.warmup > 0 {
        flag("warmup", Some(settings.warmup.to_string()));
    }
    if settings.repeat > 1 {
        flag("repeat", Some(settings.repeat.to_string()));
    }
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

enum PortableModel {
    /// An import of runner's default model: `--precision` picks it on any machine.
    Default {
        precision: String,
    },
    Folder(String),
}

fn portable_model(dir: &str) -> PortableModel {
    let path = std::path::Path::new(dir);
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let parent = path.parent().and_then(name);
    match (parent.as_deref(), name(path)) {
        (Some(crate::paths::DEFAULT_MODEL), Some(precision))
            if crate::import::Precision::ALL.iter().any(|p| p.to_string() == precision) =>
        {
            PortableModel::Default { precision }
        }
        _ => PortableModel::Folder(portable_path(dir)),
    }
}

/// A relative path as it is; an absolute one, or one that climbs out with `..`, as its last folder and name
/// (`gsm8k/test.jsonl`).
pub(crate) fn portable_path(path: &str) -> String {
    let p = std::path::Path::new(path);
    // A path that climbs out of the working folder (`../shared/datasets/...`, as an experiment file names
    // data beside the checkout) is as much the machine's as an absolute one.
    let climbs = p.components().any(|c| c == std::path::Component::ParentDir);
    if !p.is_absolute() && !climbs {
        return path.to_string();
    }
    let names: Vec<String> = p
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    names[names.len().saturating_sub(2)..].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_named_by_what_they_are_not_by_this_machines_paths() {
        let default = "/root/.local/share/runner/models/SmolLM2-135M-Instruct/fp32";
        assert!(matches!(portable_model(default), PortableModel::Default { precision } if precision == "fp32"));
        assert!(
            matches!(portable_model("/home/me/models/phi3-genai"), PortableModel::Folder(f) if f == "models/phi3-genai")
        );
        assert!(matches!(portable_model("models/Tiny/int4"), PortableModel::Folder(f) if f == "models/Tiny/int4"));
        assert_eq!(portable_path("/work/shared/datasets/gsm8k/test.jsonl"), "gsm8k/test.jsonl");
        assert_eq!(portable_path("data/test.jsonl"), "data/test.jsonl");
        assert_eq!(portable_path("/test.jsonl"), "test.jsonl");
        assert_eq!(portable_path("../shared/datasets/math500/test.jsonl"), "math500/test.jsonl");
        assert_eq!(portable_path("../../x.jsonl"), "x.jsonl");
    }

    /// A run that set every run key away from its default: its reproduce command names each key's flag, so
    /// a key added to `RunConfig` (tied to `RUN_KEYS` by a test) fails here until the command carries it.
    #[test]
    fn a_run_that_sets_every_run_key_is_reproduced_with_each_keys_flag() {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../results/testdata/old-summary.json")).unwrap();
        v["dataset"]["source"] = "file".into();
        v["dataset"]["label"] = "/data/d.jsonl".into();
        v["dataset"]["subsets"] = serde_json::json!(["s"]);
        v["dataset"]["max_samples"] = 3.into();
        v["dataset"]["shuffle_seed"] = 4.into();
        v["dataset"]["few_shot_source"] = serde_json::json!({"label": "/data/dev", "hash": "sha256:00", "total": 5});
        let settings = serde_json::json!({
            "few_shot": 1, "few_shot_order": "seeded", "scoring": "loglikelihood", "max_new_tokens": 5,
            "temperature": 0.5, "top_k": 3, "top_p": 0.9, "seed": 1, "repetition_penalty": 1.1, "ignore_eos": true,
            "batch_size": 2, "system_prompt": "hi", "no_chat_template": true, "warmup": 1, "repeat": 2,
        });
        for (key, value) in settings.as_object().unwrap() {
            v["settings"][key] = value.clone();
        }
        v["runtime"]["execution_provider"] = "cuda".into();
        v["runtime"]["intra_threads"] = 2.into();
        v["runtime"]["workers"] = 2.into();
        v["adapter"] = serde_json::json!({
            "path": "/a/x.onnx_adapter", "hash": "sha256:00", "size_bytes": 1, "rank": 1, "targets": [], "layers": 1,
            "tensors": 1, "parameters": 1, "base_parameters": null, "parameter_share": null,
        });
        v["config"] = serde_json::json!({"stop": ["X"], "split": "test"});
        let summary: RunSummary = serde_json::from_value(v).unwrap();
        let command = reproduce_command(&summary);
        assert!(command.contains("--threads 4 --workers 2"), "two sessions of 2 threads: {command}");
        for key in crate::experiment::RUN_KEYS {
            let flags = match key {
                // A sweep's name, and the positional scenario, have no flag.
                "name" | "scenario" => continue,
                // The default model is named by its precision on any machine, another by its folder.
                "model" | "precision" => vec!["--precision".to_string(), "--model".to_string()],
                "subsets" => vec!["--subset".to_string()],
                "chat_template" => vec!["--no-chat-template".to_string()],
                key => vec![format!("--{}", key.replace('_', "-"))],
            };
            assert!(command.split(' ').any(|word| flags.iter().any(|f| f == word)), "{key}: no {flags:?} in {command}");
        }
    }

    /// MMLU gives five examples unless told otherwise: its 0-shot run is reproduced only with `--few-shot 0`,
    /// while a scenario that is 0-shot by default (ARC) needs no flag.
    #[test]
    fn a_zero_shot_run_of_a_few_shot_scenario_names_its_count() {
        let summary = |default: Option<usize>, config: serde_json::Value| -> RunSummary {
            let mut v: serde_json::Value =
                serde_json::from_str(include_str!("../results/testdata/old-summary.json")).unwrap();
            v["settings"]["few_shot"] = 0.into();
            v["scenario"]["default_few_shot"] = default.into();
            v["config"] = config;
            serde_json::from_value(v).unwrap()
        };
        let says_zero = |s: &RunSummary| reproduce_command(s).contains("--few-shot 0");
        assert!(says_zero(&summary(Some(5), serde_json::json!({}))));
        assert!(!says_zero(&summary(Some(0), serde_json::json!({"few_shot": 0}))));
        // Results from before the default was recorded: the configuration that named the count decides.
        assert!(says_zero(&summary(None, serde_json::json!({"few_shot": 0}))));
        assert!(!says_zero(&summary(None, serde_json::json!({}))));
    }

    /// A precision runner derived from the default model's import with its own options is `--precision` on any
    /// machine; one derived with other options, or from another folder, is named by its folder. A run whose
    /// threads did not spin says `--no-spin`.
    #[test]
    fn derived_precisions_of_the_default_model_and_spinning_are_reproduced_by_their_flags() {
        let summary = |source: &str, options: serde_json::Value, spinning: Option<bool>| -> String {
            let mut v: serde_json::Value =
                serde_json::from_str(include_str!("../results/testdata/old-summary.json")).unwrap();
            v["model"]["dir"] =
                "/root/.local/share/runner/models/derived/SmolLM2-135M-Instruct-1488876f897d/w8a8".into();
            v["model"]["derivation"] = serde_json::json!({
                "revision": 1, "source_dir": source, "source_hash": "sha256:00", "source_precision": "fp32",
                "options": options, "rewrite": {}, "runner_version": "0.1.0", "seconds": 1.0,
                "fidelity": {"method": "m", "probe_tokens": 1, "greedy_tokens": 1, "positions": 2, "mean_kl": 0.0,
                             "top1_agreement": 1.0},
            });
            v["runtime"]["session"] = serde_json::json!({
                "ep": "cpu", "providers": ["CPUExecutionProvider"], "ep_options": {}, "graph_optimization": "all",
                "mode": "compiled", "intra_threads": 2, "inter_threads": null, "intra_op_spinning": spinning,
                "model_file": "model.onnx", "optimized_model_cache": null, "node_assignment": null,
            });
            reproduce_command(&serde_json::from_value(v).unwrap())
        };
        let default_fp32 = "/root/.local/share/runner/models/SmolLM2-135M-Instruct/fp32";
        let command = summary(default_fp32, serde_json::json!({"precision": "w8a8"}), Some(false));
        assert!(command.contains("--precision w8a8") && !command.contains("--model"), "{command}");
        assert!(command.contains("--no-spin"), "{command}");
        let level0 = serde_json::json!({"precision": "int4", "block_size": 32, "accuracy_level": 0});
        let command = summary(default_fp32, level0, None);
        assert!(command.contains("--model SmolLM2-135M-Instruct-1488876f897d/w8a8"), "{command}");
        assert!(!command.contains("--no-spin"), "{command}");
        let command = summary("/home/me/phi3-genai", serde_json::json!({"precision": "w8a8"}), Some(true));
        assert!(command.contains("--model ") && !command.contains("--precision"), "{command}");
    }

    #[test]
    fn quotes_only_what_the_shell_would_split() {
        assert_eq!(shell_quote("scenarios/gsm8k.wasm"), "scenarios/gsm8k.wasm");
        assert_eq!(shell_quote("You are terse."), "'You are terse.'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
