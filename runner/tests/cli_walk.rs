//! Walks the `runner` command line with malformed arguments and files: every subcommand with missing
//! values, negative, huge and non-numeric numbers, empty strings, non-UTF-8 paths, folders where files are
//! expected and files where folders are, missing paths and garbage files for every file flag. Each case
//! must end with exit status 1 (runner's own error) or 2 (a command-line error), a message that starts
//! with `Error:`/`error:` and names the flag or file, and never a panic. A stdout whose reader has gone
//! (`runner … | head`) must be a quiet success.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;
use std::sync::OnceLock;

use common::runner;

mod common;

/// Files and folders the cases point at, made once.
struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    fn get() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path();
            let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
            for name in [
                "garbage.wasm",
                "garbage.gguf",
                "garbage.jsonl",
                "garbage.parquet",
                "garbage.csv",
                "garbage.yaml",
                "garbage.onnx_adapter",
                "garbage.so",
                "garbage.txt",
            ] {
                std::fs::write(p.join(name), &garbage).unwrap();
            }
            std::fs::write(p.join("empty.wasm"), b"").unwrap();
            std::fs::write(p.join("empty.jsonl"), b"").unwrap();
            std::fs::write(p.join("outputs.jsonl"), b"{\"index\": 0, \"output\": \"The answer is 25.\"}\n").unwrap();
            std::fs::create_dir(p.join("folder")).unwrap();
            // A model folder whose files are all garbage.
            let model = p.join("garbage-model");
            std::fs::create_dir(&model).unwrap();
            for name in ["model.onnx", "tokenizer.json", "genai_config.json", "tokenizer_config.json"] {
                std::fs::write(model.join(name), &garbage).unwrap();
            }
            // A PEFT folder with garbage files.
            let peft = p.join("garbage-peft");
            std::fs::create_dir(&peft).unwrap();
            std::fs::write(peft.join("adapter_model.safetensors"), &garbage).unwrap();
            std::fs::write(peft.join("adapter_config.json"), b"{not json").unwrap();
            Fixtures { dir }
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }
}

