//! Results that survive anything, through the real `runner` binary on a tiny generated model with the real
//! GSM8K component: `--resume` after a torn last line, a refused resume when the configuration changed,
//! SIGKILL at random moments and resume until the run completes (issue 8: the same per-sample results as
//! an uninterrupted run), a file size limit that fills the disk mid-run, and `--warmup`, `--repeat` and
//! `samples.csv`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{read_summary, run_text as run, runner};
use runner::import::Precision;
use runner::results::csv::SAMPLES_CSV_FILE;
use runner::results::writer::{GZIPPED_SAMPLES_FILE, SAMPLES_FILE, SUMMARY_FILE, SUMMARY_MARKDOWN_FILE, read_samples};
use runner::results::{RunStatus, RunSummary, SampleRecord, SampleStatus};
use runner::testing::SplitMix64;

mod common;

/// Samples in the kill-and-resume run.
const SAMPLES: usize = 30;

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    data: PathBuf,
}

/// A tiny model folder and a GSM8K-format dataset of `SAMPLES` questions, shared by the tests of this file.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = common::tiny_model(11, Precision::Int4);
        let data = dir.path().join("questions.jsonl");
        let lines: Vec<String> = (0..SAMPLES)
            .map(|i| {
                let (a, b) = (3 * i + 1, 7 * i + 2);
                serde_json::json!({
                    "question": format!("A shop has {a} apples, gets {b} more, \"fresh\", and sells none. How many?"),
                    "answer": format!("{a} + {b} = {}\n#### {}", a + b, a + b),
                })
                .to_string()
            })
            .collect();
        fs::write(&data, lines.join("\n") + "\n").unwrap();
        Fixture { _dir: dir, model, data }
    })
}

/// `runner exec gsm8k` on the tiny model and the test dataset, greedy, 3 new tokens, one thread (the same
/// tokens on every run), writing to `out`.
fn exec(out: &Path) -> Command {
    exec_generating(out, 3)
}

fn exec_generating(out: &Path, max_new_tokens: usize) -> Command {
    let f = fixture();
    let mut cmd = common::exec(scenario_artifacts::GSM8K, &f.model);
    cmd.arg("--data")
        .arg(&f.data)
        .args(["--threads", "1", "--max-new-tokens"])
        .arg(max_new_tokens.to_string())
        .arg("--out")
        .arg(out);
    cmd
}

/// What a sample's result is, timings and memory aside: two runs of one configuration agree on all of it.
fn result_of(r: &SampleRecord) -> serde_json::Value {
    serde_json::json!({
        "key": [r.repetition, r.index], "id": r.id, "status": r.status, "reference": r.reference,
        "prompt": r.prompt, "prompt_text": r.prompt_text, "output": r.output, "extracted": r.extracted,
        "metrics": r.metrics, "finish": r.finish, "prompt_tokens": r.prompt_tokens,
        "output_tokens": r.output_tokens, "error": r.error,
    })
}

fn results_of(records: &[SampleRecord]) -> Vec<serde_json::Value> {
    let mut sorted: Vec<&SampleRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.repetition, r.index));
    sorted.into_iter().map(result_of).collect()
}

/// Each (repetition, index) once, and every index of each repetition from 0 up without a gap.
fn assert_complete_without_duplicates(records: &[SampleRecord], samples: usize, repeat: usize) {
    let keys: BTreeSet<(usize, usize)> = records.iter().map(|r| (r.repetition, r.index)).collect();
    assert_eq!(keys.len(), records.len(), "a sample is recorded twice");
    let expected: BTreeSet<(usize, usize)> = (0..repeat).flat_map(|r| (0..samples).map(move |i| (r, i))).collect();
    assert_eq!(keys, expected);
}

/// Every line of `samples.jsonl` is a complete record (ends with its newline and parses).
fn assert_only_complete_lines(dir: &Path) -> usize {
    let bytes = fs::read(dir.join(SAMPLES_FILE)).unwrap();
    assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "the file ends inside a line");
    read_samples(dir).unwrap().len()
}

