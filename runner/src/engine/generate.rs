//! The generation loop behind [`Engine`]: render the prompts, tokenize, prefill, then decode one token at a
//! time until an EOS token, a stop string, the token budget or the context runs out, streaming the text as
//! it is decoded and timing every phase. Several prompts run as one batch: each row stops on its own, a
//! finished row leaves the batch (its cached keys and values dropped, so later steps run only the rows still
//! generating) and the batch ends when every row has. The same cached forward pass scores continuations of a
//! context for multiple-choice benchmarks.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokenizers::Tokenizer;

use super::chat::{ChatTemplate, TemplateError};
use super::detok::StreamDecoder;
use super::model::{ModelFolder, ModelInfo};
use super::ortlib::OrtRuntime;
use super::providers::{self, SessionRecord};
use super::sampling::{LogitsProcessor, Sampling};
use super::session::{DecoderSession, KvLayout, Logits, LogitsWanted};
use super::{EngineError, EngineOptions, LoadedAdapter};
use crate::prompt::Prompt;

/// What to generate. Build it with `..Default::default()` for the settings a caller does not care about:
/// greedy decoding, no stop strings, no penalty.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    pub max_new_tokens: usize,
    /// Generation stops at the first of these strings; the output ends just before it.
    pub stop: Vec<String>,
    /// How each token is chosen.
    pub sampling: Sampling,
    /// Seeds the sampler; every generation starts from it afresh, so a prompt's output does not depend on
    /// what was generated before it.
    pub seed: u64,
    /// Transformers' repetition penalty over the prompt and the output so far; 1 is off.
    pub repetition_penalty: f32,
    /// EOS tokens do not stop generation (fixed-length timing runs); they count as output tokens.
    pub ignore_eos: bool,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            max_new_tokens: 256,
            stop: Vec::new(),
            sampling: Sampling::ArgMax,
            seed: 0,
            repetition_penalty: 1.0,
            ignore_eos: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced one of its EOS tokens.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens` were generated.
    Length,
    /// The sequence filled the model's context.
    ContextFull,
}

/// Where the time of one generation went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub render: Duration,
    pub tokenize: Duration,
    /// The prompt's forward pass.
    pub prefill: Duration,
    /// From the start of `generate` to the first token sampled.
    pub ttft: Duration,
    /// Each decode step (forward pass and sampling of one token): the inter-token latencies.
    pub decode_steps: Vec<Duration>,
    /// The part of each decode step spent inside ONNX Runtime's `run`, in the same order: the rest of a step
    /// (binding inputs, reading logits, sampling) is the harness's overhead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decode_runs: Vec<Duration>,
    /// Turning tokens into text, over the whole generation.
    pub detokenize: Duration,
    pub e2e: Duration,
    /// Sequences that ran together; prefill and every decode step are the batch's, shared by its rows.
    pub batch_size: usize,
    /// Every sampled token (EOS included), in order: when its sampling finished and how long it took. With
    /// the durations above, this places each phase on a timeline (traces) and isolates sampling time.
    pub sampled: Vec<TokenTiming>,
}

/// When one token was chosen, as an offset from the start of `generate`, and the time choosing it took
/// (logits processing and sampling; part of TTFT for the first token, of its decode step for the others).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TokenTiming {
    pub at: Duration,
    pub sampling: Duration,
}

/// One finished generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// The text given to the tokenizer (the rendered chat template for chat prompts).
    pub prompt_text: String,
    pub output: String,
    pub prompt_tokens: usize,
    /// Tokens sampled, not counting a final EOS token (with `ignore_eos`, EOS tokens are counted).
    pub output_tokens: usize,
    /// The ids of those tokens, in order: what another engine's output is compared with token by token.
    /// A stop string's tokens are included although the text ends before it.
    pub output_ids: Vec<u32>,
    pub finish: FinishReason,
    pub timings: Timings,
}

/// A loaded model ready to generate.
pub struct Engine {
    info: ModelInfo,
    runtime: OrtRuntime,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    session: DecoderSession,
}

impl Engine {
    pub fn load(opts: &EngineOptions) -> Result<Engine, EngineError> {
        // The folder is checked before ONNX Runtime loads, so a bad folder is reported as such.
        let folder = ModelFolder::open(&opts.model_dir)?;
        let loaded = providers::load_runtime(opts.ort_lib.as_deref(), &opts.providers)?;
        let template = match folder.chat_template {
            Some(source) => Some(ChatTemplate::new(source, folder.bos_token, folder.eos_token)?),
            None => None,
        };
        let session = DecoderSession::new(
            &loaded.environment,
            &folder.model_path,
            &folder.info,
            opts.intra_threads,
            &opts.providers,
            opts.profiling.as_deref(),
        )?;
        let mut info = folder.info;
        info.kv_dtype = session.kv_type.name().to_string();
        info.logits_dtype = session.logits_type.name().to_string();
        info.kv_layout = session.layout.name().to_string();
        Ok(Engine { info, runtime: loaded.runtime.clone(), tokenizer: folder.tokenizer, template, session })
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    /// How the session was built: execution provider, options, node assignment.
    pub fn session_record(&self) -> &SessionRecord {
        self.session.record()
    }

    /// Ends ONNX Runtime's profiling (enabled by [`EngineOptions::profiling`]) and writes its file: returns the
    /// file and when profiling started, in nanoseconds on ONNX Runtime's clock.
    pub fn end_profiling(&mut self) -> Result<(std::path::PathBuf, u64), EngineError> {
        let (file, start_ns) = self.session.end_profiling()?;
        Ok((file.into(), start_ns))
    }

    /// Reads and checks a LoRA adapter file against this model and loads it into ONNX Runtime; it takes
    /// effect with [`Engine::set_adapter`].
    pub fn load_adapter(&self, path: &std::path::Path) -> Result<LoadedAdapter, EngineError> {
        Ok(LoadedAdapter::load(path, &self.info.dir.join(crate::model_folder::MODEL_FILE))?)
    }

    /// Generates with `adapter` applied from now on, or with the base model (`None`).
    pub fn set_adapter(&mut self, adapter: Option<&LoadedAdapter>) -> Result<(), EngineError> {
        Ok(self.session.set_adapter(adapter.map(|a| a.inputs.clone()).unwrap_or_default())?)
    }

    pub fn runtime(&self) -> &OrtRuntime {
        &self.runtime
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The text the model sees for `prompt`.
    pub fn render(&self, prompt: &Prompt) -> Result<String, EngineError> {
        match prompt {
            Prompt::Text(text) => Ok(text.clone()),
            Prompt::Chat(messages) => {
                Ok(self.template.as_ref().ok_or(TemplateError::Missing)?.render(messages, true)?)
            }
        }
    }

    /// Token ids of `text` as the model sees it (chat templates already hold their special tokens).
    pub fn tokenize(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, EngineError> {
        let encoding =
            self.tokenizer.encode(text, add_special_tokens).map_err(|err| EngineError::Tokenize(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Logits of the last of `tokens`, computed after the tokens already in the KV cache (none after
    /// [`Engine::reset`]); the tokens join the cache.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        Ok(self.session.forward(&ids, "forward")?.last(0).into_owned())
    }

    /// Empties the KV cache (it grows again as [`Engine::forward`] needs).
    pub fn reset(&mut self) -> Result<(), EngineError> {
        Ok(self.session.reset(0)?)
    }

    pub fn generate(
        &mut self,
        prompt: &Prompt,
        settings: &GenerationSettings,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, EngineError> {
        let start = Instant::now();
        let row = self.prepare(prompt)?;
        let mut generations = self.run_batch(vec![row], settings, start, &mut |_, text| on_text(text))?;
        Ok(generations.remove(0))
    }

    /// Generates for every prompt, as one batch where the model allows it, and returns the generations in
    /// prompt order. Greedy outputs equal those of [`Engine::generate`] one prompt at a time. Graphs that
    /// take neither position ids nor a shared-buffer cache cannot tell a left pad from a token, and graphs
    /// with a window-sized cache refuse left pads, so their prompts are batched only with prompts of the
    /// same token length.
    pub fn generate_batch(
        &mut self,
        prompts: &[Prompt],
        settings: &GenerationSettings,
    ) -> Result<Vec<Generation>, EngineError> {
        let start = Instant::now();
        let rows = prompts.iter().map(|p| self.prepare(p)).collect::<Result<Vec<_>, _>>()?;
        self.generate_rows(rows, settings, start)
    }

    /// [`Engine::generate_batch`] for prompts given as token ids (the batched runs of `runner bench`).
    pub fn generate_batch_from_tokens(
        &mut self,
        prompts: &[Vec<u32>],
        settings: &GenerationSettings,
    ) -> Result<Vec<Generation>, EngineError> {
        let start = Instant::now();
        let rows = prompts
            .iter()
            .map(|ids| self.check_prompt(String::new(), ids.clone(), Duration::ZERO, Duration::ZERO))
            .collect::<Result<Vec<_>, _>>()?;
        self.generate_rows(rows, settings, start)
    }

    /// Runs prepared rows as batches the model can pad exactly, and returns their generations in row order.
    fn generate_rows(
        &mut self,
        rows: Vec<PreparedPrompt>,
        settings: &GenerationSettings,
        start: Instant,
    ) -> Result<Vec<Generation>, EngineError> {
        let count = rows.len();
        let exact_padding = (self.session.layout == KvLayout::SharedBuffer || self.session.feeds_position_ids())
            && !self.session.has_window_cache();
        let groups: Vec<Vec<usize>> = if exact_padding {
            vec![(0..rows.len()).collect()]
        } else {
            let mut groups: Vec<Vec<usize>> = Vec::new();
            for (index, row) in rows.iter().enumerate() {
                match groups.iter_mut().find(|g| rows[g[0]].ids.len() == row.ids.len()) {
                    Some(group) => group.push(index),
                    None => groups.push(vec![index]),
                }
            }
            groups
        };
        let mut slots: Vec<Option<PreparedPrompt>> = rows.into_iter().map(Some).collect();
        let mut results: Vec<Option<Generation>> = (0..count).map(|_| None).collect();
        for group in groups {
            let batch: Vec<PreparedPrompt> = group.iter().filter_map(|&i| slots[i].take()).collect();
            if batch.is_empty() {
                continue;
            }
            let generations = self.run_batch(batch, settings, start, &mut |_, _| {})?;
            for (index, generation) in group.into_iter().zip(generations) {
                results[index] = Some(generation);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Generates after prompt token ids given as they are (no template, no tokenizer): the fixed-length
    /// timing runs of `runner bench`. `prompt_text` of the result is empty, as no text was involved.
    pub fn generate_from_tokens(
        &mut self,
        prompt_tokens: &[u32],
        settings: &GenerationSettings,
    ) -> Result<Generation, EngineError> {
        let start = Instant::now();
        let row = self.check_prompt(String::new(), prompt_tokens.to_vec(), Duration::ZERO, Duration::ZERO)?;
        let mut generations = self.run_batch(vec![row], settings, start, &mut |_, _| {})?;
        Ok(generations.remove(0))
    }

    /// Renders and tokenizes one prompt, checking it fits the context.
    fn prepare(&self, prompt: &Prompt) -> Result<PreparedPrompt, EngineError> {
        let render_start = Instant::now();
        let text = self.render(prompt)?;
        let render = render_start.elapsed();
        let tokenize_start = Instant::now();
        let ids = self.tokenize(&text, matches!(prompt, Prompt::Text(_)))?;
        let tokenize = tokenize_start.elapsed();
        self.check_prompt(text, ids, render, tokenize)
    }

    /// A prompt's token ids, checked: not empty, and room in the context for at least one new token.
    fn check_prompt(
        &self,
        text: String,
        ids: Vec<u32>,
        render: Duration,
        tokenize: Duration,
    ) -> Result<PreparedPrompt, EngineError> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context_length = self.info.context_length;
        if ids.len() >= context_length {
            return Err(EngineError::PromptTooLong { prompt_tokens: ids.len(), context_length });
        }
        Ok(PreparedPrompt { text, ids, render, tokenize })
    }

    /// Prefills `rows` as one batch and decodes until every row has finished; `on_text(row, text)` streams.
    fn run_batch(
        &mut self,
        rows: Vec<PreparedPrompt>,
        settings: &GenerationSettings,
        start: Instant,
        on_text: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Generation>, EngineError> {
        let batch = rows.len();
        let longest = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        self.session.reset_batch(batch, longest + settings.max_new_tokens)?;
        let mut states: Vec<RowState> = rows
            .iter()
            .map(|row| {
                let mut processor = LogitsProcessor::new(settings.sampling, settings.seed)
                    .with_repetition_penalty(settings.repetition_penalty);
                processor.add_context(&row.ids);
                RowState {
                    processor,
                    decoder: StreamDecoder::new(&self.tokenizer, true),
                    stops: StopMatcher::new(&settings.stop),
                    output_ids: Vec::new(),
                    finish: None,
                    timings: Timings {
                        render: row.render,
                        tokenize: row.tokenize,
                        batch_size: batch,
                        ..Default::default()
                    },
                }
            })
            .collect();
        let context_length = self.info.context_length;
        let pad = i64::from(self.info.pad_token_id.or(self.info.eos_token_ids.first().copied()).unwrap_or(0));

        let prefill_start = Instant::now();
        let mut logits: Option<Logits> = if settings.max_new_tokens > 0 {
            let ids: Vec<Vec<i64>> = rows.iter().map(|r| r.ids.iter().map(|&t| i64::from(t)).collect()).collect();
            let slices: Vec<&[i64]> = ids.iter().map(Vec::as_slice).collect();
            Some(self.session.extend(&slices, "prefill", true, LogitsWanted::Last)?)
        } else {
            None
        };
        let prefill = prefill_start.elapsed();
        for state in &mut states {
            state.timings.prefill = prefill;
        }
        let mut step_start = prefill_start;
        // Session row r holds `states[active[r]]`: a row leaves the batch when it finishes.
        let mut active: Vec<usize> = (0..batch).collect();

        loop {
            let Some(current) = logits.take() else {
                for state in states.iter_mut().filter(|s| s.finish.is_none()) {
                    state.finish = Some(FinishReason::Length);
                }
                break;
            };
            for (session_row, &row) in active.iter().enumerate() {
                let state = &mut states[row];
                let sampling_start = Instant::now();
                let token = state.processor.sample(&current.last(session_row)).ok_or(EngineError::NoLogits)?;
                state.timings.sampled.push(TokenTiming { at: start.elapsed(), sampling: sampling_start.elapsed() });
                if state.output_ids.is_empty() && state.timings.ttft.is_zero() {
                    state.timings.ttft = start.elapsed();
                } else {
                    state.timings.decode_steps.push(step_start.elapsed());
                    state.timings.decode_runs.push(self.session.last_run());
                }
                if !settings.ignore_eos && self.info.eos_token_ids.contains(&token) {
                    state.finish = Some(FinishReason::Eos);
                    continue;
                }
                state.output_ids.push(token);

                let detok_start = Instant::now();
                let piece = state.decoder.push(token).map_err(|err| EngineError::Detokenize(err.to_string()))?;
                state.timings.detokenize += detok_start.elapsed();
                if let Some(piece) = piece
                    && state.stops.push(&piece, &mut |text| on_text(row, text))
                {
                    state.finish = Some(FinishReason::Stop);
                } else if state.output_ids.len() >= settings.max_new_tokens {
                    state.finish = Some(FinishReason::Length);
                }
            }
            drop(current);
            if states.iter().all(|s| s.finish.is_some()) {
                break;
            }
            let keep: Vec<bool> = active.iter().map(|&row| states[row].finish.is_none()).collect();
            self.session.retain_rows(&keep)?;
            active.retain(|&row| states[row].finish.is_none());
            if self.session.next_len() > context_length {
                for state in states.iter_mut().filter(|s| s.finish.is_none()) {
                    state.finish = Some(FinishReason::ContextFull);
                }
                break;
            }
            step_start = Instant::now();
            // Every row still in the batch sampled a token this step: it is the row's next input.
            let next: Vec<i64> =
                active.iter().map(|&row| states[row].output_ids.last().map_or(pad, |&t| i64::from(t))).collect();
            let slices: Vec<&[i64]> = next.iter().map(std::slice::from_ref).collect();
            logits = Some(self.session.extend(&slices, "decode", true, LogitsWanted::Last)?);
        }

        let mut generations = Vec::with_capacity(batch);
        for (row, (prepared, mut state)) in rows.into_iter().zip(states).enumerate() {
            let mut finish = state.finish.unwrap_or(FinishReason::Length);
            if finish != FinishReason::Stop {
                let detok_start = Instant::now();
                let rest = state.decoder.flush().map_err(|err| EngineError::Detokenize(err.to_string()))?;
                state.timings.detokenize += detok_start.elapsed();
                if let Some(rest) = rest {
                    state.stops.push(&rest, &mut |text| on_text(row, text));
                }
            }
            if state.stops.stopped {
                finish = FinishReason::Stop;
            }
            let output = state.stops.finish(&mut |text| on_text(row, text));
            generations.push(Generation {
                prompt_text: prepared.text,
                output,
                prompt_tokens: prepared.ids.len(),
                output_tokens: state.output_ids.len(),
                output_ids: state.output_ids,
                finish,
                timings: state.timings,
            });
        }
        // Every row's output is ready when the batch's is: the rows share one end, and throughput counts a
        // batch's time once by dividing it among them.
        let end = start.elapsed();
        generations.iter_mut().for_each(|g| g.timings.e2e = end);
        Ok(generations)
    }

    /// Log-likelihood of each continuation after `context`, for multiple-choice scoring. Tokenized as
    /// lm-evaluation-harness does: whitespace ending the context moves to the continuations, and a
    /// continuation's tokens are those the whole text has after the context's.
    pub fn continuation_logprobs(
        &mut self,
        context: &str,
        continuations: &[String],
    ) -> Result<Vec<ContinuationScore>, EngineError> {
        let request = self.continuation_tokens(context, continuations)?;
        Ok(self.continuation_logprobs_batch_ids(std::slice::from_ref(&request))?.remove(0))
    }

    /// [`Engine::continuation_logprobs`] for several contexts at once: one forward pass over every context,
    /// then one per choice position over every context's continuation in that position, so a batch of
    /// questions reads the model's weights a few times instead of a few times per question.
    pub fn continuation_logprobs_batch(
        &mut self,
        requests: &[(String, Vec<String>)],
    ) -> Result<Vec<Vec<ContinuationScore>>, EngineError> {
        let tokenized = requests
            .iter()
            .map(|(context, continuations)| self.continuation_tokens(context, continuations))
            .collect::<Result<Vec<_>, _>>()?;
        self.continuation_logprobs_batch_ids(&tokenized)
    }

    /// The context's tokens and each continuation's, tokenized as lm-evaluation-harness does.
    fn continuation_tokens(
        &self,
        context: &str,
        continuations: &[String],
    ) -> Result<(Vec<u32>, Vec<Vec<u32>>), EngineError> {
        let trimmed = context.trim_end();
        let moved = &context[trimmed.len()..];
        let context_ids = self.tokenize(trimmed, true)?;
        let continuation_ids = continuations
            .iter()
            .map(|continuation| {
                if continuation.is_empty() {
                    return Ok(Vec::new());
                }
                let continuation = format!("{moved}{continuation}");
                let whole = self.tokenize(&format!("{trimmed}{continuation}"), true)?;
                if whole.len() > context_ids.len() && whole.starts_with(&context_ids) {
                    Ok(whole[context_ids.len()..].to_vec())
                } else {
                    self.tokenize(&continuation, false)
                }
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok((context_ids, continuation_ids))
    }

    /// [`Engine::continuation_logprobs`] on token ids: the context runs once, then each continuation runs on
    /// top of its cached keys and values, which are left as they were for the next.
    pub fn continuation_logprobs_ids(
        &mut self,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<ContinuationScore>, EngineError> {
        let request = (context.to_vec(), continuations.to_vec());
        Ok(self.continuation_logprobs_batch_ids(std::slice::from_ref(&request))?.remove(0))
    }

    /// Scores `(context, continuations)` requests as one batch. The contexts run as one prefill (each
    /// row's last logits score every continuation's first token; a lone context runs only from where it
    /// parts from the tokens the cache already holds); then, for each choice position, the
    /// continuations with more than one token run on top of their contexts' cached keys and values, which
    /// are given back afterwards. They run as one step, except where GroupQueryAttention takes no multi-token
    /// step (a batch of several rows with a past): a shared buffer then takes them one position at a time
    /// and is rewound. Rows are brought to one length by repeating a token after the real ones: a causal model's
    /// logits at a real position never see what follows it.
    pub fn continuation_logprobs_batch_ids(
        &mut self,
        requests: &[(Vec<u32>, Vec<Vec<u32>>)],
    ) -> Result<Vec<Vec<ContinuationScore>>, EngineError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let context_length = self.info.context_length;
        let mut needed = 0;
        for (context, continuations) in requests {
            if context.is_empty() {
                return Err(EngineError::EmptyPrompt);
            }
            let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
            if context.len() + longest > context_length {
                return Err(EngineError::PromptTooLong { prompt_tokens: context.len() + longest, context_length });
            }
            needed = needed.max(context.len() + longest);
        }
        let contexts: Vec<Vec<i64>> =
            requests.iter().map(|(context, _)| context.iter().map(|&t| i64::from(t)).collect()).collect();
        // One context after another usually shares a start with the one before (a benchmark's header and
        // few-shot examples): the cache still holds the previous context, so only what differs runs.
        let shared = match (contexts.as_slice(), self.session.held_tokens()) {
            ([context], Some(held)) => {
                let common = held.iter().zip(context).take_while(|(a, b)| a == b).count();
                // The context's last position runs again when all of it is held: its logits are needed.
                common.min(context.len() - 1)
            }
            _ => 0,
        };
        if shared > 0 {
            self.session.rewind(&[shared])?;
        } else {
            self.session.reset_batch(requests.len(), needed)?;
        }
        // A lone context runs together with its first several-token continuation: one forward pass instead of
        // two, each of which reads every weight (the cache is rewound to the context afterwards).
        let merged = match requests {
            [(_, continuations)]
                if self.session.layout == KvLayout::SharedBuffer && !self.session.has_window_cache() =>
            {
                continuations.iter().position(|c| c.len() > 1)
            }
            _ => None,
        };
        let context_last = |row: usize| requests[row].0.len() - 1 - shared;
        // Only a merged row is built anew; otherwise the contexts run as they are.
        let merged_row: Option<Vec<i64>> = merged.map(|choice| {
            let continuation = &requests[0].1[choice];
            let tail = continuation[..continuation.len() - 1].iter().map(|&t| i64::from(t));
            contexts[0][shared..].iter().copied().chain(tail).collect()
        });
        let (row_refs, wanted): (Vec<&[i64]>, _) = match &merged_row {
            Some(row) => (vec![row.as_slice()], LogitsWanted::From(context_last(0))),
            None => (contexts.iter().map(|context| &context[shared..]).collect(), LogitsWanted::Last),
        };
        let after_context = self.session.extend(&row_refs, "scoring the context", true, wanted)?;
        let mut scores: Vec<Vec<ContinuationScore>> = Vec::with_capacity(requests.len());
        for (row, (context, continuations)) in requests.iter().enumerate() {
            // With a merged continuation the row ends past its context; otherwise its last token is the
            // context's (left-padded rows of a concat cache end where the chunk does).
            let last =
                if merged.is_some() { after_context.at(row, context_last(row)) } else { after_context.last(row) };
            let mut row_scores = Vec::with_capacity(continuations.len());
            for continuation in continuations {
                let mut score = ContinuationScore {
                    logprob_sum: 0.0,
                    token_count: continuation.len(),
                    greedy_match: true,
                    context_tokens: context.len(),
                };
                if let Some(&first) = continuation.first() {
                    score.add(&last, first)?;
                }
                row_scores.push(score);
            }
            scores.push(row_scores);
        }
        if let Some(choice) = merged {
            let continuation = &requests[0].1[choice];
            for (position, &token) in continuation.iter().enumerate().skip(1) {
                scores[0][choice].add(&after_context.at(0, context_last(0) + position), token)?;
            }
            drop(after_context);
            self.session.rewind(&[requests[0].0.len()])?;
        }
        let positions = requests.iter().map(|(_, continuations)| continuations.len()).max().unwrap_or(0);
        let context_lens: Vec<usize> = requests.iter().map(|(context, _)| context.len()).collect();
        // `choice` indexes every row's list of continuations, not one slice: a range reads best.
        #[allow(clippy::needless_range_loop)]
        for choice in 0..positions {
            if merged == Some(choice) {
                continue;
            }
            let longer = |continuations: &Vec<Vec<u32>>| continuations.get(choice).filter(|c| c.len() > 1).cloned();
            let chunk = requests.iter().filter_map(|(_, c)| longer(c)).map(|c| c.len()).max().unwrap_or(0);
            if chunk == 0 {
                continue;
            }
            // Each row's tokens to feed: its continuation but the last (whose logits are not needed), filled
            // out to the longest; a row with nothing to score repeats its context's last token.
            let rows: Vec<Vec<i64>> = requests
                .iter()
                .map(|(context, continuations)| {
                    let mut row: Vec<i64> =
                        longer(continuations).unwrap_or_default().iter().map(|&t| i64::from(t)).collect();
                    row.truncate(row.len().saturating_sub(1));
                    let filler = row.last().copied().unwrap_or_else(|| i64::from(context[context.len() - 1]));
                    row.resize(chunk - 1, filler);
                    row
                })
                .collect();
            let mut add = |row: usize, position: usize, logits: &[f32]| -> Result<(), EngineError> {
                match longer(&requests[row].1) {
                    Some(continuation) if position + 1 < continuation.len() => {
                        scores[row][choice].add(logits, continuation[position + 1])
                    }
                    _ => Ok(()),
                }
            };
            if self.session.layout == KvLayout::SharedBuffer && requests.len() > 1 {
                for position in 0..chunk - 1 {
                    let step: Vec<&[i64]> = rows.iter().map(|row| std::slice::from_ref(&row[position])).collect();
                    let logits = self.session.extend(&step, "scoring a continuation", true, LogitsWanted::Last)?;
                    for row in 0..requests.len() {
                        add(row, position, &logits.last(row))?;
                    }
                }
                self.session.rewind(&context_lens)?;
            } else {
                let row_refs: Vec<&[i64]> = rows.iter().map(Vec::as_slice).collect();
                let logits = self.session.extend(&row_refs, "scoring a continuation", false, LogitsWanted::Every)?;
                for row in 0..requests.len() {
                    for position in 0..chunk - 1 {
                        add(row, position, &logits.at(row, position))?;
                    }
                }
            }
        }
        Ok(scores)
    }
}

/// How likely a model finds a continuation of a context.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ContinuationScore {
    /// Sum of the natural-log probabilities of the continuation's tokens.
    pub logprob_sum: f64,
    pub token_count: usize,
    /// Every token of the continuation is the most likely one at its position (greedy decoding would
    /// produce it).
    pub greedy_match: bool,
    /// Tokens of the context it continues (shared by every continuation of one context).
    pub context_tokens: usize,
}

impl ContinuationScore {
    /// Adds `token`'s log-probability under `logits` (computed in f64).
    fn add(&mut self, logits: &[f32], token: u32) -> Result<(), EngineError> {
        let chosen = *logits.get(token as usize).ok_or(EngineError::NoLogits)?;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return Err(EngineError::NoLogits);
        }
        let sum: f64 = logits.iter().map(|&l| (f64::from(l) - f64::from(max)).exp()).sum();
        self.logprob_sum += f64::from(chosen) - f64::from(max) - sum.ln();
        // Ties count as a match: greedy decoding could have picked this token.
        self.greedy_match &= chosen >= max;
        Ok(())
    }
}

/// A rendered and tokenized prompt, with what that took.
struct PreparedPrompt {
    text: String,
    ids: Vec<u32>,
    render: Duration,
    tokenize: Duration,
}

/// One row of a batch while it generates.
struct RowState<'s> {
    processor: LogitsProcessor,
    decoder: StreamDecoder<'s>,
    stops: StopMatcher<'s>,
    output_ids: Vec<u32>,
    finish: Option<FinishReason>,
    timings: Timings,
}

/// `text` cut before the first of `stops` in it, as generation cuts its output, and whether one was found:
/// how `runner score` treats outputs made elsewhere, so they are scored as `runner exec` would have.
pub fn cut_at_stop_strings(text: &str, stops: &[String]) -> (String, bool) {
    let mut matcher = StopMatcher::new(stops);
    let stopped = matcher.push(text, &mut |_| {});
    (matcher.finish(&mut |_| {}), stopped)
}

/// Accumulates generated text, finds stop strings (also across token boundaries) and streams only text
/// that cannot turn out to be the start of a stop string.
struct StopMatcher<'s> {
    stops: Vec<&'s str>,
    text: String,
    emitted: usize,
    stopped: bool,
}

impl<'s> StopMatcher<'s> {
    fn new(stops: &'s [String]) -> Self {
        StopMatcher {
            stops: stops.iter().map(String::as_str).filter(|s| !s.is_empty()).collect(),
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds `piece`; returns true when a stop string has appeared (the text is then cut before it).
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        if self.stopped {
            return true;
        }
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        // A stop string that ends in `piece` starts at most `longest - 1` bytes before it.
        let search_from = floor_char_boundary(&self.text, self.text.len().saturating_sub(longest.saturating_sub(1)));
        self.text.push_str(piece);
        let found = self.stops.iter().filter_map(|stop| self.text[search_from..].find(stop)).min();
        if let Some(at) = found {
            self.text.truncate(search_from + at);
            self.stopped = true;
            self.emit(self.text.len(), on_text);
            return true;
        }
        let held = self.stops.iter().map(|stop| partial_suffix(&self.text, stop)).max().unwrap_or(0);
        self.emit(self.text.len() - held, on_text);
        false
    }

    fn emit(&mut self, upto: usize, on_text: &mut dyn FnMut(&str)) {
        if upto > self.emitted {
            on_text(&self.text[self.emitted..upto]);
            self.emitted = upto;
        }
    }

    /// Streams what was held back and returns the whole output.
    fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> String {
        self.emit(self.text.len(), on_text);
        self.text
    }
}

/// Length of the longest proper prefix of `stop` that `text` ends with, landing on a char boundary.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len()).rev().find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n])).unwrap_or(0)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool, Vec<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut matcher = StopMatcher::new(&stops);
        let mut streamed = Vec::new();
        let mut stopped = false;
        for piece in pieces {
            if matcher.push(piece, &mut |t| streamed.push(t.to_string())) {
                stopped = true;
                break;
            }
        }
        let output = matcher.finish(&mut |t| streamed.push(t.to_string()));
        (output, stopped, streamed)
    }

    #[test]
    fn stop_string_split_across_pieces_truncates_output() {
        let (output, stopped, streamed) = run(&["\n\nQ:"], &["The answer", " is 4.\n", "\nQ", ": next"]);
        assert!(stopped);
        assert_eq!(output, "The answer is 4.");
        assert_eq!(streamed.concat(), output);
        assert!(!streamed.iter().any(|s| s.contains('\n')), "held-back text leaked: {streamed:?}");
    }

    #[test]
    fn text_that_only_looks_like_a_stop_prefix_is_released() {
        let (output, stopped, streamed) = run(&["STOP"], &["ST", "ART", " ok"]);
        assert!(!stopped);
        assert_eq!(output, "START ok");
        assert_eq!(streamed.concat(), "START ok");
    }

    #[test]
    fn earliest_stop_wins_and_multibyte_text_is_safe() {
        let (output, stopped, _) = run(&["é!", "b"], &["aé", "é!b"]);
        assert!(stopped);
        assert_eq!(output, "aé");
        let (output, _, _) = run(&[], &["héllo ", "wörld"]);
        assert_eq!(output, "héllo wörld");
    }
}