/// Runs one case and checks the contract; returns a description of what went wrong, if anything.
fn check(args: &[OsString], expected: &[&str]) -> Option<String> {
    let shown = args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
    let out = runner().args(args).stdin(Stdio::null()).output().expect("runner starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    let mut problems = Vec::new();
    if stderr.contains("panicked") || code == Some(101) {
        problems.push("panicked".to_string());
    }
    if !matches!(code, Some(1 | 2)) {
        problems.push(format!("exit status {code:?}, expected 1 or 2"));
    }
    // A command without its subcommand shows the help (exit 2), like git.
    let shows_help = stderr.contains("Usage:") && stderr.contains("Commands:");
    if !stderr.contains("Error:") && !stderr.contains("error:") && !shows_help {
        problems.push("no `Error:` line".to_string());
    }
    for fragment in expected {
        if !stderr.contains(fragment) {
            problems.push(format!("the message does not name `{fragment}`"));
        }
    }
    (!problems.is_empty()).then(|| format!("runner {shown}\n  {}\n  stderr: {}", problems.join("; "), stderr.trim()))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// A path that is not valid UTF-8.
fn non_utf8(name: &str) -> OsString {
    let mut bytes = Fixtures::get().dir.path().as_os_str().to_owned().into_vec();
    bytes.extend_from_slice(b"/bad-\xff\xfe-");
    bytes.extend_from_slice(name.as_bytes());
    OsString::from_vec(bytes)
}

/// (arguments, fragments the message must contain).
fn cases() -> Vec<(Vec<OsString>, Vec<&'static str>)> {
    let f = Fixtures::get();
    let gsm8k = scenario_artifacts::GSM8K;
    let custom = scenario_artifacts::CUSTOM;
    let fx = |name: &str| f.path(name);
    let model = fx("garbage-model");
    let mut cases: Vec<(Vec<String>, Vec<&'static str>)> = vec![
        // No subcommand, unknown ones, missing positional arguments.
        (vec![], vec!["Usage"]),
        (vec!["frobnicate".into()], vec!["frobnicate"]),
        (vec!["exec".into()], vec!["SCENARIO"]),
        (vec!["score".into(), gsm8k.into()], vec!["--outputs"]),
        (vec!["import".into()], vec!["GGUF"]),
        (vec!["adapter".into()], vec!["Usage"]),
        (vec!["adapter".into(), "init".into()], vec!["--model"]),
        (vec!["paths".into(), "extra".into()], vec!["extra"]),
        // exec: the scenario file.
        (vec!["exec".into(), fx("missing.wasm")], vec!["missing.wasm"]),
        (vec!["exec".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), fx("garbage.wasm")], vec!["garbage.wasm"]),
        (vec!["exec".into(), fx("empty.wasm")], vec!["empty.wasm"]),
        (vec!["exec".into(), String::new()], vec![]),
        // exec: numbers.
        (vec!["exec".into(), gsm8k.into(), "--max-samples".into(), "-1".into()], vec!["--max-samples"]),
        (vec!["exec".into(), gsm8k.into(), "--max-samples".into(), "1e99".into()], vec!["--max-samples"]),
        (
            vec!["exec".into(), gsm8k.into(), "--max-samples".into(), "99999999999999999999999999".into()],
            vec!["--max-samples"],
        ),
        (vec!["exec".into(), gsm8k.into(), "--max-samples".into(), String::new()], vec!["--max-samples"]),
        (vec!["exec".into(), gsm8k.into(), "--max-samples".into()], vec!["--max-samples"]),
        (vec!["exec".into(), gsm8k.into(), "--max-new-tokens".into(), "-5".into()], vec!["--max-new-tokens"]),
        (vec!["exec".into(), gsm8k.into(), "--temperature".into(), "-1".into()], vec!["--temperature"]),
        (vec!["exec".into(), gsm8k.into(), "--temperature".into(), "NaN".into()], vec!["--temperature"]),
        (vec!["exec".into(), gsm8k.into(), "--temperature".into(), "inf".into()], vec!["--temperature"]),
        (vec!["exec".into(), gsm8k.into(), "--top-p".into(), "2".into()], vec!["--top-p"]),
        (vec!["exec".into(), gsm8k.into(), "--top-p".into(), "-0.5".into()], vec!["--top-p"]),
        (vec!["exec".into(), gsm8k.into(), "--top-k".into(), "-3".into()], vec!["--top-k"]),
        (vec!["exec".into(), gsm8k.into(), "--repetition-penalty".into(), "0".into()], vec!["--repetition-penalty"]),
        (vec!["exec".into(), gsm8k.into(), "--repetition-penalty".into(), "NaN".into()], vec!["--repetition-penalty"]),
        (vec!["exec".into(), gsm8k.into(), "--seed".into(), "-1".into()], vec!["--seed"]),
        (vec!["exec".into(), gsm8k.into(), "--batch-size".into(), "0".into()], vec!["--batch-size"]),
        (vec!["exec".into(), gsm8k.into(), "--batch-size".into(), "-2".into()], vec!["--batch-size"]),
        (vec!["exec".into(), gsm8k.into(), "--threads".into(), "abc".into()], vec!["--threads"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-timeout".into(), "0".into()], vec!["--scenario-timeout"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-timeout".into(), "-3".into()], vec!["--scenario-timeout"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-timeout".into(), "NaN".into()], vec!["--scenario-timeout"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-timeout".into(), "1e400".into()], vec!["--scenario-timeout"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-memory-mib".into(), "0".into()], vec!["--scenario-memory-mib"]),
        (
            vec!["exec".into(), gsm8k.into(), "--max-consecutive-failures".into(), "0".into()],
            vec!["--max-consecutive-failures"],
        ),
        (vec!["exec".into(), gsm8k.into(), "--few-shot".into(), "-1".into()], vec!["--few-shot"]),
        (vec!["exec".into(), gsm8k.into(), "--gpu-mem-limit".into(), "lots".into()], vec!["--gpu-mem-limit"]),
        (vec!["exec".into(), gsm8k.into(), "--gpu-sample-ms".into(), "-1".into()], vec!["--gpu-sample-ms"]),
        (vec!["exec".into(), gsm8k.into(), "--device-id".into(), "-1".into()], vec!["--device-id"]),
        (vec!["exec".into(), gsm8k.into(), "--ep".into(), "quantum".into()], vec!["--ep"]),
        (vec!["exec".into(), gsm8k.into(), "--scoring".into(), "vibes".into()], vec!["--scoring"]),
        // exec: strings.
        (vec!["exec".into(), gsm8k.into(), "--system-prompt".into(), String::new()], vec!["--system-prompt"]),
        (vec!["exec".into(), gsm8k.into(), "--think-markers".into(), ",".into()], vec!["--think-markers"]),
        (vec!["exec".into(), gsm8k.into(), "--think-markers".into(), String::new()], vec!["--think-markers"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-arg".into(), "novalue".into()], vec!["--scenario-arg"]),
        (vec!["exec".into(), gsm8k.into(), "--scenario-arg".into(), "=x".into()], vec!["--scenario-arg"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), String::new()], vec!["--data"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), "hf:".into()], vec!["hf:"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), "hf:no-slash".into()], vec!["no-slash"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), "hf:a/b@".into()], vec!["hf:a/b@"]),
        // exec: files and folders.
        (vec!["exec".into(), gsm8k.into(), "--trace".into(), fx("folder")], vec!["--trace"]),
        (vec!["exec".into(), gsm8k.into(), "--model".into(), fx("missing-model")], vec!["missing-model"]),
        (vec!["exec".into(), gsm8k.into(), "--model".into(), fx("garbage.gguf")], vec!["garbage.gguf"]),
        (vec!["exec".into(), gsm8k.into(), "--model".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), gsm8k.into(), "--model".into(), model.clone()], vec!["garbage-model"]),
        (vec!["exec".into(), gsm8k.into(), "--model".into(), String::new()], vec!["--model"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("missing.jsonl")], vec!["missing.jsonl"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("garbage.jsonl")], vec!["garbage.jsonl"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("garbage.parquet")], vec!["garbage.parquet"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("garbage.csv")], vec!["garbage.csv"]),
        (vec!["exec".into(), gsm8k.into(), "--data".into(), fx("empty.jsonl")], vec!["empty.jsonl"]),
        (vec!["exec".into(), custom.into(), "--task".into(), fx("missing.yaml")], vec!["missing.yaml"]),
        (vec!["exec".into(), custom.into(), "--task".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), custom.into(), "--task".into(), fx("garbage.yaml")], vec!["garbage.yaml"]),
        (
            vec!["exec".into(), gsm8k.into(), "--adapter".into(), fx("missing.onnx_adapter")],
            vec!["missing.onnx_adapter"],
        ),
        (
            vec!["exec".into(), gsm8k.into(), "--adapter".into(), fx("garbage.onnx_adapter")],
            vec!["garbage.onnx_adapter"],
        ),
        (vec!["exec".into(), gsm8k.into(), "--adapter".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), gsm8k.into(), "--ort-lib".into(), fx("missing.so")], vec!["missing.so"]),
        (vec!["exec".into(), gsm8k.into(), "--ort-lib".into(), fx("garbage.so")], vec!["garbage.so"]),
        (vec!["exec".into(), gsm8k.into(), "--ort-lib".into(), fx("folder")], vec!["folder"]),
        (vec!["exec".into(), gsm8k.into(), "--out".into(), fx("garbage.txt"), "--model".into(), model.clone()], vec![]),
        // score.
        (vec!["score".into(), gsm8k.into(), "--outputs".into(), fx("missing.jsonl")], vec!["missing.jsonl"]),
        (vec!["score".into(), gsm8k.into(), "--outputs".into(), fx("folder")], vec!["folder"]),
        (vec!["score".into(), gsm8k.into(), "--outputs".into(), fx("garbage.jsonl")], vec!["garbage.jsonl"]),
        (vec!["score".into(), gsm8k.into(), "--outputs".into(), fx("empty.jsonl")], vec!["empty.jsonl"]),
        (vec!["score".into(), gsm8k.into(), "--outputs".into(), String::new()], vec!["--outputs"]),
        (vec!["score".into(), fx("garbage.wasm"), "--outputs".into(), fx("outputs.jsonl")], vec!["garbage.wasm"]),
        (
            vec![
                "score".into(),
                gsm8k.into(),
                "--outputs".into(),
                fx("outputs.jsonl"),
                "--data".into(),
                fx("garbage.jsonl"),
            ],
            vec!["garbage.jsonl"],
        ),
        (
            vec![
                "score".into(),
                gsm8k.into(),
                "--outputs".into(),
                fx("outputs.jsonl"),
                "--scenario-timeout".into(),
                "0".into(),
            ],
            vec!["--scenario-timeout"],
        ),
        (
            vec![
                "score".into(),
                gsm8k.into(),
                "--outputs".into(),
                fx("outputs.jsonl"),
                "--samples-out".into(),
                fx("folder"),
            ],
            vec!["folder"],
        ),
        // import.
        (vec!["import".into(), fx("missing.gguf")], vec!["missing.gguf"]),
        (vec!["import".into(), fx("garbage.gguf"), "--out".into(), fx("import-out")], vec!["garbage.gguf"]),
        (vec!["import".into(), fx("folder"), "--out".into(), fx("import-out")], vec!["folder"]),
        (vec!["import".into(), String::new()], vec![]),
        (vec!["import".into(), fx("garbage.gguf"), "--precision".into(), "int3".into()], vec!["--precision"]),
        (vec!["import".into(), fx("garbage.gguf"), "--accuracy-level".into(), "9".into()], vec!["--accuracy-level"]),
        (vec!["import".into(), fx("garbage.gguf"), "--accuracy-level".into(), "-1".into()], vec!["--accuracy-level"]),
        (vec!["import".into(), fx("garbage.gguf"), "--accuracy-level".into(), "300".into()], vec!["--accuracy-level"]),
        (vec!["import".into(), fx("garbage.gguf"), "--lora-targets".into(), "bogus".into()], vec!["--lora-targets"]),
        (vec!["import".into(), fx("garbage.gguf"), "--lora-targets".into(), String::new()], vec!["garbage.gguf"]),
        (vec!["import".into(), fx("garbage.gguf"), "--lora-max-rank".into(), "0".into()], vec!["--lora-max-rank"]),
        // bench.
        (vec!["bench".into(), "-p".into(), "0".into()], vec!["--prompt-tokens"]),
        (vec!["bench".into(), "-p".into(), "-1".into()], vec!["--prompt-tokens"]),
        (vec!["bench".into(), "-p".into(), "1,,2".into()], vec!["--prompt-tokens"]),
        (vec!["bench".into(), "-n".into(), "abc".into()], vec!["--gen-tokens"]),
        (vec!["bench".into(), "-r".into(), "0".into()], vec!["--repetitions"]),
        (vec!["bench".into(), "-b".into(), "0".into()], vec!["--batch-size"]),
        (vec!["bench".into(), "-t".into(), "0".into()], vec!["--threads"]),
        (vec!["bench".into(), "-w".into(), "-1".into()], vec!["--warmup"]),
        (vec!["bench".into(), "--ep".into(), "quantum".into()], vec!["--ep"]),
        (vec!["bench".into(), "--prompt-preset".into(), "huge".into()], vec!["--prompt-preset"]),
        (vec!["bench".into(), "--model".into(), fx("missing-model")], vec!["missing-model"]),
        (vec!["bench".into(), "--model".into(), fx("folder")], vec!["folder"]),
        (vec!["bench".into(), "--model".into(), fx("garbage.gguf")], vec!["garbage.gguf"]),
        (vec!["bench".into(), "--model".into(), model.clone()], vec!["garbage-model"]),
        (vec!["bench".into(), "--model".into(), model.clone(), "-p".into(), "99999999999999".into()], vec![]),
        (vec!["bench".into(), "--ort-lib".into(), fx("garbage.so")], vec!["garbage.so"]),
        // adapter.
        (
            vec![
                "adapter".into(),
                "init".into(),
                "--model".into(),
                fx("missing-model"),
                "--out".into(),
                fx("a.onnx_adapter"),
            ],
            vec!["missing-model"],
        ),
        (
            vec![
                "adapter".into(),
                "init".into(),
                "--model".into(),
                model.clone(),
                "--out".into(),
                fx("a.onnx_adapter"),
            ],
            vec!["garbage-model"],
        ),
        (
            vec![
                "adapter".into(),
                "init".into(),
                "--model".into(),
                model.clone(),
                "--rank".into(),
                "0".into(),
                "--out".into(),
                fx("a.onnx_adapter"),
            ],
            vec![],
        ),
        (
            vec![
                "adapter".into(),
                "init".into(),
                "--model".into(),
                model.clone(),
                "--scale".into(),
                "NaN".into(),
                "--out".into(),
                fx("a.onnx_adapter"),
            ],
            vec![],
        ),
        (vec!["adapter".into(), "info".into(), fx("missing.onnx_adapter")], vec!["missing.onnx_adapter"]),
        (vec!["adapter".into(), "info".into(), fx("garbage.onnx_adapter")], vec!["garbage.onnx_adapter"]),
        (vec!["adapter".into(), "info".into(), fx("folder")], vec!["folder"]),
        (
            vec![
                "adapter".into(),
                "convert".into(),
                fx("garbage-peft"),
                "--model".into(),
                model.clone(),
                "--out".into(),
                fx("b.onnx_adapter"),
            ],
            vec!["garbage-peft"],
        ),
        (
            vec![
                "adapter".into(),
                "convert".into(),
                fx("missing-peft"),
                "--model".into(),
                model.clone(),
                "--out".into(),
                fx("b.onnx_adapter"),
            ],
            vec!["missing-peft"],
        ),
    ];
    let mut all: Vec<(Vec<OsString>, Vec<&'static str>)> =
        cases.drain(..).map(|(args, expected)| (args.into_iter().map(OsString::from).collect(), expected)).collect();
    // Paths that are not UTF-8, for every positional file and file flag.
    all.extend([
        (vec!["exec".into(), non_utf8("s.wasm")], vec!["s.wasm"]),
        (os(&["exec", gsm8k, "--model"]).into_iter().chain([non_utf8("model")]).collect(), vec!["model"]),
        (os(&["exec", gsm8k, "--data"]).into_iter().chain([non_utf8("d.jsonl")]).collect(), vec!["--data"]),
        (os(&["exec", custom, "--task"]).into_iter().chain([non_utf8("t.yaml")]).collect(), vec!["t.yaml"]),
        (
            os(&["exec", gsm8k, "--adapter"]).into_iter().chain([non_utf8("a.onnx_adapter")]).collect(),
            vec!["a.onnx_adapter"],
        ),
        (os(&["exec", gsm8k, "--ort-lib"]).into_iter().chain([non_utf8("lib.so")]).collect(), vec!["lib.so"]),
        (os(&["score", gsm8k, "--outputs"]).into_iter().chain([non_utf8("o.jsonl")]).collect(), vec!["o.jsonl"]),
        (vec!["import".into(), non_utf8("m.gguf")], vec!["m.gguf"]),
        (os(&["bench", "--model"]).into_iter().chain([non_utf8("model")]).collect(), vec!["model"]),
        (os(&["adapter", "info"]).into_iter().chain([non_utf8("x.onnx_adapter")]).collect(), vec!["x.onnx_adapter"]),
    ]);
    all
}

