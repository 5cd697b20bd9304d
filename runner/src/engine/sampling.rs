//! Picks the next token from a row of logits: greedy (argmax), or a seeded draw with temperature, top-k and
//! top-p (nucleus), after an optional repetition penalty, with the semantics of Hugging Face transformers
//! and candle's `LogitsProcessor` (penalty, then temperature, then top-k, then top-p).
//!
//! The random stream is [`SplitMix64`], written in this crate, so a seed gives the same draws on every
//! machine and with every dependency version: the same logits give the same tokens. Each step works in
//! buffers the processor keeps, and top-k / top-p partition the vocabulary rather than sorting all of it.

use std::cmp::Ordering;

use crate::rng::SplitMix64;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Sampling {
    /// Always the most likely token (the first one on ties), as reference implementations do.
    #[default]
    ArgMax,
    /// A draw from softmax(logits / temperature), limited to the `top_k` most likely tokens, then to the
    /// fewest most likely tokens whose probability adds up to `top_p`.
    Sample { temperature: f32, top_k: Option<usize>, top_p: Option<f32> },
}

/// A sampling setting out of range. Each message starts with the setting's name as the command line
/// spells it (`top-p must be ...`), so a caller can put `--` in front.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be a finite number >= 0 (0 is greedy decoding), got {0}")]
    Temperature(f32),
    #[error("top-p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("repetition-penalty must be a finite number > 0 (1 is off), got {0}")]
    RepetitionPenalty(f32),
}

impl Sampling {
    /// Sampling from user settings. Temperature 0 is greedy decoding; no temperature is greedy too, unless
    /// top-k or top-p ask for sampling, which then draws at temperature 1 (as transformers does). A top-k
    /// of 0 and a top-p of 1 mean no limit.
    pub fn new(temperature: Option<f32>, top_k: Option<usize>, top_p: Option<f32>) -> Result<Self, SamplingError> {
        if let Some(t) = temperature
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(SamplingError::Temperature(t));
        }
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(SamplingError::TopP(p));
        }
        let top_k = top_k.filter(|&k| k > 0);
        let top_p = top_p.filter(|&p| p < 1.0);
        let temperature = match temperature {
            Some(t) => t,
            None if top_k.is_some() || top_p.is_some() => 1.0,
            None => 0.0,
        };
        if temperature == 0.0 {
            return Ok(Sampling::ArgMax);
        }
        Ok(Sampling::Sample { temperature, top_k, top_p })
    }

    /// The temperature, 0 for greedy decoding.
    pub fn temperature(&self) -> f32 {
        match *self {
            Sampling::ArgMax => 0.0,
            Sampling::Sample { temperature, .. } => temperature,
        }
    }

    pub fn top_k(&self) -> Option<usize> {
        match *self {
            Sampling::ArgMax => None,
            Sampling::Sample { top_k, .. } => top_k,
        }
    }

    pub fn top_p(&self) -> Option<f32> {
        match *self {
            Sampling::ArgMax => None,
            Sampling::Sample { top_p, .. } => top_p,
        }
    }
}

/// Checks a repetition penalty from user settings.
pub fn check_repetition_penalty(penalty: f32) -> Result<f32, SamplingError> {
    if penalty.is_finite() && penalty > 0.0 { Ok(penalty) } else { Err(SamplingError::RepetitionPenalty(penalty)) }
}

/// A token still in the running and its weight: its logit, then its unnormalized probability.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    id: u32,
    weight: f32,
}

/// Most likely first, the lower id first on ties: a total order (NaNs are never candidates), so which token
/// a seed draws does not depend on how a partition happens to arrange equal weights.
fn by_rank(a: &Candidate, b: &Candidate) -> Ordering {
    b.weight.partial_cmp(&a.weight).unwrap_or(Ordering::Equal).then(a.id.cmp(&b.id))
}

