//! Repetition-loop detection: the tail of the output is one chunk repeated many times.
//!
//! Greedy decoding of a VLM sometimes falls into a cycle (the same table row, the same phrase,
//! the same token) until the budget ends. The check looks for the smallest period `p` such that
//! the last `n·p` characters are `n` copies of one chunk, with enough copies and enough repeated
//! text that ordinary repetition (table rules `|---|---|`, `......` leaders, a short refrain) is
//! not taken for a loop. It runs on characters, so it also serves as a streaming stop
//! criterion (call it every few dozen tokens on the text so far).

/// A detected loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repetition {
    /// Length of the repeated chunk, in characters.
    pub period: usize,
    /// Whole copies of the chunk at the end of the text.
    pub repeats: usize,
    /// Byte offset in the text where the repeated run starts (text before it is kept).
    pub start: usize,
    /// The chunk (shortened to 80 characters for messages).
    pub chunk: String,
}

/// Longest chunk searched for.
const MAX_PERIOD: usize = 400;
/// A run must cover at least this many characters…
const MIN_RUN_CHARS: usize = 160;
/// …and this many copies of a short chunk (short chunks repeat legitimately more often).
fn min_repeats(period: usize) -> usize {
    match period {
        0..=2 => 60,
        3..=10 => 16,
        11..=40 => 6,
        _ => 4,
    }
}

/// The loop at the end of `text`, if any.
pub fn detect_repetition(text: &str) -> Option<Repetition> {
    // Work on the tail only: enough for MAX_PERIOD × 4 copies and the longest short-chunk run.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let tail_len = chars.len().min(MAX_PERIOD * 4 + 1200);
    let tail = &chars[chars.len() - tail_len..];
    let c: Vec<char> = tail.iter().map(|(_, ch)| *ch).collect();
    let n = c.len();
    for period in 1..=MAX_PERIOD.min(n / 2) {
        // Count trailing characters equal to the character `period` earlier.
        let mut run = 0;
        while run + period < n && c[n - 1 - run] == c[n - 1 - run - period] {
            run += 1;
        }
        let covered = run + period;
        let repeats = covered / period;
        if repeats >= min_repeats(period) && covered >= MIN_RUN_CHARS.max(period * 2) {
            // Whitespace-only chunks are padding, not a loop the engine can fix by retrying.
            let chunk: String = c[n - period..].iter().collect();
            if chunk.trim().is_empty() {
                continue;
            }
            let start_char = n - repeats * period;
            return Some(Repetition {
                period,
                repeats,
                start: tail[start_char].0,
                chunk: chunk.chars().take(80).collect(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_repeated_row() {
        let mut text = String::from("# Prices\n\n<table><tr><td>a</td><td>1</td></tr>");
        for _ in 0..20 {
            text.push_str("<tr><td>b</td><td>2</td></tr>");
        }
        let r = detect_repetition(&text).expect("loop");
        assert_eq!(r.period, "<tr><td>b</td><td>2</td></tr>".len());
        assert!(r.repeats >= 19);
        assert!(text[..r.start].starts_with("# Prices"));
    }

    #[test]
    fn finds_a_single_token_loop() {
        let text = format!("The answer is {}", "no".repeat(200));
        let r = detect_repetition(&text).expect("loop");
        assert_eq!(r.period, 2);
        assert!(text[r.start..].starts_with("no"));
    }

    #[test]
    fn ordinary_repetition_is_not_a_loop() {
        let md = "| a | b | c |\n|---|---|---|\n| 1 | 2 | 3 |\n| 4 | 5 | 6 |\n";
        assert_eq!(detect_repetition(md), None);
        let toc = format!(
            "Introduction {} 1\nMethods {} 7\n",
            ".".repeat(40),
            ".".repeat(45)
        );
        assert_eq!(detect_repetition(&toc), None);
        assert_eq!(detect_repetition("ha ha ha ha, said he."), None);
        assert_eq!(detect_repetition(&" ".repeat(500)), None);
        assert_eq!(detect_repetition(""), None);
    }

    #[test]
    fn multibyte_text_is_handled() {
        let text = format!("前言{}", "重复的句子。".repeat(40));
        let r = detect_repetition(&text).expect("loop");
        assert_eq!(r.period, 6);
        assert!(text.is_char_boundary(r.start));
    }
}