#[test]
fn malformed_arguments_and_files_are_refused_with_a_message_never_a_panic() {
    let cases = cases();
    let failures: Vec<String> = cases.iter().filter_map(|(args, expected)| check(args, expected)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// `runner … | head`: stdout closed before runner writes. Every subcommand that prints must exit 0 quietly.
#[test]
fn a_closed_stdout_is_a_quiet_success() {
    let f = Fixtures::get();
    let commands: Vec<Vec<String>> = vec![
        vec!["paths".into()],
        vec!["paths".into(), "--json".into()],
        vec!["--help".into()],
        vec!["exec".into(), "--help".into()],
        vec!["score".into(), scenario_artifacts::GSM8K.into(), "--outputs".into(), f.path("outputs.jsonl")],
        vec![
            "score".into(),
            scenario_artifacts::GSM8K.into(),
            "--json".into(),
            "--outputs".into(),
            f.path("outputs.jsonl"),
        ],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = runner().args(&args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "runner {args:?} panicked on a closed stdout:\n{stderr}");
        assert_eq!(out.status.code(), Some(0), "runner {args:?} on a closed stdout: {:?}\n{stderr}", out.status);
        assert!(!stderr.contains("Error"), "runner {args:?} reported the closed pipe as an error:\n{stderr}");
    }
}
