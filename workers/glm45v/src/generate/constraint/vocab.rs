//! The tokenizer's vocabulary as bytes, indexed for masking (built once, shared by `Arc`).
//!
//! GLM's `tokenizer.json` is byte-level BPE: every vocabulary string spells bytes through the
//! GPT-2 byte↔character table (printable Latin-1 maps to itself, the other bytes to U+0100…).
//! Control tokens (`<|user|>`, `<think>`, `<|begin_of_box|>`, `[gMASK]`, …) are never allowed
//! inside constrained output; the stop ids are handled by the constraint itself.

use crate::chat::tokenizer::GlmTokenizer;
use crate::error::{Error, Result};

/// GLM's added tokens that are not marked special (they survive `skip_special` decoding).
const CONTROL: [&str; 13] = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "/nothink",
    "<|begin_of_box|>",
    "<|end_of_box|>",
];

/// Token bytes of a tokenizer, bucketed for the mask.
#[derive(Debug)]
pub struct ConstraintVocab {
    /// Bytes of each id; `None` = never allowed (control token or not byte-level).
    pub(crate) bytes: Vec<Option<Box<[u8]>>>,
    /// Allowed ids by their first byte.
    pub(crate) by_first: Vec<Vec<u32>>,
    /// Ids made of whole printable characters without `"` or `\`, with their character count.
    pub(crate) plain: Vec<(u32, u32)>,
    /// Allowed ids that are not plain.
    pub(crate) other: Vec<u32>,
}

impl ConstraintVocab {
    /// Indexes `tok`'s vocabulary (about 0.1–0.3 s for GLM-4.5V's 151k tokens; share the
    /// result between constraints).
    pub fn new(tok: &GlmTokenizer) -> Result<Self> {
        let table = unicode_to_byte();
        let n = tok.vocab_size();
        let mut v = ConstraintVocab {
            bytes: Vec::with_capacity(n),
            by_first: vec![Vec::new(); 256],
            plain: Vec::new(),
            other: Vec::new(),
        };
        let mut mapped = 0usize;
        let mut single = [false; 256];
        for id in 0..n as u32 {
            let bytes = tok.token(id).and_then(|s| token_bytes(tok, id, &s, &table));
            if let Some(b) = &bytes {
                mapped += 1;
                if b.len() == 1 {
                    single[b[0] as usize] = true;
                }
                v.by_first[b[0] as usize].push(id);
                match plain_chars(b) {
                    Some(chars) => v.plain.push((id, chars)),
                    None => v.other.push(id),
                }
            }
            v.bytes.push(bytes);
        }
        // Shortest completions are printable ASCII: each such byte must be a token alone, so a
        // completion of n bytes never needs more than n tokens.
        if let Some(byte) = (0x20..=0x7Eu8).find(|&b| !single[b as usize]) {
            return Err(Error::Tokenizer(format!(
                "vocabulary has no single-byte token for {:?}: not byte-level BPE",
                byte as char
            )));
        }
        if mapped == 0 {
            return Err(Error::Tokenizer("empty vocabulary".into()));
        }
        Ok(v)
    }

    /// Number of ids (the tokenizer's vocabulary size, added tokens included).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the vocabulary is empty (never for a loaded tokenizer).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Bytes of one token; `None` for control tokens and strings outside the byte table.
fn token_bytes(tok: &GlmTokenizer, id: u32, s: &str, table: &[Option<u8>]) -> Option<Box<[u8]>> {
    if s.is_empty() || CONTROL.contains(&s) || (s.starts_with("<|") && s.ends_with("|>")) {
        return None;
    }
    let bytes: Option<Vec<u8>> = s
        .chars()
        .map(|c| table.get(c as usize).copied().flatten())
        .collect();
    let bytes = bytes?;
    // Special added tokens spell ASCII too (`[gMASK]`, `<sop>`): skip_special decoding drops them.
    if s.starts_with(['<', '[', '/']) && tok.decode(&[id], true).ok()?.is_empty() {
        return None;
    }
    Some(bytes.into_boxed_slice())
}

/// Character count when `b` is whole UTF-8 characters that a JSON string takes verbatim.
fn plain_chars(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b).ok()?;
    if s.chars().any(|c| c < ' ' || c == '"' || c == '\\') {
        return None;
    }
    Some(s.chars().count() as u32)
}

/// The inverse of GPT-2's `bytes_to_unicode`, indexed by code point.
fn unicode_to_byte() -> Vec<Option<u8>> {
    let mut table = vec![None; 512];
    let mut extra = 0usize;
    for b in 0..=255u8 {
        let visible = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if visible {
            b as usize
        } else {
            extra += 1;
            255 + extra
        };
        table[c] = Some(b);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = unicode_to_byte();
        assert_eq!(t['Ġ' as usize], Some(b' '));
        assert_eq!(t['Ċ' as usize], Some(b'\n'));
        assert_eq!(t['a' as usize], Some(b'a'));
        assert_eq!(t[0x100], Some(0));
        assert_eq!(t.iter().flatten().count(), 256);
    }

    #[test]
    fn plain_tokens_exclude_quotes_escapes_and_partial_utf8() {
        assert_eq!(plain_chars("Ġnäme".as_bytes()), Some(5));
        assert_eq!(plain_chars(b"a\""), None);
        assert_eq!(plain_chars(b"\\n"), None);
        assert_eq!(plain_chars(&[0xE4, 0xB8]), None);
        assert_eq!(plain_chars(b"\n"), None);
    }
}
