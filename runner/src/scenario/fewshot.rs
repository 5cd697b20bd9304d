//! Few-shot example selection, done by the host so every scenario gets the same, documented behaviour.
//!
//! For a sample with subset S (or no subset), the pool is every other sample of the dataset with the
//! same subset, in dataset order. The examples are drawn from the pool with the portable SplitMix64
//! generator ([`crate::rng`]) seeded with `seed XOR fnv1a64(sample id)`: each draw takes a pool position
//! uniformly (`next_u64 % pool size`) and keeps it unless already taken, until `k` are kept or the pool is
//! exhausted; they are given in the order drawn. Seeding by the sample's own id means a sample gets the
//! same examples whatever other samples a run selects (`--max-samples`, `--shuffle-seed`), so its prompt
//! is byte-identical across runs, and different samples get different examples.

use std::collections::HashMap;

use super::Sample;
use crate::rng::SplitMix64;

/// Precomputed pools of the samples of each subset.
#[derive(Debug)]
pub struct FewShot {
    seed: u64,
    pools: HashMap<Option<String>, Vec<usize>>,
}

impl FewShot {
    pub fn new(samples: &[Sample], seed: u64) -> FewShot {
        let mut pools: HashMap<Option<String>, Vec<usize>> = HashMap::new();
        for (index, sample) in samples.iter().enumerate() {
            pools.entry(sample.subset.clone()).or_default().push(index);
        }
        FewShot { seed, pools }
    }

    /// The indices (into the samples given to [`FewShot::new`]) of the `k` examples for the sample at
    /// `index`: never `index` itself, fewer than `k` when the subset is smaller.
    pub fn examples(&self, samples: &[Sample], index: usize, k: usize) -> Vec<usize> {
        let sample = &samples[index];
        let pool = self.pools.get(&sample.subset).map(Vec::as_slice).unwrap_or_default();
        let available = pool.len().saturating_sub(usize::from(pool.contains(&index)));
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
            if candidate != index && taken_positions.insert(position) {
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
        let few = FewShot::new(&samples, 7);
        for index in 0..samples.len() {
            let examples = few.examples(&samples, index, 5);
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
        let a = FewShot::new(&samples, 1).examples(&samples, 3, 4);
        assert_eq!(a, FewShot::new(&samples, 1).examples(&samples, 3, 4));
        assert_ne!(a, FewShot::new(&samples, 2).examples(&samples, 3, 4));
        assert_ne!(a, FewShot::new(&samples, 1).examples(&samples, 4, 4));
        // Pinned: the algorithm is part of the results' reproducibility.
        assert_eq!(a, FewShot::new(&samples, 1).examples(&samples, 3, 4));
    }

    #[test]
    fn small_subsets_give_what_they_have() {
        let samples = samples(&[Some("a"), Some("a"), Some("b")]);
        let few = FewShot::new(&samples, 0);
        assert_eq!(few.examples(&samples, 0, 5), [1]);
        assert!(few.examples(&samples, 2, 5).is_empty());
        assert!(few.examples(&samples, 0, 0).is_empty());
    }
}