/// Turns the last position's logits into a token id, one step at a time, remembering what the
/// repetition penalty needs.
#[derive(Debug, Clone)]
pub struct LogitsProcessor {
    sampling: Sampling,
    rng: SplitMix64,
    /// 1 is off.
    repetition_penalty: f32,
    /// Distinct tokens of the context (prompt and output so far), and whether each id is among them.
    seen: Vec<u32>,
    is_seen: Vec<bool>,
    /// The row with the penalty applied, reused every step.
    penalized: Vec<f32>,
    /// Reused every step.
    candidates: Vec<Candidate>,
    probe: Vec<f32>,
}

impl Default for LogitsProcessor {
    fn default() -> Self {
        LogitsProcessor::new(Sampling::ArgMax, 0)
    }
}

impl LogitsProcessor {
    /// A processor whose draws come from `seed` (greedy decoding draws nothing).
    pub fn new(sampling: Sampling, seed: u64) -> Self {
        LogitsProcessor {
            sampling,
            rng: SplitMix64::new(seed),
            repetition_penalty: 1.0,
            seen: Vec::new(),
            is_seen: Vec::new(),
            penalized: Vec::new(),
            candidates: Vec::new(),
            probe: Vec::new(),
        }
    }

    /// Applies transformers' repetition penalty to every token of the context: a positive logit is divided
    /// by `penalty`, a negative one multiplied. 1 (and anything [`check_repetition_penalty`] refuses) is off.
    pub fn with_repetition_penalty(mut self, penalty: f32) -> Self {
        self.repetition_penalty = check_repetition_penalty(penalty).unwrap_or(1.0);
        self
    }

    /// Tokens the penalty counts as already in the context: the prompt. Sampled tokens join it by themselves.
    pub fn add_context(&mut self, tokens: &[u32]) {
        if self.repetition_penalty != 1.0 {
            tokens.iter().for_each(|&token| self.remember(token));
        }
    }

    fn remember(&mut self, token: u32) {
        let index = token as usize;
        if index >= self.is_seen.len() {
            self.is_seen.resize(index + 1, false);
        }
        if !self.is_seen[index] {
            self.is_seen[index] = true;
            self.seen.push(token);
        }
    }

    /// The chosen token; `None` only for an empty or all-NaN row.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        let row = if self.repetition_penalty != 1.0 && !self.seen.is_empty() {
            self.penalized.clear();
            self.penalized.extend_from_slice(logits);
            apply_repetition_penalty(&mut self.penalized, &self.seen, self.repetition_penalty);
            &self.penalized[..]
        } else {
            logits
        };
        let token = match self.sampling {
            Sampling::Sample { temperature, top_k, top_p } if temperature > 0.0 => {
                let buffers = (&mut self.candidates, &mut self.probe);
                draw(row, temperature, top_k, top_p, &mut self.rng, buffers)
            }
            _ => argmax(row),
        };
        if let Some(token) = token
            && self.repetition_penalty != 1.0
        {
            self.remember(token);
        }
        token
    }
}

/// Transformers' `RepetitionPenaltyLogitsProcessor`, on distinct `tokens`; ids outside the row are ignored.
fn apply_repetition_penalty(logits: &mut [f32], tokens: &[u32], penalty: f32) {
    for &token in tokens {
        if let Some(logit) = logits.get_mut(token as usize) {
            *logit = if *logit < 0.0 { *logit * penalty } else { *logit / penalty };
        }
    }
}

/// The first position of the largest logit, NaN never chosen. Greedy decoding runs this on every step over the
/// whole vocabulary (49152 logits on the default model), so it is written to vectorize: eight running maxima
/// (`f32::max` ignores NaN), then the first position holding the maximum, instead of one branchy pass.
fn argmax(logits: &[f32]) -> Option<u32> {
    const LANES: usize = 8;
    let mut lanes = [f32::NAN; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(value);
        }
    }
    let max = lanes.iter().chain(rest).copied().fold(f32::NAN, f32::max);
    if max.is_nan() {
        return None;
    }
    logits.iter().position(|&value| value == max).map(|index| index as u32)
}

