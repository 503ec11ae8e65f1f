//! Layout regions with `layout_cdla.onnx` (PicoDet, 10 CDLA classes, input 1×3×800×608).
//!
//! The network has four heads (strides 8, 16, 32, 64). Each anchor point has per-class scores and,
//! per box side, a distribution over 8 distance bins (GFL): the expected bin × stride is the
//! distance from the anchor centre to that side. Candidates above the score threshold go through
//! per-class hard NMS, then boxes of different classes that almost coincide keep only the best.

use crate::error::OcrError;
use crate::imgops::{resize_sampled, write_chw_bgr, Normalize};
use crate::runtime::{OrtModel, OutputView};
use folio_schemas::{BBox, BlockKind};
use image::RgbImage;

const IN_H: usize = 800;
const IN_W: usize = 608;
const STRIDES: [usize; 4] = [8, 16, 32, 64];

/// A CDLA region class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutLabel {
    Text,
    Title,
    Figure,
    FigureCaption,
    Table,
    TableCaption,
    Header,
    Footer,
    Reference,
    Equation,
}

impl LayoutLabel {
    /// From the class name in the model metadata.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim() {
            "text" => LayoutLabel::Text,
            "title" => LayoutLabel::Title,
            "figure" => LayoutLabel::Figure,
            "figure_caption" => LayoutLabel::FigureCaption,
            "table" => LayoutLabel::Table,
            "table_caption" => LayoutLabel::TableCaption,
            "header" => LayoutLabel::Header,
            "footer" => LayoutLabel::Footer,
            "reference" => LayoutLabel::Reference,
            "equation" => LayoutLabel::Equation,
            _ => return None,
        })
    }

    /// The block kind a region of this class produces.
    pub fn block_kind(self) -> BlockKind {
        match self {
            LayoutLabel::Text => BlockKind::Text,
            LayoutLabel::Title => BlockKind::Title,
            LayoutLabel::Figure => BlockKind::Figure,
            LayoutLabel::FigureCaption | LayoutLabel::TableCaption => BlockKind::Caption,
            LayoutLabel::Table => BlockKind::Table,
            LayoutLabel::Header => BlockKind::Header,
            LayoutLabel::Footer => BlockKind::Footer,
            LayoutLabel::Reference => BlockKind::Reference,
            LayoutLabel::Equation => BlockKind::Formula,
        }
    }
}

/// One detected region in page pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayoutRegion {
    pub label: LayoutLabel,
    pub score: f32,
    pub bbox: BBox,
}

/// Decoding thresholds (RapidLayout defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayoutParams {
    pub score_thresh: f32,
    pub iou_thresh: f32,
    /// Highest-scoring candidates per class considered by NMS.
    pub candidates: usize,
    /// Boxes kept per class.
    pub keep: usize,
    /// Regions of different classes overlapping more than this IoU: the weaker one is dropped.
    pub cross_class_iou: f32,
}

impl Default for LayoutParams {
    fn default() -> Self {
        LayoutParams {
            score_thresh: 0.5,
            iou_thresh: 0.5,
            candidates: 200,
            keep: 100,
            cross_class_iou: 0.8,
        }
    }
}

pub(crate) struct LayoutDetector {
    model: OrtModel,
    labels: Vec<LayoutLabel>,
    params: LayoutParams,
}

impl LayoutDetector {
    pub fn new(model: OrtModel) -> Result<Self, OcrError> {
        let names = model.metadata("character")?.ok_or_else(|| {
            OcrError::model(
                model.name(),
                "metadata key `character` (class names) missing",
            )
        })?;
        let labels = names
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                LayoutLabel::from_name(l)
                    .ok_or_else(|| OcrError::model(model.name(), format!("unknown class `{l}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if model.output_count() != 2 * STRIDES.len() {
            return Err(OcrError::model(
                model.name(),
                format!("expected 8 outputs, found {}", model.output_count()),
            ));
        }
        let layout = LayoutDetector {
            model,
            labels,
            params: LayoutParams::default(),
        };
        // The input size is fixed: one run now makes the first page as fast as the rest.
        layout.detect(&RgbImage::from_pixel(
            IN_W as u32,
            IN_H as u32,
            image::Rgb([255, 255, 255]),
        ))?;
        Ok(layout)
    }

    /// Regions of `img`, best first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<LayoutRegion>, OcrError> {
        if img.width() == 0 || img.height() == 0 {
            return Ok(Vec::new());
        }
        let resized = resize_sampled(img, IN_W as u32, IN_H as u32);
        let mut input = vec![0f32; 3 * IN_W * IN_H];
        write_chw_bgr(&resized, Normalize::IMAGENET, &mut input, IN_W, IN_H);
        let (labels, params) = (&self.labels, self.params);
        let (sx, sy) = (
            img.width() as f32 / IN_W as f32,
            img.height() as f32 / IN_H as f32,
        );
        self.model.run([1, 3, IN_H, IN_W], input, |outs| {
            let heads = pair_heads(outs, labels.len())
                .map_err(|m| OcrError::inference(self.model.name(), m))?;
            let mut regions = decode_picodet(&heads, labels, &params);
            for r in &mut regions {
                r.bbox = BBox::new(
                    r.bbox.x0() * sx,
                    r.bbox.y0() * sy,
                    r.bbox.x1() * sx,
                    r.bbox.y1() * sy,
                );
            }
            Ok(regions)
        })
    }
}

/// One head: anchors of one stride with `classes` scores and `4 × bins` distance logits each.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub stride: usize,
    pub scores: &'a [f32],
    pub dists: &'a [f32],
    pub bins: usize,
}

