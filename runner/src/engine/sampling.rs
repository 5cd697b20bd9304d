//! Picks the next token from a row of logits.
//!
//! Only greedy decoding exists today; [`Sampling`] is the slot where temperature, top-k and top-p (with a
//! seeded RNG held by [`LogitsProcessor`]) will go, without the generation loop changing.

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Sampling {
    /// Always the most likely token (the first one on ties), as reference implementations do.
    #[default]
    ArgMax,
}

/// Turns the last position's logits into a token id.
#[derive(Debug, Clone, Default)]
pub struct LogitsProcessor {
    sampling: Sampling,
}

impl LogitsProcessor {
    pub fn new(sampling: Sampling) -> Self {
        LogitsProcessor { sampling }
    }

    /// The chosen token; `None` only for an empty or all-NaN row.
    pub fn sample(&mut self, logits: &[f32]) -> Option<u32> {
        match self.sampling {
            Sampling::ArgMax => argmax(logits),
        }
    }
}

fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (index, &value) in logits.iter().enumerate() {
        if value.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, top)| value > top) {
            best = Some((index, value));
        }
    }
    best.map(|(index, _)| index as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_picks_largest_and_first_on_ties() {
        let mut processor = LogitsProcessor::new(Sampling::ArgMax);
        assert_eq!(processor.sample(&[0.1, 3.0, -2.0, 3.0]), Some(1));
        assert_eq!(processor.sample(&[-5.0, -1.0, -3.0]), Some(1));
        assert_eq!(processor.sample(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), Some(0));
    }

    #[test]
    fn argmax_skips_nan_and_handles_empty() {
        let mut processor = LogitsProcessor::default();
        assert_eq!(processor.sample(&[f32::NAN, 1.0, f32::NAN, 0.5]), Some(1));
        assert_eq!(processor.sample(&[f32::NAN]), None);
        assert_eq!(processor.sample(&[]), None);
    }
}
