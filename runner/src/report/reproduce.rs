//! The `runner exec` command line that reproduces a run, rebuilt from what its summary recorded (scenario,
//! model folder, dataset and selection, provider, threads and generation settings), shell-quoted so it can
//! be pasted as is.

use crate::results::RunSummary;

/// Quotes a word for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%^".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// The exec command line for the run. Flags that were at their defaults are left out, except the
/// generation budget and the selection, which a reader compares between pages.
pub fn reproduce_command(s: &RunSummary) -> String {
    let mut args: Vec<String> = vec!["runner".into(), "exec".into(), s.scenario.path.clone()];
    let mut flag = |name: &str, value: Option<String>| {
        args.push(format!("--{name}"));
        args.extend(value);
    };
    flag("model", Some(s.model.dir.clone()));
    if s.dataset.source == "file" {
        flag("data", Some(s.dataset.label.clone()));
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
    if settings.few_shot > 0 {
        flag("few-shot", Some(settings.few_shot.to_string()));
    }
    if settings.scoring != "generate" {
        flag("scoring", Some(settings.scoring.clone()));
    }
    for (key, value) in &settings.scenario_args {
        flag("scenario-arg", Some(format!("{key}={value}")));
    }
    flag("max-new-tokens", Some(settings.max_new_tokens.to_string()));
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
    if let Some(threads) = s.runtime.intra_threads {
        flag("threads", Some(threads.to_string()));
    }
    if let Some(session) = &s.runtime.session {
        let mode = session.mode.to_string();
        if mode != "compiled" {
            flag("mode", Some(mode));
        }
        if let Some(inter) = session.inter_threads {
            flag("inter-threads", Some(inter.to_string()));
        }
    }
    if let Some(adapter) = &s.adapter {
        flag("adapter", Some(adapter.path.display().to_string()));
    }
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_the_shell_would_split() {
        assert_eq!(shell_quote("scenarios/gsm8k.wasm"), "scenarios/gsm8k.wasm");
        assert_eq!(shell_quote("You are terse."), "'You are terse.'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
