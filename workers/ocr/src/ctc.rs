//! The recogniser's alphabet and greedy CTC decoding.
//!
//! PaddleOCR models carry their character list in the ONNX metadata key `character`, one entry per
//! line; the network's classes are `[blank] + list + [" "]`, so the output width is the list length
//! plus two.

/// Class index → text; index 0 is the CTC blank.
#[derive(Debug, Clone, PartialEq)]
pub struct Charset {
    symbols: Vec<String>,
}

impl Charset {
    /// From the metadata value: entries separated by `\n` (a trailing `\r` is dropped), blank
    /// prepended and space appended.
    pub fn from_metadata(list: &str) -> Self {
        let mut symbols = Vec::with_capacity(list.len() / 2 + 2);
        symbols.push(String::new());
        symbols.extend(
            list.split('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s).to_string()),
        );
        symbols.push(" ".to_string());
        Charset { symbols }
    }

    /// Number of classes including blank and space.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.len() <= 2
    }

    /// Greedy CTC over `steps × classes` probabilities: the arg-max class per step, repeats
    /// collapsed, blanks dropped. Confidence is the mean probability of the kept steps (0 when
    /// nothing is kept). Classes beyond the alphabet decode to nothing.
    pub fn decode(&self, probs: &[f32], steps: usize, classes: usize) -> (String, f32) {
        let mut text = String::new();
        let (mut sum, mut kept) = (0f32, 0usize);
        let mut prev = usize::MAX;
        for t in 0..steps {
            let Some(row) = probs.get(t * classes..(t + 1) * classes) else {
                break;
            };
            let (best, p) = argmax(row);
            if best != 0 && best != prev {
                if let Some(sym) = self.symbols.get(best) {
                    text.push_str(sym);
                    sum += p;
                    kept += 1;
                }
            }
            prev = best;
        }
        let conf = if kept == 0 { 0.0 } else { sum / kept as f32 };
        (text, conf)
    }
}

/// Index and value of the first maximum. Two passes (a lane-wise maximum the compiler
/// vectorises, then a search for it) beat one branchy pass over 18710 classes per step.
/// NaN never wins; an all-NaN or empty row gives `(0, -inf)`.
pub fn argmax(row: &[f32]) -> (usize, f32) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let mut m = tail
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    for l in lanes {
        m = if l > m { l } else { m };
    }
    match row.iter().position(|&v| v == m) {
        Some(i) => (i, m),
        None => (0, f32::NEG_INFINITY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(seq: &[(usize, f32)], classes: usize) -> Vec<f32> {
        let mut v = vec![0.0; seq.len() * classes];
        for (t, &(c, p)) in seq.iter().enumerate() {
            v[t * classes + c] = p;
        }
        v
    }

    #[test]
    fn argmax_finds_the_first_maximum() {
        let mut row = vec![0.0f32; 37];
        row[21] = 0.7;
        row[33] = 0.7;
        row[5] = f32::NAN;
        assert_eq!(argmax(&row), (21, 0.7));
        assert_eq!(argmax(&[0.1, 0.3]), (1, 0.3));
        assert_eq!(argmax(&[]), (0, f32::NEG_INFINITY));
        assert_eq!(argmax(&[f32::NAN]), (0, f32::NEG_INFINITY));
    }

    #[test]
    fn charset_adds_blank_and_space() {
        let cs = Charset::from_metadata("a\nb\r\nc");
        assert_eq!(cs.len(), 5);
        assert_eq!(cs.symbols, vec!["", "a", "b", "c", " "]);
    }

    #[test]
    fn greedy_decode_collapses_repeats_and_drops_blanks() {
        let cs = Charset::from_metadata("a\nb");
        // classes: 0 blank, 1 a, 2 b, 3 space
        let seq = [
            (1, 0.9),
            (1, 0.8),
            (0, 0.99),
            (1, 0.7),
            (3, 0.6),
            (2, 0.5),
            (2, 0.5),
            (0, 0.9),
        ];
        let (text, conf) = cs.decode(&one_hot(&seq, 4), seq.len(), 4);
        assert_eq!(text, "aa b");
        assert!(
            (conf - (0.9 + 0.7 + 0.6 + 0.5) / 4.0).abs() < 1e-6,
            "{conf}"
        );
    }

    #[test]
    fn all_blank_is_empty_with_zero_confidence() {
        let cs = Charset::from_metadata("a");
        let (text, conf) = cs.decode(&one_hot(&[(0, 1.0), (0, 1.0)], 3), 2, 3);
        assert_eq!((text.as_str(), conf), ("", 0.0));
    }

    #[test]
    fn short_buffers_and_unknown_classes_do_not_panic() {
        let cs = Charset::from_metadata("a");
        // 3 steps claimed, 1 present; class 5 is outside a 3-symbol alphabet.
        let (text, _) = cs.decode(&one_hot(&[(5, 1.0)], 6), 3, 6);
        assert_eq!(text, "");
    }
}
