//! `cargo xtask slurm`: submits `docs/slurm/runner-sweep.sbatch`, the script docs/experiments.md gives
//! users, to a real one-node Slurm cluster on localhost, and checks what a cluster does to a sweep:
//!
//! 1. an array job of two shards (GSM8K and SST-2 at int8) writes one shared sweep folder; both tasks start by importing the same
//!    precision of the default model at once; task 0 is cancelled mid-run (`scancel`) and requeued, and must
//!    continue from its last sample (`--resume`);
//! 2. `runner merge` of that folder must hold exactly the runs and samples of the same sweep run unsharded
//!    in one process: the same ids, greedy outputs and metrics, nothing duplicated, nothing missing;
//! 3. a second job whose task 1 is cancelled for good: the other task's run and the merge stay intact, and
//!    the merge names the run and its shard and exits non-zero.
//!
//! Slurm and munge come from Debian (`slurmctld`, `slurmd`, `slurm-client`, `munge`), installed with apt
//! when missing. The cluster's configuration, state and logs live in `target/slurm-test/cluster`; its
//! daemons are stopped when the task ends, whatever happened. Everything runner writes stays under
//! `target/slurm-test` (its own `RUNNER_HOME`, so the import really happens during the job).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::setup::{self, BuildScope, SetupOptions};
use crate::shell::{output, repo_root, run_command, step};

/// The script users copy; submitted exactly as it is.
const SCRIPT: &str = "docs/slurm/runner-sweep.sbatch";
const PACKAGES: [&str; 4] = ["slurmctld", "slurmd", "slurm-client", "munge"];
/// Ports of their own, so a Slurm the machine already runs is left alone.
const PORTS: (u16, u16) = (16917, 16918);
/// Both runs of the experiment, one per shard of a 2-task array (the plan is sorted by name).
const RUNS: [&str; 2] = ["gsm8k", "sst2"];
const JOB_TIMEOUT: Duration = Duration::from_secs(900);

pub fn run() -> Result<()> {
    let started = Instant::now();
    setup::run(&SetupOptions::default())?;
    let runner = setup::build_runner(BuildScope::Runner)?;
    step("Slurm and munge (Debian)", ensure_packages)?;
    let work = repo_root().join("target/slurm-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let env = RunnerEnv::new(&runner, &work)?;
    let experiment = write_experiment(&work)?;
    let cluster = step("one-node cluster on localhost", || Cluster::start(&work.join("cluster")))?;

    // 1. Two shards into one folder; task 0 cancelled mid-run, then requeued.
    let sweep = work.join("sweep");
    let job = cluster.submit(&env, &experiment, &sweep)?;
    let requeued = step("scancel task 0 mid-run, then requeue it", || {
        let kept = wait_for_samples(&sweep.join(RUNS[0]), 2)?;
        run_command(cluster.command("scancel").arg(format!("{job}_0")))?;
        cluster.wait_until_not_running(&format!("{job}_0"))?;
        let kept = kept.max(count_lines(&sweep.join(RUNS[0]).join("samples.jsonl")));
        // Slurm makes a requeued job eligible about two minutes later, once the killed job's credential
        // has expired: slurmd refuses to launch it sooner ("Job 2 already killed, do not launch batch job").
        cluster.scontrol(&["requeue", &format!("{job}_0")])?;
        Ok(kept)
    })?;
    let job_wall = step("wait for the array job", || cluster.wait(&job))?;
    let merged = work.join("merged");
    step("runner merge", || run_command(env.command("merge").arg(&sweep).arg("--out").arg(&merged)))?;

    // The same sweep unsharded, in one process, after the imports the shards made.
    let reference = work.join("reference");
    step("the same sweep in one process", || {
        run_command(
            env.command("exec")
                .arg("--experiment")
                .arg(&experiment)
                .args(["--no-progress", "--threads", "1", "--out"])
                .arg(&reference),
        )
    })?;
    let compared = step("merged against unsharded, sample for sample", || compare(&merged, &reference))?;
    let resumed = resumed_at(&merged.join(RUNS[0]))?;
    ensure!(!resumed.is_empty(), "{}: the requeued task did not resume its run (no resumed_at)", RUNS[0]);
    let imports = step("both tasks imported int8 at once", || check_imports(&env, &work))?;

    // 2. A task that fails for good: the other shard and the merge stay intact.
    let broken = work.join("sweep-broken");
    let job2 = cluster.submit(&env, &experiment, &broken)?;
    step("scancel task 1 for good", || {
        wait_for_samples(&broken.join(RUNS[1]), 1)?;
        run_command(cluster.command("scancel").arg(format!("{job2}_1")))
    })?;
    step("wait for the second job", || cluster.wait(&job2).map(drop))?;
    let merge_broken = env.command("merge").arg(&broken).arg("--out").arg(work.join("merged-broken")).output()?;
    let stderr = String::from_utf8_lossy(&merge_broken.stderr);
    ensure!(!merge_broken.status.success(), "runner merge of a sweep with a cancelled shard exited 0:\n{stderr}");
    ensure!(
        stderr.contains(&format!("{} (shard 1, ", RUNS[1])),
        "runner merge did not name the cancelled shard's run:\n{stderr}"
    );
    compare_run(&work.join("merged-broken").join(RUNS[0]), &reference.join(RUNS[0]))?;
    drop(cluster);

    eprintln!(
        "slurm: all green in {:.1} min: array job of 2 tasks {job_wall:.0} s; task 0 cancelled with {requeued} samples \
         kept, requeued and resumed at {}; {compared} samples of {} runs equal to the unsharded sweep; {imports}; \
         the merge of a sweep with a cancelled shard said: {}",
        started.elapsed().as_secs_f64() / 60.0,
        resumed.join(", "),
        RUNS.len(),
        stderr.trim().lines().last().unwrap_or_default()
    );
    Ok(())
}

fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        eprintln!("{} are installed", PACKAGES.join(", "));
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        bail!(
            "{} are missing; install them (apt-get install {}) or run as root",
            missing.join(", "),
            missing.join(" ")
        );
    }
    run_command(Command::new("apt-get").arg("update"))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// How runner runs here and inside the jobs: its own home (the default GGUF and ONNX Runtime linked from
