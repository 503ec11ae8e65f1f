//! SLANet (`en_ppstructure_mobile_v2_SLANet.onnx`): table image → structure tokens with cell boxes.
//!
//! Input: the crop resized so its long side is 488, ImageNet-normalised (BGR), zero-padded to
//! 488×488. Outputs: per decoding step a box `[x0, y0, x1, y1]` normalised to the crop, and
//! probabilities over the vocabulary `sos + tokens + eos`, where the metadata token list gets
//! `<td></td>` appended and `<td>` removed (PaddleOCR's "merged no-span" vocabulary).

use crate::error::OcrError;
use crate::imgops::{resize_sampled, write_chw_bgr, Normalize};
use crate::runtime::OrtModel;
use image::RgbImage;

const MAX_LEN: usize = 488;

/// A structure token and, for cell-opening tokens, the cell box in crop pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct StructToken {
    pub token: String,
    pub bbox: Option<[f32; 4]>,
}

/// The decoding vocabulary built from the metadata token list.
pub fn vocabulary(metadata: &str) -> Vec<String> {
    let mut tokens: Vec<String> = metadata
        .split('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s).to_string())
        .collect();
    if !tokens.iter().any(|t| t == "<td></td>") {
        tokens.push("<td></td>".to_string());
    }
    tokens.retain(|t| t != "<td>");
    let mut vocab = Vec::with_capacity(tokens.len() + 2);
    vocab.push("sos".to_string());
    vocab.extend(tokens);
    vocab.push("eos".to_string());
    vocab
}

/// Greedy decoding of `steps × vocab` probabilities and `steps × 4` boxes: stop at `eos`
/// (after the first step), skip `sos`/`eos`, attach boxes (scaled to `crop_w × crop_h`) to
/// cell-opening tokens.
pub fn decode_structure(
    probs: &[f32],
    locs: &[f32],
    steps: usize,
    vocab: &[String],
    crop_w: f32,
    crop_h: f32,
) -> Vec<StructToken> {
    let n = vocab.len();
    let (sos, eos) = (0, n.saturating_sub(1));
    let mut out = Vec::new();
    for t in 0..steps {
        let Some(row) = probs.get(t * n..(t + 1) * n) else {
            break;
        };
        let best = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, &v)| if v > a.1 { (i, v) } else { a },
            )
            .0;
        if t > 0 && best == eos {
            break;
        }
        if best == sos || best == eos {
            continue;
        }
        let token = vocab[best].clone();
        let bbox = if matches!(token.as_str(), "<td>" | "<td" | "<td></td>") {
            locs.get(t * 4..t * 4 + 4)
                .map(|b| [b[0] * crop_w, b[1] * crop_h, b[2] * crop_w, b[3] * crop_h])
        } else {
            None
        };
        out.push(StructToken { token, bbox });
    }
    out
}

pub(crate) struct TableStructurer {
    model: OrtModel,
    vocab: Vec<String>,
}

impl TableStructurer {
    pub fn new(model: OrtModel) -> Result<Self, OcrError> {
        let meta = model.metadata("character")?.ok_or_else(|| {
            OcrError::model(
                model.name(),
                "metadata key `character` (structure tokens) missing",
            )
        })?;
        let vocab = vocabulary(&meta);
        Ok(TableStructurer { model, vocab })
    }

    /// Structure tokens of the table in `crop`, boxes in crop pixels.
    pub fn structure(&self, crop: &RgbImage) -> Result<Vec<StructToken>, OcrError> {
        let (w, h) = (crop.width(), crop.height());
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let ratio = MAX_LEN as f32 / w.max(h) as f32;
        let rw = ((w as f32 * ratio) as u32).clamp(1, MAX_LEN as u32);
        let rh = ((h as f32 * ratio) as u32).clamp(1, MAX_LEN as u32);
        let resized = resize_sampled(crop, rw, rh);
        let mut input = vec![0f32; 3 * MAX_LEN * MAX_LEN];
        write_chw_bgr(&resized, Normalize::IMAGENET, &mut input, MAX_LEN, MAX_LEN);
        let vocab = &self.vocab;
        let name = self.model.name();
        self.model.run([1, 3, MAX_LEN, MAX_LEN], input, |outs| {
            let locs = outs.iter().find(|o| o.shape.len() == 3 && o.shape[2] == 4);
            let probs = outs
                .iter()
                .find(|o| o.shape.len() == 3 && o.shape[2] == vocab.len());
            let (Some(locs), Some(probs)) = (locs, probs) else {
                let shapes: Vec<_> = outs.iter().map(|o| o.shape.clone()).collect();
                return Err(OcrError::model(
                    name,
                    format!(
                        "outputs {shapes:?} do not match a vocabulary of {} tokens",
                        vocab.len()
                    ),
                ));
            };
            let steps = probs.shape[1];
            Ok(decode_structure(
                probs.data, locs.data, steps, vocab, w as f32, h as f32,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_merges_td() {
        let v = vocabulary("<thead>\n<tr>\n<td>\n</td>\n<td\n>");
        assert_eq!(
            v,
            vec![
                "sos",
                "<thead>",
                "<tr>",
                "</td>",
                "<td",
                ">",
                "<td></td>",
                "eos"
            ]
        );
    }

    #[test]
    fn decoding_stops_at_eos_and_boxes_cells() {
        let vocab = vocabulary("<tr>\n</tr>\n<td>\n</td>");
        // vocab: sos, <tr>, </tr>, </td>, <td></td>, eos
        let n = vocab.len();
        let seq = [0usize, 1, 4, 4, 2, 5, 1];
        let mut probs = vec![0f32; seq.len() * n];
        let mut locs = vec![0f32; seq.len() * 4];
        for (t, &c) in seq.iter().enumerate() {
            probs[t * n + c] = 1.0;
            locs[t * 4..t * 4 + 4].copy_from_slice(&[0.1 * t as f32, 0.0, 0.5, 1.0]);
        }
        let toks = decode_structure(&probs, &locs, seq.len(), &vocab, 100.0, 20.0);
        let names: Vec<&str> = toks.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(names, vec!["<tr>", "<td></td>", "<td></td>", "</tr>"]);
        assert_eq!(toks[0].bbox, None);
        let b = toks[1].bbox.expect("cell box");
        assert!(
            (b[0] - 20.0).abs() < 1e-4 && (b[2] - 50.0).abs() < 1e-4 && (b[3] - 20.0).abs() < 1e-4
        );
    }
}
