//! The generation loop behind [`Engine`]: render the prompt, tokenize, prefill, then decode one token at a
//! time until an EOS token, a stop string, the token budget or the context runs out, streaming the text as
//! it is decoded and timing every phase.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokenizers::Tokenizer;

use super::chat::{ChatTemplate, TemplateError};
use super::detok::StreamDecoder;
use super::model::{ModelFolder, ModelInfo};
use super::ortlib::OrtRuntime;
use super::providers::{self, SessionRecord};
use super::sampling::{LogitsProcessor, Sampling};
use super::session::{DecoderSession, LastLogits};
use super::{EngineError, EngineOptions};
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
    /// Turning tokens into text, over the whole generation.
    pub detokenize: Duration,
    pub e2e: Duration,
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
        Ok(Engine {
            info: folder.info,
            runtime: loaded.runtime.clone(),
            tokenizer: folder.tokenizer,
            template,
            session,
        })
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn runtime(&self) -> &OrtRuntime {
        &self.runtime
    }

    /// How the session was built: execution provider, options, node assignment.
    pub fn session_record(&self) -> &SessionRecord {
        self.session.record()
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
        Ok(self.session.forward(&ids, "forward")?.as_slice().to_vec())
    }

    /// Ends ONNX Runtime's profiling (enabled by [`EngineOptions::profiling`]) and writes its file: returns the
    /// file and when profiling started, in nanoseconds on ONNX Runtime's clock.
    pub fn end_profiling(&mut self) -> Result<(std::path::PathBuf, u64), EngineError> {
        let (file, start_ns) = self.session.end_profiling()?;
        Ok((file.into(), start_ns))
    }

    /// Reads and checks a LoRA adapter file against this model and loads it into ONNX Runtime; it takes
    /// effect with [`Engine::set_adapter`].
    pub fn load_adapter(&self, path: &std::path::Path) -> Result<crate::lora::LoadedAdapter, EngineError> {
        Ok(crate::lora::LoadedAdapter::load(path, &self.info.dir.join(super::model::MODEL_FILE))?)
    }

    /// Generates with `adapter` applied from now on, or with the base model (`None`); the KV cache must be
    /// reset between the two (every [`Engine::generate`] does).
    pub fn set_adapter(&mut self, adapter: Option<&crate::lora::LoadedAdapter>) -> Result<(), EngineError> {
        Ok(self.session.set_adapter(adapter.map(|a| a.inputs.clone()).unwrap_or_default())?)
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
        let mut timings = Timings::default();

        let prompt_text = self.render(prompt)?;
        timings.render = start.elapsed();

        let tokenize_start = Instant::now();
        let prompt_tokens = self.tokenize(&prompt_text, matches!(prompt, Prompt::Text(_)))?;
        timings.tokenize = tokenize_start.elapsed();
        self.generate_tokens(start, timings, prompt_text, &prompt_tokens, settings, on_text)
    }

    /// Generates after prompt token ids given as they are (no template, no tokenizer): the fixed-length
    /// timing runs of `runner bench`. `prompt_text` of the result is empty, as no text was involved.
    pub fn generate_from_tokens(
        &mut self,
        prompt_tokens: &[u32],
        settings: &GenerationSettings,
    ) -> Result<Generation, EngineError> {
        self.generate_tokens(Instant::now(), Timings::default(), String::new(), prompt_tokens, settings, &mut |_| {})
    }

    /// The loop shared by [`Engine::generate`] and [`Engine::generate_from_tokens`]; `start` is when the
    /// caller's generation began, so TTFT and e2e include its rendering and tokenizing.
    fn generate_tokens(
        &mut self,
        start: Instant,
        mut timings: Timings,
        prompt_text: String,
        prompt_tokens: &[u32],
        settings: &GenerationSettings,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Generation, EngineError> {
        let prompt_ids: Vec<i64> = prompt_tokens.iter().map(|&t| i64::from(t)).collect();
        if prompt_ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let context_length = self.info.context_length;
        if prompt_ids.len() >= context_length {
            return Err(EngineError::PromptTooLong { prompt_tokens: prompt_ids.len(), context_length });
        }

        self.session.reset(prompt_ids.len() + settings.max_new_tokens)?;
        let mut processor =
            LogitsProcessor::new(settings.sampling, settings.seed).with_repetition_penalty(settings.repetition_penalty);
        processor.add_context(prompt_tokens);
        let mut decoder = StreamDecoder::new(&self.tokenizer, true);
        let mut stops = StopMatcher::new(&settings.stop);
        let mut output_tokens = 0;
        let mut finish;

        let prefill_start = Instant::now();
        let mut logits: Option<LastLogits> =
            if settings.max_new_tokens > 0 { Some(self.session.forward(&prompt_ids, "prefill")?) } else { None };
        timings.prefill = prefill_start.elapsed();
        let mut step_start = prefill_start;

        loop {
            let Some(last) = logits.take() else {
                finish = FinishReason::Length;
                break;
            };
            let sampling_start = Instant::now();
            let token = processor.sample(last.as_slice()).ok_or(EngineError::NoLogits)?;
            timings.sampled.push(TokenTiming { at: start.elapsed(), sampling: sampling_start.elapsed() });
            drop(last);
            if output_tokens == 0 {
                timings.ttft = start.elapsed();
            } else {
                timings.decode_steps.push(step_start.elapsed());
            }
            if !settings.ignore_eos && self.info.eos_token_ids.contains(&token) {
                finish = FinishReason::Eos;
                break;
            }
            output_tokens += 1;

            let detok_start = Instant::now();
            let piece = decoder.push(token).map_err(|err| EngineError::Detokenize(err.to_string()))?;
            timings.detokenize += detok_start.elapsed();
            if let Some(piece) = piece
                && stops.push(&piece, on_text)
            {
                finish = FinishReason::Stop;
                break;
            }

            if output_tokens >= settings.max_new_tokens {
                finish = FinishReason::Length;
                break;
            }
            if self.session.past_len() + 1 > context_length {
                finish = FinishReason::ContextFull;
                break;
            }
            step_start = Instant::now();
            logits = Some(self.session.forward(&[i64::from(token)], "decode")?);
        }

        if finish != FinishReason::Stop {
            let detok_start = Instant::now();
            let rest = decoder.flush().map_err(|err| EngineError::Detokenize(err.to_string()))?;
            timings.detokenize += detok_start.elapsed();
            if let Some(rest) = rest {
                stops.push(&rest, on_text);
            }
        }
        if stops.stopped {
            finish = FinishReason::Stop;
        }
        let output = stops.finish(on_text);
        timings.e2e = start.elapsed();
        Ok(Generation { prompt_text, output, prompt_tokens: prompt_ids.len(), output_tokens, finish, timings })
    }
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