/// Matches score and box outputs by anchor count and orders them by stride.
fn pair_heads<'a>(outs: &'a [OutputView<'a>], classes: usize) -> Result<Vec<Head<'a>>, String> {
    let mut heads = Vec::new();
    for &stride in &STRIDES {
        let anchors = IN_H.div_ceil(stride) * IN_W.div_ceil(stride);
        let find = |last: &dyn Fn(usize) -> bool| {
            outs.iter()
                .find(|o| o.shape.len() == 3 && o.shape[1] == anchors && last(o.shape[2]))
        };
        let scores =
            find(&|d| d == classes).ok_or(format!("no score head with {anchors} anchors"))?;
        let dists = find(&|d| d != classes && d % 4 == 0)
            .ok_or(format!("no box head with {anchors} anchors"))?;
        let bins = dists.shape[2] / 4;
        if scores.data.len() < anchors * classes || dists.data.len() < anchors * 4 * bins {
            return Err("head output shorter than its shape".into());
        }
        heads.push(Head {
            stride,
            scores: scores.data,
            dists: dists.data,
            bins,
        });
    }
    Ok(heads)
}

/// Decodes the heads into regions in network-input pixels (800×608), after NMS.
pub fn decode_picodet(
    heads: &[Head<'_>],
    labels: &[LayoutLabel],
    p: &LayoutParams,
) -> Vec<LayoutRegion> {
    let classes = labels.len();
    let mut cands: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for h in heads {
        let fm_w = IN_W.div_ceil(h.stride);
        if classes == 0 || h.bins == 0 {
            continue;
        }
        let anchors = (h.scores.len() / classes).min(h.dists.len() / (4 * h.bins));
        for a in 0..anchors {
            let sc = &h.scores[a * classes..(a + 1) * classes];
            if !sc.iter().any(|&s| s > p.score_thresh) {
                continue;
            }
            let cx = ((a % fm_w) as f32 + 0.5) * h.stride as f32;
            let cy = ((a / fm_w) as f32 + 0.5) * h.stride as f32;
            let d: [f32; 4] = std::array::from_fn(|side| {
                let off = (a * 4 + side) * h.bins;
                expected_bin(&h.dists[off..off + h.bins]) * h.stride as f32
            });
            let b = [
                (cx - d[0]).clamp(0.0, IN_W as f32),
                (cy - d[1]).clamp(0.0, IN_H as f32),
                (cx + d[2]).clamp(0.0, IN_W as f32),
                (cy + d[3]).clamp(0.0, IN_H as f32),
            ];
            for (c, &s) in sc.iter().enumerate() {
                if s > p.score_thresh {
                    cands.push((c, s, b));
                }
            }
        }
    }
    let mut kept: Vec<(usize, f32, [f32; 4])> = Vec::new();
    for c in 0..classes {
        let mut cls: Vec<(f32, [f32; 4])> = cands
            .iter()
            .filter(|k| k.0 == c)
            .map(|k| (k.1, k.2))
            .collect();
        for (s, b) in hard_nms(&mut cls, p.iou_thresh, p.candidates, p.keep) {
            kept.push((c, s, b));
        }
    }
    kept.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out: Vec<LayoutRegion> = Vec::new();
    for (c, s, b) in kept {
        if out.iter().any(|r| {
            iou(&[r.bbox.x0(), r.bbox.y0(), r.bbox.x1(), r.bbox.y1()], &b) > p.cross_class_iou
        }) {
            continue;
        }
        if b[2] - b[0] < 1.0 || b[3] - b[1] < 1.0 {
            continue;
        }
        out.push(LayoutRegion {
            label: labels[c],
            score: s,
            bbox: BBox::new(b[0], b[1], b[2], b[3]),
        });
    }
    out
}

/// Softmax expectation over distance bins: `Σ i · softmax(logits)_i`.
fn expected_bin(logits: &[f32]) -> f32 {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let (mut num, mut den) = (0f32, 0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - m).exp();
        num += i as f32 * e;
        den += e;
    }
    if den > 0.0 && den.is_finite() {
        num / den
    } else {
        0.0
    }
}

/// IoU of `[x0, y0, x1, y1]` boxes (with a small epsilon, as RapidLayout).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter + 1e-5)
}