/// the real one, no imports yet), cache and XDG cache.
struct RunnerEnv {
    runner: PathBuf,
    vars: Vec<(String, PathBuf)>,
}

impl RunnerEnv {
    fn new(runner: &Path, work: &Path) -> Result<RunnerEnv> {
        let paths = setup::runner_paths(runner)?;
        let path = |key: &str| paths[key].as_str().map(PathBuf::from).with_context(|| format!("no `{key}`"));
        let (gguf, ort) = (path("default_gguf")?, path("ort_cpu_lib")?);
        let home = work.join("home");
        let real_home = path("runner_home")?;
        let gguf_link = home.join(gguf.strip_prefix(&real_home).context("the GGUF is outside runner's home")?);
        std::fs::create_dir_all(gguf_link.parent().context("GGUF path has no folder")?)?;
        std::os::unix::fs::symlink(&gguf, &gguf_link)?;
        let vars = vec![
            ("RUNNER_HOME".to_string(), home),
            ("ORT_DYLIB_PATH".to_string(), ort),
            ("RUNNER_CACHE_DIR".to_string(), work.join("cache")),
            ("XDG_CACHE_HOME".to_string(), work.join("xdg-cache")),
        ];
        Ok(RunnerEnv { runner: runner.to_path_buf(), vars })
    }

