//! `--workers N`: a log-likelihood run's batches scored on N CPU sessions side by side, each with its share
//! of the run's threads. On a few cores this is faster than one session with all of them: a question's
//! context is a few dozen to a few hundred tokens, and at that size a session's threads spend much of each
//! small operator waiting on each other (measured on 2 cores, MMLU 0-shot at int4: two one-thread sessions
//! scored 1.3x the questions per second of one two-thread session).
//!
//! The scenario stays on this thread: it builds each batch's prompts, the sessions render and score them,
//! and the scenario scores what comes back, which is written at once. Each session keeps one batch queued
//! behind the one it scores, so none waits on the scenario. Records arrive in the order batches finish;
//! their `index` keeps the selection order. The sessions run at once, so a sample's share of the run's
//! model time is its own time over their number, and the run's memory peak is the process's so far
//! (`peak_scope: cumulative`), not a sample's.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use super::sample::{
    LikelihoodRequest, PromptedSample, SampleProbes, Scored, close_likelihoods, likelihood_requests, prompt_batch,
    score_requests,
};
use super::{Flow, SampleRun, Tally};
use crate::engine::Engine;
use crate::interrupt;
use crate::memory::PeakScope;
use crate::prepare::ReadyScenario;
use crate::results::writer::WriterError;
use crate::results::{RunStatus, RunSummary, RunWriter, SampleRecord};
use crate::scenario::Sample;

/// A batch's requests, sent to whichever session is free.
struct Job {
    id: usize,
    requests: Vec<LikelihoodRequest>,
}

/// A batch scored: each request's result and its model time.
struct Done {
    id: usize,
    scored: Vec<(Scored, Duration)>,
}

/// A batch on its way through a session: its repetition, the records already finished (prompts that
/// failed), and the samples waiting for their scores.
struct Pending<'d> {
    repetition: usize,
    finished: Vec<SampleRecord>,
    waiting: Vec<(PromptedSample, &'d Sample)>,
}

/// Runs `batches` (repetition, chunk of (index, sample index)) on `engines`, one thread each, and keeps every
/// record as [`SampleRun::run`] does: an interruption or the failure limit stops the sending of batches,
/// and the batches in flight still finish and are kept.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_on_sessions<'w>(
    run: &SampleRun,
    batches: impl Iterator<Item = (usize, &'w [(usize, usize)])>,
    ready: &mut ReadyScenario,
    engines: &mut [Engine],
    tally: &mut Tally,
    writer: &mut RunWriter,
    records: &mut Vec<SampleRecord>,
    summary: &mut RunSummary,
) -> Result<(), WriterError> {
    let sessions = engines.len();
    summary.memory.peak_scope = Some(PeakScope::Cumulative);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for engine in engines.iter_mut() {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || {
                // The lock is held while waiting for a job only, never while scoring.
                while let Some(job) = job_rx.lock().ok().and_then(|rx| rx.recv().ok()) {
                    let scored = score_requests(engine, &job.requests);
                    if done_tx.send(Done { id: job.id, scored }).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);

        let mut probes = run.probes(None, None);
        let mut pending: HashMap<usize, Pending> = HashMap::new();
        let mut sink = Sink { tally, writer, records, summary, flow: Ok(Flow::Continue) };
        let mut interrupted = false;
        let mut in_flight = 0usize;
        'batches: for (id, (repetition, chunk)) in batches.enumerate() {
            // Checked before a batch, not after: a signal during the last batches lets the run complete.
            if interrupt::requested() {
                interrupted = true;
                break;
            }
            let batch = run.prepare_batch(chunk);
            let (finished, waiting) = prompt_batch(&batch, ready, &mut probes);
            let requests = likelihood_requests(&waiting);
            pending.insert(id, Pending { repetition, finished, waiting });
            if job_tx.send(Job { id, requests }).is_err() {
                break; // every session has stopped; the scope reports why
            }
            in_flight += 1;
            while in_flight >= 2 * sessions {
                let Ok(done) = done_rx.recv() else { break 'batches };
                in_flight -= 1;
                sink.take(close_batch(done, &mut pending, sessions, ready, &mut probes));
                if !matches!(sink.flow, Ok(Flow::Continue)) {
                    break 'batches;
                }
            }
        }
        drop(job_tx);
        while let Ok(done) = done_rx.recv() {
            sink.take(close_batch(done, &mut pending, sessions, ready, &mut probes));
        }
        let Sink { tally, records, summary, flow, .. } = sink;
        flow?;
        if interrupted && summary.status == RunStatus::Running {
            tally.interrupted(records, summary);
        }
        run.bar.finish_and_clear();
        Ok(())
    })
}

/// A scored batch's records, closed with the scenario's scores, in its repetition.
fn close_batch(
    done: Done,
    pending: &mut HashMap<usize, Pending>,
    sessions: usize,
    ready: &mut ReadyScenario,
    probes: &mut SampleProbes,
) -> Vec<SampleRecord> {
    let Pending { repetition, finished, waiting } = pending.remove(&done.id).expect("every batch is scored once");
    let mut records = close_likelihoods(finished, waiting, done.scored, sessions, ready, probes);
    records.iter_mut().for_each(|r| r.repetition = repetition);
    records
}

/// Where finished records go, and whether the run goes on.
struct Sink<'s, 'r> {
    tally: &'s mut Tally<'r>,
    writer: &'s mut RunWriter,
    records: &'s mut Vec<SampleRecord>,
    summary: &'s mut RunSummary,
    flow: Result<Flow, WriterError>,
}

impl Sink<'_, '_> {
    fn take(&mut self, batch: Vec<SampleRecord>) {
        for record in batch {
            self.flow = match self.flow {
                Ok(Flow::Continue) => self.tally.accept(record, self.writer, self.records, self.summary),
                // Stopped by the failure limit: what still finishes is kept all the same.
                Ok(Flow::Stop) => self.tally.keep(record, self.writer, self.records).map(|()| Flow::Stop),
                Err(_) => return,
            };
        }
    }
}
