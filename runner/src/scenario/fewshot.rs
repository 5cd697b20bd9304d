//! Few-shot example selection, done by the host so every scenario gets the same, documented behaviour.
//!
//! The pool is the few-shot split when the run has one (`--few-shot-data`, MMLU's dev files), else the
//! evaluated dataset itself, less the sample. A sample with subset S (or no subset) draws from the pool's
//! samples of subset S, in their file order. Two orders:
//! - `first`: the first `k` of them, as lm-evaluation-harness's `first_n` sampler and the original MMLU
//!   code take them (the default with a few-shot split, so MMLU 5-shot prompts equal lm-eval's);
//! - `seeded`: drawn with the portable SplitMix64 generator ([`crate::rng`]) seeded with `seed XOR
//!   fnv1a64(sample id)`: each draw takes a pool position uniformly (`next_u64 % pool size`) and keeps it
//!   unless already taken, until `k` are kept or the pool is exhausted; they are given in the order drawn
//!   (the default without a few-shot split, so samples do not all share the dataset's first questions).
//!
//! Either way a sample's examples depend only on its id and subset, never on what else a run selects
//! (`--max-samples`, `--shuffle-seed`), so its prompt is byte-identical across runs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Sample;
use crate::rng::SplitMix64;

/// The order few-shot examples are taken in (`--few-shot-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FewShotOrder {
    /// The first K of the sample's subset, in file order (lm-eval's `first_n`; MMLU's original code).
    First,
    /// K drawn at random, seeded by `--seed` and the sample's id.
    Seeded,
}

impl FewShotOrder {
    pub fn name(self) -> &'static str {
        match self {
            FewShotOrder::First => "first",
            FewShotOrder::Seeded => "seeded",
        }
    }
}

/// Precomputed pools of the samples of each subset.
#[derive(Debug)]
pub struct FewShot {
    seed: u64,
    order: FewShotOrder,
    pools: HashMap<Option<String>, Vec<usize>>,
}

impl FewShot {
    /// Pools over `pool`, the samples examples are drawn from.
    pub fn new(pool: &[Sample], seed: u64, order: FewShotOrder) -> FewShot {
        let mut pools: HashMap<Option<String>, Vec<usize>> = HashMap::new();
        for (index, sample) in pool.iter().enumerate() {
            pools.entry(sample.subset.clone()).or_default().push(index);
        }
        FewShot { seed, order, pools }
    }

    /// The indices (into the pool given to [`FewShot::new`]) of the `k` examples for `sample`, never the
    /// pool's sample at `own` (the sample itself, when the pool is the evaluated dataset); fewer than `k`
    /// when the subset is smaller.
    pub fn examples(&self, sample: &Sample, own: Option<usize>, k: usize) -> Vec<usize> {
        let pool = self.pools.get(&sample.subset).map(Vec::as_slice).unwrap_or_default();
        let is_own = |candidate: usize| Some(candidate) == own;
        if self.order == FewShotOrder::First {
            return pool.iter().copied().filter(|&c| !is_own(c)).take(k).collect();
        }
        let available = pool.len().saturating_sub(usize::from(pool.iter().any(|&c| is_own(c))));
        let k = k.min(available);
        let mut rng = SplitMix64::new(self.seed ^ fnv1a64(sample.id.as_bytes()));
        let mut taken = Vec::with_capacity(k);
        let mut taken_positions = std::collections::HashSet::with_capacity(k);
        // Rejection sampling is O(k) draws while k is well below the pool size (the usual case: 5 of
        // hundreds); when k is most of the pool it needs more draws but still terminates, since every
        // position not yet taken has a fixed positive chance per draw.
        while taken.len() < k {
            let position = (rng.next_u64() % pool.len() as u64) as usize;
            let candidate = pool[position];
            if !is_own(candidate) && taken_positions.insert(position) {
                taken.push(candidate);
            }
        }
        taken
    }
}

/// FNV-1a, 64 bits: a fixed, portable hash of the sample id.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(subsets: &[Option<&str>]) -> Vec<Sample> {
        subsets
            .iter()
            .enumerate()
            .map(|(i, subset)| Sample {
                id: format!("s{i}"),
                subset: subset.map(str::to_string),
                fields: Vec::new(),
                reference: String::new(),
            })
            .collect()
    }

    #[test]
    fn examples_come_from_the_same_subset_and_never_the_sample() {
        let subsets: Vec<Option<&str>> = (0..40).map(|i| Some(if i % 2 == 0 { "even" } else { "odd" })).collect();
        let samples = samples(&subsets);
        let few = FewShot::new(&samples, 7, FewShotOrder::Seeded);
        for index in 0..samples.len() {
            let examples = few.examples(&samples[index], Some(index), 5);
            assert_eq!(examples.len(), 5);
            assert!(!examples.contains(&index));
            assert!(examples.iter().all(|&e| samples[e].subset == samples[index].subset));
            let mut unique = examples.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 5);
        }
    }

    #[test]
    fn the_order_is_seeded_and_independent_of_the_selection() {
        let samples = samples(&[None; 30]);
        let seeded = |seed, index: usize| {
            FewShot::new(&samples, seed, FewShotOrder::Seeded).examples(&samples[index], Some(index), 4)
        };
        let a = seeded(1, 3);
        assert_eq!(a, seeded(1, 3));
        assert_ne!(a, seeded(2, 3));
        assert_ne!(a, seeded(1, 4));
    }

    #[test]
    fn small_subsets_give_what_they_have() {
        let samples = samples(&[Some("a"), Some("a"), Some("b")]);
        let few = FewShot::new(&samples, 0, FewShotOrder::Seeded);
        assert_eq!(few.examples(&samples[0], Some(0), 5), [1]);
        assert!(few.examples(&samples[2], Some(2), 5).is_empty());
        assert!(few.examples(&samples[0], Some(0), 0).is_empty());
    }

    #[test]
    fn first_takes_a_separate_splits_examples_in_file_order() {
        let dev = samples(&[Some("a"), Some("b"), Some("a"), Some("a"), Some("b")]);
        let test = samples(&[Some("a"), Some("b")]);
        let few = FewShot::new(&dev, 9, FewShotOrder::First);
        // The test sample "s0" shares an id with dev's first sample, yet nothing is excluded: other split.
        assert_eq!(few.examples(&test[0], None, 2), [0, 2]);
        assert_eq!(few.examples(&test[1], None, 5), [1, 4]);
        // Within the evaluated dataset the sample itself is skipped.
        assert_eq!(few.examples(&dev[0], Some(0), 2), [2, 3]);
        let seeded = FewShot::new(&dev, 9, FewShotOrder::Seeded).examples(&test[0], None, 3);
        let mut sorted = seeded.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 2, 3]);
    }
}