    fn command(&self, subcommand: &str) -> Command {
        let mut command = Command::new(&self.runner);
        command.arg(subcommand).envs(self.vars.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `sbatch --export` value: the job's environment is this one plus runner's paths.
    fn export(&self, experiment: &Path, out: &Path) -> String {
        let mut export = vec!["ALL".to_string(), format!("RUNNER={}", self.runner.display())];
        export.push(format!("EXPERIMENT={}", experiment.display()));
        export.push(format!("OUT={}", out.display()));
        export.extend(self.vars.iter().map(|(k, v)| format!("{k}={}", v.display())));
        export.join(",")
    }
}

/// Two runs (GSM8K and SST-2 at int8, the default model), a few samples each, greedy and deterministic.
fn write_experiment(work: &Path) -> Result<PathBuf> {
    let dir = work.join("experiment");
    std::fs::create_dir_all(&dir)?;
    let scenarios = repo_root().join("scenarios");
    let yaml = format!(
        "description: runner's Slurm test\n\
         defaults:\n  precision: int8\n  max_new_tokens: 64\n  max_samples: 10\n  threads: 1\n\
         matrix:\n  scenario: [{}, {}]\n",
        scenarios.join("gsm8k.wasm").display(),
        scenarios.join("sst2.wasm").display()
    );
    std::fs::write(dir.join("experiment.yaml"), yaml)?;
    Ok(dir)
}

/// slurmctld and slurmd (and munged, when none runs) for this host, stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    started_munged: bool,
}

impl Cluster {
    fn start(dir: &Path) -> Result<Cluster> {
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let host = output(Command::new("hostname").arg("-s"))?.trim().to_string();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = dir.display();
        let conf = format!(
            "ClusterName=runner-test\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             SlurmctldPort={}\nSlurmdPort={}\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             ReturnToService=2\nMpiDefault=none\nJobRequeue=1\n\
             NodeName={host} CPUs={cpus} RealMemory=4000 State=UNKNOWN\n\
             PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            PORTS.0, PORTS.1
        );
        let conf_path = dir.join("slurm.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cluster = Cluster { dir: dir.to_path_buf(), conf: conf_path, started_munged: false };
        cluster.started_munged = ensure_munged()?;
        run_command(&mut cluster.command("slurmctld"))?;
        run_command(&mut cluster.command("slurmd"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = output(cluster.command("sinfo").args(["-h", "-o", "%T"])).unwrap_or_default();
            if state.trim() == "idle" {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                bail!("the node is `{}` after 60 s, not idle; see {}/log", state.trim(), dir.display());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A Slurm command that talks to this cluster.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    fn scontrol(&self, args: &[&str]) -> Result<String> {
        output(self.command("scontrol").args(args))
    }

    /// Submits the users' script as an array of 2 tasks, 1 CPU each; returns the job id.
    fn submit(&self, env: &RunnerEnv, experiment: &Path, out: &Path) -> Result<String> {
        let logs = self.dir.join("log");
        let id = output(
            self.command("sbatch")
                .args(["--parsable", "--array=0-1", "--cpus-per-task=1"])
                .arg(format!("--output={}/runner-sweep-%A_%a.log", logs.display()))
                .arg("--open-mode=append")
                .arg(format!("--export={}", env.export(experiment, out)))
                .arg(repo_root().join(SCRIPT)),
        )?;
        Ok(id.trim().to_string())
    }

    fn job_states(&self, job: &str) -> BTreeMap<String, String> {
        let text = output(self.command("squeue").args(["-h", "-r", "-j", job, "-o", "%i %T"])).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, state)| (id.to_string(), state.trim().to_string()))
            .collect()
    }

    fn wait_until_not_running(&self, task: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.job_states(task).values().any(|s| s == "RUNNING" || s == "COMPLETING") {
            ensure!(Instant::now() < deadline, "{task} is still running 60 s after scancel");
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Waits until no task of `job` is queued or running; returns the seconds it took.
    fn wait(&self, job: &str) -> Result<f64> {
        let started = Instant::now();
        while !self.job_states(job).is_empty() {
            ensure!(started.elapsed() < JOB_TIMEOUT, "job {job} is not done after {JOB_TIMEOUT:?}; see the logs");
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid_file in ["slurmd.pid", "slurmctld.pid"] {
            stop(&self.dir.join(pid_file));
        }
        if self.started_munged {
            stop(Path::new("/run/munge/munged.pid"));
        }
    }
}

fn stop(pid_file: &Path) {
    if let Ok(pid) = std::fs::read_to_string(pid_file) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

/// Starts munged when no munge daemon answers; returns whether it did.
fn ensure_munged() -> Result<bool> {
    let answers = || Command::new("munge").arg("-n").output().is_ok_and(|o| o.status.success());
    if answers() {
        return Ok(false);
    }
    let key = Path::new("/etc/munge/munge.key");
    if !key.is_file() {
        run_command(Command::new("mungekey").arg("--create"))?;
    }
    run_command(Command::new("chown").args(["-R", "munge:munge", "/etc/munge"]))?;
    std::fs::create_dir_all("/run/munge")?;
    run_command(Command::new("chown").args(["munge:munge", "/run/munge"]))?;
    run_command(Command::new("su").args(["-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"]))?;
    ensure!(answers(), "munged started but `munge -n` still fails");
    Ok(true)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Waits until the run in `dir` has finished `count` samples; returns how many it had then.
fn wait_for_samples(dir: &Path, count: usize) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = count_lines(&dir.join("samples.jsonl"));
        if done >= count {
            return Ok(done);
        }
        ensure!(Instant::now() < deadline, "{} has {done} samples after 300 s", dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each sample's identity and results: what must be the same in the merged and unsharded sweeps.
fn samples(dir: &Path) -> Result<Vec<Value>> {
    let path = dir.join("samples.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).with_context(|| format!("{}", path.display()))?;
            let keep = ["repetition", "index", "id", "status", "output", "extracted", "metrics", "output_token_ids"];
            Ok(keep.iter().map(|k| (k.to_string(), record[*k].clone())).collect::<serde_json::Map<_, _>>().into())
        })
        .collect()
}

/// The run in `merged` holds exactly the samples of the one in `reference`, each once, in order.
fn compare_run(merged: &Path, reference: &Path) -> Result<usize> {
    let (ours, theirs) = (samples(merged)?, samples(reference)?);
    let mut positions: Vec<(u64, u64)> =
        ours.iter().map(|s| (s["repetition"].as_u64().unwrap_or(0), s["index"].as_u64().unwrap_or(0))).collect();
    positions.sort_unstable();
    positions.dedup();
    ensure!(positions.len() == ours.len(), "{}: a sample is recorded twice", merged.display());
    let mut sorted = ours.clone();
    sorted.sort_by_key(|s| (s["repetition"].as_u64(), s["index"].as_u64()));
    ensure!(
        sorted.len() == theirs.len(),
        "{}: {} samples, the unsharded run {}",
        merged.display(),
        sorted.len(),
        theirs.len()
    );
    for (a, b) in sorted.iter().zip(&theirs) {
        ensure!(a == b, "{}: sample differs from the unsharded run:\n  {a}\n  {b}", merged.display());
    }
    let metrics = |dir: &Path| -> Result<Value> {
        let summary: Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json"))?)?;
        Ok(summary["results"]["metrics"].clone())
    };
    ensure!(metrics(merged)? == metrics(reference)?, "{}: aggregated metrics differ", merged.display());
    Ok(sorted.len())
}

/// Every run of the two sweeps, sample for sample; returns the samples compared.
fn compare(merged: &Path, reference: &Path) -> Result<usize> {
    let names = |dir: &Path| -> Result<Vec<String>> {
        let sweep: Value = serde_json::from_slice(&std::fs::read(dir.join("sweep.json"))?)?;
        let runs = sweep["runs"].as_array().context("sweep.json has no runs")?;
        ensure!(runs.iter().all(|r| r["status"] == "complete"), "{}: not every run is complete", dir.display());
        Ok(runs.iter().filter_map(|r| r["name"].as_str().map(String::from)).collect())
    };
    let runs = names(merged)?;
    ensure!(runs == names(reference)?, "the merged sweep's runs {runs:?} are not the unsharded sweep's");
    ensure!(runs == RUNS, "the sweep's runs are {runs:?}, not {RUNS:?}");
    runs.iter().map(|run| compare_run(&merged.join(run), &reference.join(run))).sum()
}

fn resumed_at(run: &Path) -> Result<Vec<String>> {
    let summary: Value = serde_json::from_slice(&std::fs::read(run.join("summary.json"))?)?;
    Ok(summary["resumed_at"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect())
}

/// Both tasks found no int8 import and made one at once; one complete folder is left, and no partial one.
fn check_imports(env: &RunnerEnv, work: &Path) -> Result<String> {
    let logs = std::fs::read_dir(work.join("cluster/log"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("runner-sweep-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>();
    let importing = logs.iter().filter(|log| log.contains("The int8 import of")).count();
    ensure!(importing >= 2, "only {importing} task logs say they imported int8: {logs:?}");
    let home = &env.vars[0].1;
    let model = output(env.command("paths").arg("--json"))?;
    let paths: Value = serde_json::from_str(&model)?;
    let int4 = PathBuf::from(paths["default_model"].as_str().context("no default_model")?);
    let folder = int4.with_file_name("int8");
    ensure!(folder.join("model.onnx").is_file(), "{} is not a complete model folder", folder.display());
    let partial = std::fs::read_dir(folder.parent().context("no parent")?)?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains(".partial-"));
    ensure!(!partial, "a partial import is left beside {}", folder.display());
    Ok(format!("{importing} tasks imported int8 at once into {} under {}", folder.display(), home.display()))
}