/// How many candidates top-p ranks first; it doubles them until they hold the nucleus. Real nuclei are
/// mostly a few dozen tokens, so this ranks a few hundred instead of the whole vocabulary.
const NUCLEUS_START: usize = 256;

fn draw(
    row: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    rng: &mut SplitMix64,
    (candidates, probe): (&mut Vec<Candidate>, &mut Vec<f32>),
) -> Option<u32> {
    // Below the floor no logit can be in the top k; NaN is never at or above it.
    let floor = top_k.and_then(|k| top_k_floor(row, k, probe)).unwrap_or(f32::NEG_INFINITY);
    candidates.clear();
    candidates.extend(
        row.iter().enumerate().filter(|(_, v)| **v >= floor).map(|(id, &weight)| Candidate { id: id as u32, weight }),
    );
    if candidates.is_empty() {
        return None;
    }
    let mut ranked = false;
    if let Some(k) = top_k.filter(|&k| k > 0 && k < candidates.len()) {
        candidates.select_nth_unstable_by(k - 1, by_rank);
        candidates.truncate(k);
        candidates.sort_unstable_by(by_rank);
        ranked = true;
    }

    let max = candidates.iter().map(|c| c.weight).fold(f32::NEG_INFINITY, f32::max);
    let inverse_temperature = 1.0 / temperature;
    if !max.is_finite() || !inverse_temperature.is_finite() {
        // All -inf, an +inf, or a temperature so small it overflows: only the most likely token is left.
        return candidates.iter().min_by(|a, b| by_rank(a, b)).map(|c| c.id);
    }
    let mut total = 0f64;
    for candidate in candidates.iter_mut() {
        candidate.weight = ((candidate.weight - max) * inverse_temperature).exp();
        total += f64::from(candidate.weight);
    }

    if let Some(top_p) = top_p.filter(|&p| p < 1.0) {
        total = keep_nucleus(candidates, ranked, f64::from(top_p) * total);
    }

    let threshold = rng.next_f64() * total;
    let mut cumulative = 0f64;
    for candidate in candidates.iter() {
        cumulative += f64::from(candidate.weight);
        if threshold < cumulative {
            return Some(candidate.id);
        }
    }
    // Rounding left the threshold past the last sum: the last token with any weight is the honest pick.
    candidates.iter().rev().find(|c| c.weight > 0.0).or(candidates.first()).map(|c| c.id)
}

/// Rows this long or more get a top-k floor from a strided probe of this many of their logits.
const TOP_K_PROBE: usize = 2048;

/// A value the k-th largest logit of `row` cannot be below: the k-th largest of a strided sample of the row,
/// since a subset's k-th largest is at most the whole row's. Keeping only logits at or above it leaves top-k
/// exact while the partition sees about k·len/TOP_K_PROBE candidates instead of the whole vocabulary.
fn top_k_floor(row: &[f32], k: usize, probe: &mut Vec<f32>) -> Option<f32> {
    if k == 0 || k * 4 > TOP_K_PROBE || row.len() < 2 * TOP_K_PROBE {
        return None;
    }
    probe.clear();
    probe.extend(row.iter().step_by(row.len() / TOP_K_PROBE).copied().filter(|v| !v.is_nan()));
    if probe.len() < k {
        return None;
    }
    let (_, kth, _) = probe.select_nth_unstable_by(k - 1, |a, b| b.partial_cmp(a).unwrap_or(Ordering::Equal));
    Some(*kth)
}

