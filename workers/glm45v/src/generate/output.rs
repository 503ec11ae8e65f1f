//! Model output text → reasoning, answer and boxes (spec §4.1, §4.2).
//!
//! GLM-4.5V writes `<think>…</think>` then the answer; boxes are
//! `<|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>` in thousandths of the image width (x) and
//! height (y), with varying brackets (`[]`, `[[]]`, `()`, `<>`) and possibly several boxes in one
//! span. They are scaled to pixels with the original image size.

/// One box span found in the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxSpan {
    /// The raw text between the box tokens.
    pub raw: String,
    /// Boxes as [x1, y1, x2, y2] in 0..1000 (empty when the span held no 4 numbers).
    pub norm: Vec<[f32; 4]>,
    /// The same boxes in pixels of the image, clamped to it (when the size was given).
    pub pixels: Vec<[f32; 4]>,
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedOutput {
    /// Text inside `<think>…</think>` (None when the model did not think).
    pub reasoning: Option<String>,
    /// True when `<think>` was opened but never closed (output cut by the token budget).
    pub reasoning_truncated: bool,
    /// The answer with box tokens removed (their contents kept), trimmed.
    pub answer: String,
    /// Box spans in order of appearance.
    pub boxes: Vec<BoxSpan>,
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
/// Opens a box span (`<|begin_of_box|>[x1,y1,x2,y2]<|end_of_box|>`).
pub const BOX_OPEN: &str = "<|begin_of_box|>";
/// Closes a box span.
pub const BOX_CLOSE: &str = "<|end_of_box|>";

/// A piece of an answer: plain text, or the content of one box span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span<'a> {
    Text(&'a str),
    Box(&'a str),
}

/// `text` cut at its box spans, in order. An unclosed span runs to the end of the text; a stray
/// close token (its open lost) stays in the text.
pub fn box_spans(text: &str) -> Vec<Span<'_>> {
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(BOX_OPEN) {
        spans.push(Span::Text(&rest[..open]));
        let inner_start = open + BOX_OPEN.len();
        let (inner, next) = match rest[inner_start..].find(BOX_CLOSE) {
            Some(end) => (
                &rest[inner_start..inner_start + end],
                inner_start + end + BOX_CLOSE.len(),
            ),
            None => (&rest[inner_start..], rest.len()),
        };
        spans.push(Span::Box(inner));
        rest = &rest[next..];
    }
    spans.push(Span::Text(rest));
    spans
}

/// Splits `text` (decoded without skipping special tokens, stop token excluded).
/// `image_size` = (width, height) of the original image, for pixel boxes.
pub fn parse_output(text: &str, image_size: Option<(u32, u32)>) -> ParsedOutput {
    let mut out = ParsedOutput::default();
    let answer_part = if let Some(close) = text.find(THINK_CLOSE) {
        let before = &text[..close];
        let reasoning = before.rsplit(THINK_OPEN).next().unwrap_or(before);
        out.reasoning = Some(reasoning.trim().to_string());
        &text[close + THINK_CLOSE.len()..]
    } else if let Some(open) = text.find(THINK_OPEN) {
        out.reasoning = Some(text[open + THINK_OPEN.len()..].trim().to_string());
        out.reasoning_truncated = true;
        &text[..open]
    } else {
        text
    };
    let mut answer = String::with_capacity(answer_part.len());
    for span in box_spans(answer_part) {
        match span {
            Span::Text(text) => answer.push_str(text),
            Span::Box(inner) => {
                answer.push_str(inner);
                out.boxes.push(parse_box(inner, image_size));
            }
        }
    }
    out.answer = answer.trim().to_string();
    out
}

fn parse_box(inner: &str, image_size: Option<(u32, u32)>) -> BoxSpan {
    let numbers: Vec<f32> = inner
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<f32>().ok())
        .filter(|v| v.is_finite())
        .collect();
    let norm: Vec<[f32; 4]> = numbers
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let pixels = match image_size {
        Some((w, h)) => norm
            .iter()
            .map(|b| {
                let (w, h) = (w as f32, h as f32);
                let sx = |v: f32| (v / 1000.0 * w).clamp(0.0, w);
                let sy = |v: f32| (v / 1000.0 * h).clamp(0.0, h);
                [sx(b[0]), sy(b[1]), sx(b[2]), sy(b[3])]
            })
            .collect(),
        None => Vec::new(),
    };
    BoxSpan {
        raw: inner.to_string(),
        norm,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_reasoning_and_answer() {
        let p = parse_output("<think>Look at the total.</think>\nThe total is $12.", None);
        assert_eq!(p.reasoning.as_deref(), Some("Look at the total."));
        assert_eq!(p.answer, "The total is $12.");
        assert!(!p.reasoning_truncated);
        // The prompt may already hold `<think>`: only the close tag is generated.
        let p = parse_output("reasoning only</think>answer", None);
        assert_eq!(p.reasoning.as_deref(), Some("reasoning only"));
        assert_eq!(p.answer, "answer");
        let p = parse_output("plain", None);
        assert_eq!((p.reasoning, p.answer.as_str()), (None, "plain"));
    }

    #[test]
    fn truncated_thinking_is_flagged() {
        let p = parse_output("<think>still thinking", None);
        assert!(p.reasoning_truncated);
        assert_eq!(p.reasoning.as_deref(), Some("still thinking"));
        assert_eq!(p.answer, "");
    }

    #[test]
    fn boxes_are_scaled_to_pixels() {
        let text = "</think>The dog <|begin_of_box|>[100,200,500,1000]<|end_of_box|> and \
                    <|begin_of_box|>[[0,0,10,10],[990,990,1000,1000]]<|end_of_box|> \
                    <|begin_of_box|>(250, 250, 750, 750)<|end_of_box|> <|begin_of_box|>none<|end_of_box|>";
        let p = parse_output(text, Some((2000, 1000)));
        assert_eq!(p.boxes.len(), 4);
        assert_eq!(p.boxes[0].pixels, vec![[200.0, 200.0, 1000.0, 1000.0]]);
        assert_eq!(p.boxes[1].norm.len(), 2);
        assert_eq!(p.boxes[1].pixels[1], [1980.0, 990.0, 2000.0, 1000.0]);
        assert_eq!(p.boxes[2].norm, vec![[250.0, 250.0, 750.0, 750.0]]);
        assert!(p.boxes[3].norm.is_empty());
        assert!(p.answer.starts_with("The dog [100,200,500,1000] and"));
        assert!(!p.answer.contains("begin_of_box"));
    }

    #[test]
    fn unterminated_box_is_kept() {
        let p = parse_output("<|begin_of_box|>[1,2,3,4]", Some((1000, 1000)));
        assert_eq!(p.boxes[0].pixels, vec![[1.0, 2.0, 3.0, 4.0]]);
        assert_eq!(p.answer, "[1,2,3,4]");
    }
}
