//! The synthetic prompt of a benchmark: P token ids drawn from a model's ordinary vocabulary, the same ids on
//! every run and machine.
//!
//! The pool is every id below the smaller of the tokenizer's and the model's vocabulary sizes, minus the
//! tokenizer's special tokens (`<|im_start|>`, EOS...) and the model's EOS ids, in increasing id order. Ids are
//! drawn from it uniformly, with replacement, by runner's portable SplitMix64 seeded with [`PROMPT_SEED`]: the
//! i-th id is `pool[next_u64() % pool.len()]`. Like llama-bench's random tokens, the text means nothing; what
//! matters for timing is the length, and that no special token changes what the model does. A shorter prompt
//! is a prefix of a longer one.

use tokenizers::Tokenizer;

use super::BenchError;
use crate::rng::SplitMix64;

/// "runner" in ASCII.
pub const PROMPT_SEED: u64 = 0x7275_6e6e_6572;

/// The ids a synthetic prompt is drawn from.
pub fn token_pool(tokenizer: &Tokenizer, model_vocab: usize, eos_token_ids: &[u32]) -> Vec<u32> {
    let special: std::collections::HashSet<u32> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, token)| token.special)
        .map(|(id, _)| id)
        .chain(eos_token_ids.iter().copied())
        .collect();
    let vocab = tokenizer.get_vocab_size(true).min(model_vocab) as u32;
    (0..vocab).filter(|id| !special.contains(id)).collect()
}

/// `len` ids from `pool`, as the module documents.
pub fn synthetic_prompt(pool: &[u32], len: usize) -> Result<Vec<u32>, BenchError> {
    if pool.is_empty() {
        return Err(BenchError::NoOrdinaryTokens);
    }
    let mut rng = SplitMix64::new(PROMPT_SEED);
    Ok((0..len).map(|_| pool[(rng.next_u64() % pool.len() as u64) as usize]).collect())
}