/// Cuts `candidates` to the fewest most likely ones whose weights reach `target`, ranked most likely first,
/// and returns their total weight. At least one candidate stays.
fn keep_nucleus(candidates: &mut Vec<Candidate>, ranked: bool, target: f64) -> f64 {
    let mut ranked_len = if ranked { candidates.len() } else { NUCLEUS_START.min(candidates.len()) };
    loop {
        if !ranked {
            if ranked_len < candidates.len() {
                candidates.select_nth_unstable_by(ranked_len - 1, by_rank);
            }
            candidates[..ranked_len].sort_unstable_by(by_rank);
        }
        let mut cumulative = 0f64;
        for (index, candidate) in candidates[..ranked_len].iter().enumerate() {
            cumulative += f64::from(candidate.weight);
            if cumulative >= target {
                candidates.truncate(index + 1);
                return cumulative;
            }
        }
        if ranked_len == candidates.len() {
            // Rounding kept the sum just under the target: the whole row is the nucleus.
            return cumulative;
        }
        ranked_len = (ranked_len * 2).min(candidates.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampling {
        Sampling::Sample { temperature, top_k, top_p }
    }

    fn softmax(logits: &[f32], temperature: f32) -> Vec<f64> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f64> = logits.iter().map(|&l| f64::from((l - max) / temperature).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    /// Frequencies of each token over `draws` draws.
    fn frequencies(processor: &mut LogitsProcessor, logits: &[f32], draws: usize) -> Vec<f64> {
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..draws {
            counts[processor.sample(logits).unwrap() as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    /// 100k draws: a frequency's standard error is at most 0.0016, so 0.01 is over six of them.
    fn assert_close(observed: &[f64], expected: &[f64]) {
        for (i, (o, e)) in observed.iter().zip(expected).enumerate() {
            assert!((o - e).abs() < 0.01, "token {i}: observed {o:.4}, expected {e:.4}\n{observed:?}\n{expected:?}");
        }
    }

    const ROW: [f32; 6] = [1.0, 2.5, 0.0, 2.0, -1.0, 1.5];

    #[test]
    fn argmax_picks_largest_and_first_on_ties() {
        let mut processor = LogitsProcessor::new(Sampling::ArgMax, 0);
        assert_eq!(processor.sample(&[0.1, 3.0, -2.0, 3.0]), Some(1));
        assert_eq!(processor.sample(&[-5.0, -1.0, -3.0]), Some(1));
        assert_eq!(processor.sample(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), Some(0));
    }

    /// The lane-wise argmax against a plain scan, on rows whose maxima sit in every lane and in the tail,
    /// with ties and NaN among them.
    #[test]
    fn argmax_matches_a_plain_scan_on_long_rows() {
        let plain = |row: &[f32]| {
            let mut best: Option<(usize, f32)> = None;
            for (index, &value) in row.iter().enumerate() {
                if !value.is_nan() && best.is_none_or(|(_, top)| value > top) {
                    best = Some((index, value));
                }
            }
            best.map(|(index, _)| index as u32)
        };
        let mut state = 7u64;
        for len in [1usize, 7, 8, 9, 63, 1000, 49152] {
            for round in 0..20 {
                let mut row: Vec<f32> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((state >> 40) % 64) as f32 - 32.0
                    })
                    .collect();
                if round % 3 == 0 {
                    row[len / 2] = f32::NAN;
                }
                if round % 5 == 0 {
                    let last = len - 1;
                    row[last] = 1e9;
                }
                assert_eq!(argmax(&row), plain(&row), "length {len}, round {round}");
            }
        }
    }

    #[test]
    fn argmax_skips_nan_and_handles_empty() {
        let mut processor = LogitsProcessor::default();
        assert_eq!(processor.sample(&[f32::NAN, 1.0, f32::NAN, 0.5]), Some(1));
        assert_eq!(processor.sample(&[f32::NAN]), None);
        assert_eq!(processor.sample(&[]), None);
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens_and_another_seed_does_not() {
        let logits = SplitMix64::new(5).values(300, 2.0);
        let draws = |seed: u64, sampling: Sampling| {
            let mut processor = LogitsProcessor::new(sampling, seed);
            (0..200).map(|_| processor.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        for sampling in [sample(1.0, None, None), sample(0.8, Some(40), None), sample(1.2, Some(100), Some(0.9))] {
            assert_eq!(draws(7, sampling), draws(7, sampling), "{sampling:?}");
            assert_ne!(draws(7, sampling), draws(8, sampling), "{sampling:?}");
        }
        // A fixed stream: these ids only change if the generator or the draw changes, which would change
        // every seeded run recorded so far.
        assert_eq!(draws(7, sample(1.0, Some(40), Some(0.9)))[..8], [201, 117, 296, 164, 123, 217, 140, 32]);
    }

    #[test]
    fn top_k_one_and_a_tiny_top_p_are_greedy() {
        let mut rng = SplitMix64::new(11);
        let mut rows: Vec<Vec<f32>> = (0..50).map(|_| rng.values(1000, 4.0)).collect();
        rows.push(vec![0.5, 3.0, 3.0, -1.0]);
        rows.push(vec![f32::NAN, -2.0, 1.0, 1.0]);
        for (seed, row) in rows.iter().enumerate() {
            let greedy = argmax(row);
            let mut top_k = LogitsProcessor::new(sample(1.5, Some(1), None), seed as u64);
            let mut top_p = LogitsProcessor::new(sample(1.5, None, Some(1e-6)), seed as u64);
            let mut both = LogitsProcessor::new(sample(0.7, Some(5), Some(1e-6)), seed as u64);
            for _ in 0..5 {
                assert_eq!(top_k.sample(row), greedy);
                assert_eq!(top_p.sample(row), greedy);
                assert_eq!(both.sample(row), greedy);
            }
        }
    }

    #[test]
    fn draws_follow_the_softmax_of_the_logits() {
        let mut processor = LogitsProcessor::new(sample(1.0, None, None), 1);
        assert_close(&frequencies(&mut processor, &ROW, 100_000), &softmax(&ROW, 1.0));
    }

    #[test]
    fn temperature_scales_the_logits() {
        for temperature in [0.5, 2.0] {
            let mut processor = LogitsProcessor::new(sample(temperature, None, None), 2);
            assert_close(&frequencies(&mut processor, &ROW, 100_000), &softmax(&ROW, temperature));
        }
        // Temperature 0 is greedy decoding.
        assert_eq!(Sampling::new(Some(0.0), Some(5), Some(0.5)), Ok(Sampling::ArgMax));
        let mut cold = LogitsProcessor::new(sample(1e-30, None, None), 3);
        assert!((0..100).all(|_| cold.sample(&ROW) == Some(1)));
    }

    #[test]
    fn top_k_and_top_p_renormalize_over_what_they_keep() {
        let probs = softmax(&ROW, 1.0);
        // Top 2: tokens 1 and 3.
        let mut top_k = LogitsProcessor::new(sample(1.0, Some(2), None), 4);
        let kept = probs[1] + probs[3];
        let expected: Vec<f64> = (0..ROW.len()).map(|i| if i == 1 || i == 3 { probs[i] / kept } else { 0.0 }).collect();
        assert_close(&frequencies(&mut top_k, &ROW, 100_000), &expected);

        // The nucleus is the fewest most likely tokens reaching top-p: 1 and 3 hold 0.696 of the mass, so 5
        // joins them.
        let only = |ids: &[usize]| -> Vec<f64> {
            let kept: f64 = ids.iter().map(|&i| probs[i]).sum();
            (0..ROW.len()).map(|i| if ids.contains(&i) { probs[i] / kept } else { 0.0 }).collect()
        };
        assert!(probs[1] + probs[3] < 0.7 && probs[1] + probs[3] + probs[5] > 0.7, "{probs:?}");
        let mut top_p = LogitsProcessor::new(sample(1.0, None, Some(0.7)), 5);
        assert_close(&frequencies(&mut top_p, &ROW, 100_000), &only(&[1, 3, 5]));
        // Top-p applies to what top-k kept, renormalized: among the top 4, tokens 1 and 3 hold 0.731.
        let mut both = LogitsProcessor::new(sample(1.0, Some(4), Some(0.7)), 5);
        assert_close(&frequencies(&mut both, &ROW, 100_000), &only(&[1, 3]));
    }

    #[test]
    fn top_k_on_a_vocabulary_sized_row_keeps_exactly_the_k_most_likely() {
        let mut rng = SplitMix64::new(12);
        // Whole numbers: many ties at the k-th value, which the lower ids win.
        let mut row: Vec<f32> = rng.values(49_152, 8.0).iter().map(|v| v.round()).collect();
        row[100] = f32::NAN;
        for k in [1, 40, 300, 600] {
            let mut ranked: Vec<Candidate> = row
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(id, &weight)| Candidate { id: id as u32, weight })
                .collect();
            ranked.sort_by(by_rank);
            let expected: std::collections::BTreeSet<u32> = ranked[..k].iter().map(|c| c.id).collect();
            // A huge temperature makes the kept tokens equally likely, so every one of them shows up.
            let mut processor = LogitsProcessor::new(sample(1e30, Some(k), None), k as u64);
            let drawn: std::collections::BTreeSet<u32> = (0..k * 40).map(|_| processor.sample(&row).unwrap()).collect();
            assert_eq!(drawn, expected, "k = {k}");
        }
    }

    #[test]
    fn top_p_nucleus_larger_than_the_first_ranking_is_found() {
        // A flat row: the nucleus at 0.9 holds 90% of 5000 tokens, far past the first NUCLEUS_START.
        let row = vec![0.0f32; 5000];
        let mut processor = LogitsProcessor::new(sample(1.0, None, Some(0.9)), 6);
        let mut seen_max = 0;
        for _ in 0..20_000 {
            let token = processor.sample(&row).unwrap();
            assert!(token < 4500, "token {token} is outside the nucleus (ties rank by id)");
            seen_max = seen_max.max(token);
        }
        assert!(seen_max > 4400, "the nucleus was cut short: largest token drawn {seen_max}");
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
        let mut logits = vec![4.0, -1.0, 3.0, 0.0, 2.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 3, 99], 2.0);
        assert_eq!(logits, [2.0, -2.0, 3.0, 0.0, 2.0]);

        // Greedy with the penalty: the prompt's token 0 loses to token 2, then token 2 (now seen) to token 4.
        let row = [4.0, -1.0, 3.0, 0.0, 2.5];
        let mut processor = LogitsProcessor::new(Sampling::ArgMax, 0).with_repetition_penalty(2.0);
        processor.add_context(&[0, 0, 1]);
        assert_eq!(processor.sample(&row), Some(2));
        assert_eq!(processor.sample(&row), Some(4));
        assert_eq!(processor.sample(&row), Some(0));
        // A penalty of 1, or one out of range, changes nothing.
        for penalty in [1.0, 0.0, f32::NAN] {
            let mut processor = LogitsProcessor::new(Sampling::ArgMax, 0).with_repetition_penalty(penalty);
            processor.add_context(&[0]);
            assert_eq!(processor.sample(&row), Some(0));
        }
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        assert_eq!(Sampling::new(None, None, None), Ok(Sampling::ArgMax));
        assert_eq!(Sampling::new(None, Some(40), None), Ok(sample(1.0, Some(40), None)));
        assert_eq!(Sampling::new(Some(0.7), Some(0), Some(1.0)), Ok(sample(0.7, None, None)));
        for bad in [-0.1, f32::NAN, f32::INFINITY] {
            let err = Sampling::new(Some(bad), None, None).unwrap_err();
            assert!(err.to_string().starts_with("temperature must be"), "{err}");
        }
        for bad in [0.0, 1.5, -1.0, f32::NAN] {
            let err = Sampling::new(Some(1.0), None, Some(bad)).unwrap_err();
            assert!(err.to_string().starts_with("top-p must be in (0, 1]"), "{err}");
        }
        for bad in [0.0, -1.0, f32::INFINITY] {
            assert!(check_repetition_penalty(bad).unwrap_err().to_string().starts_with("repetition-penalty"));
        }
        assert_eq!(check_repetition_penalty(1.1), Ok(1.1));
    }
}