/// An uninterrupted run of the whole dataset, and how long the process took.
struct Reference {
    _dir: tempfile::TempDir,
    out: PathBuf,
    records: Vec<SampleRecord>,
    summary: RunSummary,
    wall: Duration,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let started = Instant::now();
        let (status, text) = run(&mut exec(&out));
        let wall = started.elapsed();
        assert!(status.status.success(), "the reference run failed:\n{text}");
        let records = read_samples(&out).unwrap();
        let summary = read_summary(&out);
        assert_eq!(summary.status, RunStatus::Complete);
        assert_complete_without_duplicates(&records, SAMPLES, 1);
        assert!(records.iter().all(|r| r.status == SampleStatus::Ok), "{records:?}");
        Reference { _dir: dir, out, records, summary, wall }
    })
}

#[test]
fn resume_after_a_torn_last_line_keeps_every_finished_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (status, text) = run(exec(&out).args(["--max-samples", "5", "--repeat", "2"]));
    assert!(status.status.success(), "{text}");
    let uninterrupted = read_samples(&out).unwrap();
    assert_complete_without_duplicates(&uninterrupted, 5, 2);

    // Killed while appending the 8th line: 7 complete lines and half of the next.
    let text = fs::read_to_string(out.join(SAMPLES_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let torn = format!("{}\n{}", lines[..7].join("\n"), &lines[7][..lines[7].len() / 2]);
    fs::write(out.join(SAMPLES_FILE), &torn).unwrap();

    let (status, text) = run(exec(&out).args(["--max-samples", "5", "--repeat", "2", "--resume"]));
    assert!(status.status.success(), "{text}");
    assert!(text.contains("samples.jsonl: line 8") && text.contains("dropped"), "the torn line is reported:\n{text}");
    assert!(text.contains("7 finished samples kept, 3 to run"), "{text}");
    let resumed = read_samples(&out).unwrap();
    assert_eq!(resumed.len(), 10);
    assert_complete_without_duplicates(&resumed, 5, 2);
    assert_eq!(results_of(&resumed), results_of(&uninterrupted));
    // The first 7 lines are the kept ones, byte for byte.
    assert!(fs::read_to_string(out.join(SAMPLES_FILE)).unwrap().starts_with(&(lines[..7].join("\n") + "\n")));
    let summary = read_summary(&out);
    assert_eq!(summary.status, RunStatus::Complete);
    assert_eq!(summary.results.samples, 10);
    assert_eq!(summary.resumed_at.len(), 1);
    assert_eq!(summary.results.metrics["accuracy"].count, 5, "quality counts each sample once");
}

#[test]
fn a_changed_configuration_is_refused_by_name_and_the_folder_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (status, text) = run(exec(&out).args(["--max-samples", "4"]));
    assert!(status.status.success(), "{text}");
    // Interrupted after two samples, mid-line.
    let text = fs::read_to_string(out.join(SAMPLES_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    fs::write(out.join(SAMPLES_FILE), format!("{}\n{}\n{{\"index\"", lines[0], lines[1])).unwrap();
    let before = fs::read(out.join(SAMPLES_FILE)).unwrap();

    let (status, text) = run(exec_generating(&out, 2).args(["--max-samples", "4", "--resume"]));
    assert!(!status.status.success());
    assert!(text.contains("settings.max_new_tokens: 3 → 2"), "the changed setting is named:\n{text}");
    assert!(text.contains("resume would mix two configurations, use another --out"), "{text}");
    let (status, text) = run(exec(&out).args(["--max-samples", "5", "--resume"]));
    assert!(!status.status.success());
    assert!(text.contains("dataset.selected_ids: 4 → 5 items"), "{text}");
    assert_eq!(fs::read(out.join(SAMPLES_FILE)).unwrap(), before, "a refused resume changes nothing");

    // Without --resume the folder is refused, with a pointer to it.
    let (status, text) = run(exec(&out).args(["--max-samples", "4"]));
    assert!(!status.status.success());
    assert!(text.contains("already holds a run") && text.contains("--resume"), "{text}");
    // --resume needs to be told which folder.
    let (status, text) = run(runner()
        .arg("exec")
        .arg(scenario_artifacts::GSM8K)
        .args(["--resume", "--no-progress"])
        .arg("--model")
        .arg(&fixture().model));
    assert!(!status.status.success());
    assert!(text.contains("--resume needs --out"), "{text}");

    // The same configuration resumes.
    let (status, text) = run(exec(&out).args(["--max-samples", "4", "--resume"]));
    assert!(status.status.success(), "{text}");
    assert_complete_without_duplicates(&read_samples(&out).unwrap(), 4, 1);
}

#[test]
fn an_unfinished_run_archived_on_one_machine_resumes_from_its_archive_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (status, text) = run(exec(&out).args(["--max-samples", "4"]));
    assert!(status.status.success(), "{text}");
    let uninterrupted = read_samples(&out).unwrap();
    // Stopped after two samples, then archived the way reports/ keeps runs: the dataset's text dropped, gzipped.
    let text = fs::read_to_string(out.join(SAMPLES_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    fs::write(out.join(SAMPLES_FILE), format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let data = dir.path().join("data");
    let page = dir.path().join("page.md");
    let (status, text) =
        run(runner().arg("report").arg(&out).arg("--archive").arg(&data).args(["--format", "md", "--out"]).arg(&page));
    assert!(status.status.success(), "{text}");
    let archived = walk_files(&data).into_iter().find(|p| p.ends_with(SUMMARY_FILE)).unwrap();
    // Only the archive travels to the other machine.
    let moved = dir.path().join("moved");
    fs::create_dir(&moved).unwrap();
    for file in fs::read_dir(archived.parent().unwrap()).unwrap() {
        let file = file.unwrap().path();
        fs::copy(&file, moved.join(file.file_name().unwrap())).unwrap();
    }
    assert!(!moved.join(SAMPLES_FILE).exists() && moved.join(GZIPPED_SAMPLES_FILE).exists());

    let (status, text) = run(exec(&moved).args(["--max-samples", "4"]));
    assert!(!status.status.success() && text.contains("already holds a run"), "{text}");
    let (status, text) = run(exec(&moved).args(["--max-samples", "4", "--resume"]));
    assert!(status.status.success(), "{text}");
    assert!(text.contains("2 finished samples kept, 2 to run"), "{text}");
    assert!(!moved.join(GZIPPED_SAMPLES_FILE).exists(), "the run goes on in samples.jsonl alone");
    let resumed = read_samples(&moved).unwrap();
    assert_complete_without_duplicates(&resumed, 4, 1);
    for (kept, reference) in resumed.iter().zip(&uninterrupted) {
        assert_eq!((&kept.id, &kept.output, &kept.metrics), (&reference.id, &reference.output, &reference.metrics));
    }
    assert!(resumed[..2].iter().all(|r| r.prompt.is_none()), "the archive kept no dataset text");
    assert_eq!(resumed[2].prompt, uninterrupted[2].prompt, "the samples run after the move have theirs");
    let summary = read_summary(&moved);
    assert_eq!(summary.status, RunStatus::Complete);
    assert_eq!(summary.results.metrics["accuracy"].count, 4);
}

/// Every file under `dir`, recursively.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk_files(&path)) } else { files.push(path) }
    }
    files
}

/// Lines in `samples.jsonl` so far (complete or not).
fn lines_written(out: &Path) -> usize {
    fs::read(out.join(SAMPLES_FILE)).map_or(0, |bytes| bytes.iter().filter(|b| **b == b'\n').count())
}

/// Issue 8: SIGKILL at a seeded random moment, then `--resume`, round after round (at least 20 kills), until
/// the run completes; it ends with exactly the results of an uninterrupted run.
#[test]
fn sigkill_at_random_moments_and_resume_gives_the_uninterrupted_results() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // Calibrated on the uninterrupted run: the process's startup, and the time per sample.
    let sampling: Duration = reference.records.iter().map(|r| Duration::from_secs_f64(r.timings.e2e_ms / 1e3)).sum();
    let startup = reference.wall.saturating_sub(sampling);
    let per_sample = sampling / SAMPLES as u32;
    let mut rng = SplitMix64::new(8);
    let mut fraction = || (rng.next_u64() % 1000) as f64 / 1000.0;
    let (mut kills, mut torn_reports, mut rounds, mut kills_in_startup) = (0usize, 0usize, 0usize, 0usize);
    let log = dir.path().join("round.log");
    loop {
        rounds += 1;
        assert!(rounds < 300, "no completion after {rounds} rounds");
        let before = lines_written(&out);
        // A round is killed after 0, 1 or 2 new lines plus a random part of a sample (so the kill lands
        // anywhere in one: prompt, generation, scoring, the write), or, with 0, at a random moment of startup.
        // It never lets the run finish before the 20th kill.
        let killing = kills < 20;
        let room = SAMPLES.saturating_sub(before).saturating_sub(20 - kills.min(20) + 2);
        let new_lines = ((fraction() * 3.0) as usize).min(room);
        let (deadline, extra) = if new_lines == 0 {
            (startup.mul_f64(1.5 * fraction()), Duration::ZERO)
        } else {
            (Duration::MAX, per_sample.mul_f64(fraction()))
        };
        let mut cmd = exec(&out);
        cmd.arg("--resume").stdout(Stdio::null()).stderr(fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().unwrap();
        let started = Instant::now();
        let mut reached: Option<Instant> = None;
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if killing {
                let written = lines_written(&out).saturating_sub(before);
                if reached.is_none() && written >= new_lines.max(1) {
                    reached = Some(Instant::now());
                }
                if started.elapsed() >= deadline || reached.is_some_and(|at| at.elapsed() >= extra) {
                    break None;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let stderr = fs::read_to_string(&log).unwrap();
        assert!(!stderr.contains("panicked"), "runner panicked:\n{stderr}");
        torn_reports += usize::from(stderr.contains("dropped and its sample runs again"));
        match exited {
            Some(status) => {
                assert!(status.success(), "round {rounds} failed:\n{stderr}");
                assert!(!killing, "the run finished before 20 kills (round {rounds})");
                assert_eq!(read_summary(&out).status, RunStatus::Complete);
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                kills_in_startup += usize::from(lines_written(&out) == before);
                // Whatever moment it died at, the folder holds complete lines and at most one torn last line.
                runner::results::writer::scan_samples(&out).unwrap();
            }
        }
    }
    eprintln!(
        "{rounds} rounds, {kills} SIGKILLs ({kills_in_startup} before a new line was written), {torn_reports} torn \
         last lines reported and dropped"
    );
    assert!(kills >= 20, "only {kills} kills");

    let records = read_samples(&out).unwrap();
    assert_eq!(records.len(), SAMPLES);
    assert_complete_without_duplicates(&records, SAMPLES, 1);
    assert_eq!(results_of(&records), results_of(&reference.records));
    let summary = read_summary(&out);
    assert_eq!(summary.status, RunStatus::Complete);
    assert_eq!(summary.fingerprint, reference.summary.fingerprint, "same configuration, same fingerprint");
    assert_eq!(summary.results.metrics, reference.summary.results.metrics);
    assert_eq!(summary.results.samples, SAMPLES);
    let csv_rows = csv::Reader::from_path(out.join(SAMPLES_CSV_FILE)).unwrap().records().count();
    assert_eq!(csv_rows, SAMPLES, "samples.csv is rebuilt from every kept sample");
}

/// A full disk while writing results, made with a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so
/// the write fails with EFBIG instead of killing the process): a clear error naming the file, only
/// complete lines left, a summary of exactly what was written, and `--resume` completes the run.
#[test]
fn a_full_disk_stops_the_run_with_every_complete_line_kept_and_resume_finishes_it() {
    let reference = reference();
    let jsonl = fs::metadata(reference.out.join(SAMPLES_FILE)).unwrap().len();
    let largest_other = [SUMMARY_FILE, SUMMARY_MARKDOWN_FILE, SAMPLES_CSV_FILE]
        .iter()
        .map(|f| fs::metadata(reference.out.join(f)).unwrap().len())
        .max()
        .unwrap();
    // Room for the summary, the CSV and what wasmtime writes to instantiate a component (its memory image
    // goes to a memfd, which the limit covers too: the component's size bounds it), not for all the samples.
    let component = fs::metadata(scenario_artifacts::GSM8K).unwrap().len();
    let limit = (96u64 << 10).max(8 * largest_other).max(component + (64 << 10));
    // Enough passes over the samples that samples.jsonl outgrows the limit by half again.
    let repeats = usize::try_from((limit + limit / 2) / jsonl + 2).unwrap();
    let expected = repeats as u64 * jsonl;
    assert!(expected > limit + limit / 2, "the run's samples.jsonl ({expected} B) must outgrow the limit ({limit} B)");
    let repeat = repeats.to_string();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut cmd = exec(&out);
    cmd.args(["--repeat", &repeat]);
    // Compiled, not cached: the component cache must not hit the limit first.
    cmd.arg("--no-scenario-cache");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (status, text) = run(&mut cmd);
    assert!(!status.status.success(), "the run must fail when its results cannot be written:\n{text}");
    assert!(text.contains("samples.jsonl") && text.contains("File too large"), "the error names the file:\n{text}");
    let kept = assert_only_complete_lines(&out);
    assert!(kept > 0 && kept < SAMPLES * repeats, "{kept} samples kept");
    assert!(fs::metadata(out.join(SAMPLES_FILE)).unwrap().len() <= limit);
    let summary = read_summary(&out);
    assert_eq!(summary.status, RunStatus::Aborted);
    assert!(summary.abort_reason.as_deref().is_some_and(|r| r.contains("samples.jsonl")), "{summary:?}");
    assert_eq!(summary.results.samples, kept, "the summary counts exactly the samples written");

    let (status, text) = run(exec(&out).args(["--resume", "--repeat", &repeat]));
    assert!(status.status.success(), "{text}");
    let records = read_samples(&out).unwrap();
    assert_complete_without_duplicates(&records, SAMPLES, repeats);
    let first: Vec<SampleRecord> = records.iter().filter(|r| r.repetition == 0).cloned().collect();
    assert_eq!(results_of(&first), results_of(&reference.records));
    for record in &records {
        let same = &first[record.index];
        assert_eq!((&record.id, &record.output, &record.metrics), (&same.id, &same.output, &same.metrics));
    }
    assert_eq!(read_summary(&out).status, RunStatus::Complete);
}

#[test]
fn warmup_and_repeat_are_recorded_and_aggregated_and_the_csv_has_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (status, text) = run(exec(&out).args(["--max-samples", "3", "--warmup", "2", "--repeat", "2", "--csv-text"]));
    assert!(status.status.success(), "{text}");
    let records = read_samples(&out).unwrap();
    // Warm-up samples are not recorded.
    assert_eq!(records.len(), 6);
    assert_complete_without_duplicates(&records, 3, 2);
    // Greedy decoding: each repetition gives the same outputs; only timings differ.
    let (first, second): (Vec<_>, Vec<_>) = records.iter().partition(|r| r.repetition == 0);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!((&a.id, &a.output, &a.metrics), (&b.id, &b.output, &b.metrics));
    }
    // The first repetition's lines carry no `repetition` field; the second's do.
    let text = fs::read_to_string(out.join(SAMPLES_FILE)).unwrap();
    assert_eq!(text.lines().filter(|l| l.contains("\"repetition\":1")).count(), 3);
    assert_eq!(text.lines().filter(|l| l.contains("\"repetition\"")).count(), 3);

    let summary = read_summary(&out);
    assert_eq!((summary.settings.warmup, summary.settings.repeat), (2, 2));
    assert_eq!(summary.results.samples, 6);
    assert_eq!(summary.results.metrics["accuracy"].count, 3, "quality is over the first repetition");
    assert_eq!(summary.results.e2e_ms.as_ref().unwrap().count, 6, "timings are over every repetition");
    let markdown = fs::read_to_string(out.join(SUMMARY_MARKDOWN_FILE)).unwrap();
    assert!(markdown.contains("2 warm-up samples") && markdown.contains("repetition 0"), "{markdown}");

    let mut csv = csv::Reader::from_path(out.join(SAMPLES_CSV_FILE)).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    for column in ["index", "repetition", "id", "status", "accuracy", "answered", "ttft_ms", "output", "prompt_text"] {
        assert!(header.iter().any(|h| h == column), "{column} missing from {header:?}");
    }
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    let output_column = header.iter().position(|h| h == "output").unwrap();
    let repetition_column = header.iter().position(|h| h == "repetition").unwrap();
    for (row, record) in rows.iter().zip(&first) {
        // Outputs with commas, quotes and newlines read back exactly.
        assert_eq!(&row[output_column], record.output.as_deref().unwrap());
        assert_eq!(&row[repetition_column], "0");
    }

    // Without --csv-text the CSV has no text columns; --repeat 0 is refused by name.
    let plain = dir.path().join("plain");
    let (status, text) = run(exec(&plain).args(["--max-samples", "1"]));
    assert!(status.status.success(), "{text}");
    let header = csv::Reader::from_path(plain.join(SAMPLES_CSV_FILE)).unwrap().headers().unwrap().clone();
    assert!(!header.iter().any(|h| h == "output" || h == "prompt_text"), "{header:?}");
    let (status, text) = run(exec(&dir.path().join("zero")).args(["--repeat", "0"]));
    assert!(!status.status.success() && text.contains("--repeat"), "{text}");
}

/// Starts `cmd` with SIGINT at its default (a test harness started in the background may pass it on
/// ignored, which runner then respects), its stderr in `log` and its stdout in `stdout.log` beside it.
fn spawn_interruptible(cmd: &mut Command, log: &Path) -> std::process::Child {
    let stdout = fs::File::create(log.with_file_name("stdout.log")).unwrap();
    cmd.stdout(stdout).stderr(fs::File::create(log).unwrap());
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Polls until `done` holds (or the child exits first: then false).
fn wait_for(child: &mut std::process::Child, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return done();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Ctrl-C mid-run: the sample in progress finishes, the summary says `interrupted` with the aggregates of
/// exactly the samples written and how to continue, the exit status is 130, and `--resume` completes the
/// run. SIGTERM (what `kill`, systemd and Slurm send) does the same.
#[test]
fn ctrl_c_or_sigterm_stops_after_the_sample_in_progress_and_resume_finishes_the_run() {
    const REPEAT: usize = 4;
    for (signal_number, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let log = dir.path().join("stderr.log");
        let mut cmd = exec(&out);
        cmd.args(["--repeat", &REPEAT.to_string()]);
        let mut child = spawn_interruptible(&mut cmd, &log);
        assert!(wait_for(&mut child, || lines_written(&out) >= 3), "{name}: the run ended before 3 samples");
        signal(&child, signal_number);
        let status = child.wait().unwrap();
        let stderr = fs::read_to_string(&log).unwrap();
        assert!(!stderr.contains("panicked"), "{name}: runner panicked:\n{stderr}");
        assert_eq!(status.code(), Some(runner::interrupt::EXIT_INTERRUPTED), "{name}:\n{stderr}");
        assert!(stderr.contains("Interrupted: stopping after the samples in progress"), "{name}:\n{stderr}");
        let kept = assert_only_complete_lines(&out);
        assert!((3..SAMPLES * REPEAT).contains(&kept), "{name}: {kept} samples kept");
        let summary = read_summary(&out);
        assert_eq!(summary.status, RunStatus::Interrupted, "{name}");
        let reason = summary.abort_reason.clone().unwrap_or_default();
        assert!(
            reason.contains(&format!("after {kept} of {} samples", SAMPLES * REPEAT)) && reason.contains("--resume"),
            "{name}: {reason}"
        );
        assert!(stderr.contains(&reason), "{name}: the reason is printed:\n{stderr}");
        let table = fs::read_to_string(dir.path().join("stdout.log")).unwrap();
        assert!(table.contains("status") && table.contains(&format!("after {kept} of")), "{name}:\n{table}");
        assert_eq!(summary.results.samples, kept, "{name}: the summary aggregates exactly the samples written");
        assert!(summary.results.metrics.contains_key("accuracy"), "{name}: {:?}", summary.results.metrics);

        let (status, text) = run(exec(&out).args(["--resume", "--repeat", &REPEAT.to_string()]));
        assert!(status.status.success(), "{name}: {text}");
        assert_complete_without_duplicates(&read_samples(&out).unwrap(), SAMPLES, REPEAT);
        assert_eq!(read_summary(&out).status, RunStatus::Complete, "{name}");
    }
}

/// A second Ctrl-C does not wait for the sample in progress (long here: 900 tokens each): the process ends
/// at once with status 130, every line written complete.
#[test]
fn a_second_ctrl_c_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let log = dir.path().join("stderr.log");
    let mut child = spawn_interruptible(exec_generating(&out, 900).arg("--ignore-eos"), &log);
    assert!(wait_for(&mut child, || lines_written(&out) >= 1), "the run ended before its first sample");
    signal(&child, libc::SIGINT);
    let stopping = || fs::read_to_string(&log).unwrap().contains("Interrupted: stopping");
    assert!(wait_for(&mut child, stopping), "no message after the first Ctrl-C");
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    let stderr = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(runner::interrupt::EXIT_INTERRUPTED), "{stderr}");
    assert!(stderr.contains("Stopped at once"), "{stderr}");
    let kept = assert_only_complete_lines(&out);
    assert!((1..SAMPLES).contains(&kept), "{kept} samples kept");
}

/// Ctrl-C in a sweep stops the sweep too: the run in progress is `interrupted` in sweep.json, the runs after
/// it are never started, the exit status is 130, and `--resume` runs what is left.
#[test]
fn ctrl_c_stops_a_sweep_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let log = dir.path().join("stderr.log");
    let sweep = |cmd: &mut Command| {
        cmd.args(["--repeat", "4", "--batch-size", "1,2"]);
    };
    let mut cmd = exec(&out);
    sweep(&mut cmd);
    let mut child = spawn_interruptible(&mut cmd, &log);
    let first_run_started =
        || fs::read_dir(&out).into_iter().flatten().flatten().any(|entry| lines_written(&entry.path()) >= 3);
    assert!(wait_for(&mut child, first_run_started), "the sweep ended before its first run wrote 3 samples");
    signal(&child, libc::SIGINT);
    let status = child.wait().unwrap();
    let stderr = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(runner::interrupt::EXIT_INTERRUPTED), "{stderr}");
    assert!(stderr.contains("the sweep stopped during"), "{stderr}");
    let state: runner::sweep::SweepFile =
        serde_json::from_slice(&fs::read(out.join(runner::sweep::SWEEP_FILE)).unwrap()).unwrap();
    let statuses: Vec<&str> = state.runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["interrupted", "pending"], "{stderr}");

    let mut cmd = exec(&out);
    sweep(&mut cmd);
    let (status, text) = run(cmd.arg("--resume"));
    assert!(status.status.success(), "{text}");
    let state: runner::sweep::SweepFile =
        serde_json::from_slice(&fs::read(out.join(runner::sweep::SWEEP_FILE)).unwrap()).unwrap();
    assert!(state.runs.iter().all(|r| r.status.as_str() == "complete"), "{text}");
    for run in &state.runs {
        assert_complete_without_duplicates(&read_samples(&out.join(&run.dir)).unwrap(), SAMPLES, 4);
    }
}