/// Greedy NMS: best-scoring first among the top `candidates`, dropping boxes with IoU above
/// `thresh` against a kept one, at most `keep` results.
pub fn hard_nms(
    boxes: &mut [(f32, [f32; 4])],
    thresh: f32,
    candidates: usize,
    keep: usize,
) -> Vec<(f32, [f32; 4])> {
    boxes.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<(f32, [f32; 4])> = Vec::new();
    for &(s, b) in boxes.iter().take(candidates) {
        if out.len() >= keep {
            break;
        }
        if out.iter().all(|k| iou(&k.1, &b) <= thresh) {
            out.push((s, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let mut boxes = vec![
            (0.6, [0.0, 0.0, 10.0, 10.0]),
            (0.9, [1.0, 1.0, 11.0, 11.0]),
            (0.8, [50.0, 50.0, 60.0, 60.0]),
        ];
        let kept = hard_nms(&mut boxes, 0.5, 200, 100);
        assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), vec![0.9, 0.8]);
        let kept = hard_nms(&mut boxes, 0.5, 200, 1);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn iou_of_known_boxes() {
        assert!(
            (iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 50.0 / 150.0).abs() < 1e-4
        );
        assert_eq!(iou(&[0.0, 0.0, 1.0, 1.0], &[2.0, 2.0, 3.0, 3.0]), 0.0);
    }

    #[test]
    fn expected_bin_is_a_softmax_mean() {
        assert!((expected_bin(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert!((expected_bin(&[-100.0, 100.0, -100.0]) - 1.0).abs() < 1e-4);
        assert_eq!(expected_bin(&[]), 0.0);
    }

    /// Builds heads where one anchor of the stride-32 head fires for `class` with the given
    /// distances (in bins) and everything else is silent.
    fn synthetic(
        classes: usize,
        class: usize,
        anchor: usize,
        dist_bins: [usize; 4],
    ) -> Vec<(usize, Vec<f32>, Vec<f32>)> {
        STRIDES
            .iter()
            .map(|&s| {
                let n = IN_H.div_ceil(s) * IN_W.div_ceil(s);
                let mut scores = vec![0.01f32; n * classes];
                let mut dists = vec![0f32; n * 32];
                if s == 32 {
                    scores[anchor * classes + class] = 0.9;
                    for side in 0..4 {
                        dists[(anchor * 4 + side) * 8 + dist_bins[side]] = 50.0;
                    }
                }
                (s, scores, dists)
            })
            .collect()
    }

    #[test]
    fn decode_places_a_box_around_its_anchor() {
        let labels: Vec<LayoutLabel> = [
            "text",
            "title",
            "figure",
            "figure_caption",
            "table",
            "table_caption",
            "header",
            "footer",
            "reference",
            "equation",
        ]
        .iter()
        .map(|n| LayoutLabel::from_name(n).expect("label"))
        .collect();
        // Stride 32: 19 anchors per row; anchor 19*3 + 2 has centre (80, 112).
        let raw = synthetic(10, 4, 19 * 3 + 2, [1, 2, 3, 0]);
        let heads: Vec<Head<'_>> = raw
            .iter()
            .map(|(s, sc, d)| Head {
                stride: *s,
                scores: sc,
                dists: d,
                bins: 8,
            })
            .collect();
        let regions = decode_picodet(&heads, &labels, &LayoutParams::default());
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        assert_eq!(r.label, LayoutLabel::Table);
        assert_eq!(r.label.block_kind(), BlockKind::Table);
        let b = r.bbox;
        assert!(
            (b.x0() - 48.0).abs() < 0.01 && (b.y0() - 48.0).abs() < 0.01,
            "{b:?}"
        );
        assert!(
            (b.x1() - 176.0).abs() < 0.01 && (b.y1() - 112.0).abs() < 0.01,
            "{b:?}"
        );
    }

    #[test]
    fn labels_map_to_block_kinds() {
        assert_eq!(
            LayoutLabel::from_name("figure_caption").map(|l| l.block_kind()),
            Some(BlockKind::Caption)
        );
        assert_eq!(
            LayoutLabel::from_name("equation").map(|l| l.block_kind()),
            Some(BlockKind::Formula)
        );
        assert_eq!(
            LayoutLabel::from_name("reference").map(|l| l.block_kind()),
            Some(BlockKind::Reference)
        );
        assert_eq!(LayoutLabel::from_name("bogus"), None);
    }
}
