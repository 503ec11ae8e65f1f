//! SVTR/CTC text recognition over batches of line crops.
//!
//! Crops are resized to height 48 (and to 3/4 of their proportional width, see
//! [`RecParams::width_scale`]), sorted by aspect ratio and packed into batches padded to the
//! widest member (so little padding is wasted), then decoded with greedy CTC. With several
//! sessions in the pool, batches are spread over threads.
//!
//! Cost is linear in the total tensor width (≈ 35 µs per column on one core for PP-OCRv6 small,
//! a sixth of it in the 18710-class output layer), so small batches lose nothing; batches larger
//! than ~2k columns run slower per column (the `steps × 18710` output no longer fits in cache).

use crate::ctc::Charset;
use crate::error::OcrError;
use crate::imgops::{resize, write_chw_bgr, Normalize};
use crate::runtime::OrtModel;
use image::RgbImage;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Input height of the recogniser.
pub const REC_HEIGHT: usize = 48;

/// Batching limits and input geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecParams {
    /// Horizontal scale applied on top of the height-48 resize. PaddleOCR trains at 48×320 and
    /// squeezes every wider sample into 320 columns, so moderately narrowed lines are in the
    /// training distribution. Measured on the Folio corpus (9 printed pages) and a dense A4
    /// page: 0.7–0.75 reads as well as 1.0 (word F1 0.948 vs 0.938, dense page error-free),
    /// 0.5 loses spaces; 0.75 keeps a margin and cuts recognition time by a quarter.
    pub width_scale: f32,
    /// Most crops in one batch.
    pub max_batch: usize,
    /// Most padded pixel columns in one batch (`items × width`); bounds the output tensor, whose
    /// size is about `columns / 8 × 18710` floats.
    pub width_budget: usize,
    /// Narrowest batch tensor (PaddleOCR trains at 320 and pads shorter crops to it).
    pub min_width: usize,
    /// Widest crop after resizing; longer lines are squeezed to it.
    pub max_width: usize,
}

impl Default for RecParams {
    fn default() -> Self {
        RecParams {
            width_scale: 0.75,
            max_batch: 16,
            width_budget: 2048,
            min_width: 320,
            max_width: 4800,
        }
    }
}

/// One batch: crop indices (ascending aspect ratio) and the padded tensor width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub items: Vec<usize>,
    pub width: usize,
}

/// Tensor width of a crop of aspect ratio `ratio` (w/h) at height 48.
pub fn crop_width(ratio: f32, p: &RecParams) -> usize {
    let w = (REC_HEIGHT as f32 * ratio.max(0.0) * p.width_scale).ceil();
    if w.is_finite() {
        (w as usize).clamp(1, p.max_width)
    } else {
        p.max_width
    }
}

/// Groups crops (given by aspect ratio) into batches of similar width.
pub fn plan_batches(ratios: &[f32], p: &RecParams) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..ratios.len()).collect();
    order.sort_by(|&a, &b| ratios[a].total_cmp(&ratios[b]));
    let mut batches = Vec::new();
    let mut cur = Batch {
        items: Vec::new(),
        width: 0,
    };
    for i in order {
        let w = crop_width(ratios[i], p).max(p.min_width);
        let fits = cur.items.len() < p.max_batch.max(1)
            && (cur.items.len() + 1) * w.max(cur.width) <= p.width_budget;
        if !cur.items.is_empty() && !fits {
            batches.push(std::mem::replace(
                &mut cur,
                Batch {
                    items: Vec::new(),
                    width: 0,
                },
            ));
        }
        cur.width = cur.width.max(w);
        cur.items.push(i);
    }
    if !cur.items.is_empty() {
        batches.push(cur);
    }
    batches
}

pub(crate) struct Recognizer {
    sessions: Vec<OrtModel>,
    charset: Charset,
    params: RecParams,
}

impl Recognizer {
    /// `sessions` are interchangeable copies of the recogniser (one per worker thread).
    pub fn new(sessions: Vec<OrtModel>) -> Result<Self, OcrError> {
        let first = sessions
            .first()
            .ok_or_else(|| OcrError::Config("no recogniser session".into()))?;
        let list = first
            .metadata("character")?
            .ok_or_else(|| OcrError::model(first.name(), "metadata key `character` missing"))?;
        let charset = Charset::from_metadata(&list);
        let rec = Recognizer {
            sessions,
            charset,
            params: RecParams::default(),
        };
        // Warm every session up and check that the alphabet matches the output width.
        let probe = RgbImage::from_pixel(96, 48, image::Rgb([255, 255, 255]));
        let batch = Batch {
            items: vec![0],
            width: rec.params.min_width,
        };
        for worker in 0..rec.sessions.len() {
            rec.run_batch(worker, &[&probe], &batch)?;
        }
        Ok(rec)
    }

    /// Text and confidence for each crop, in input order.
    pub fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<(String, f32)>, OcrError> {
        let ratios: Vec<f32> = crops
            .iter()
            .map(|c| c.width() as f32 / c.height().max(1) as f32)
            .collect();
        let batches = plan_batches(&ratios, &self.params);
        let refs: Vec<&RgbImage> = crops.iter().collect();
        let results: Mutex<Vec<(String, f32)>> =
            Mutex::new(vec![(String::new(), 0.0); crops.len()]);
        let next = AtomicUsize::new(0);
        let work = |worker: usize| -> Result<(), OcrError> {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(b) else {
                    return Ok(());
                };
                let items: Vec<&RgbImage> = batch.items.iter().map(|&i| refs[i]).collect();
                let decoded = self.run_batch(worker, &items, batch)?;
                let mut res = crate::runtime::lock_ignoring_poison(&results);
                for (&i, d) in batch.items.iter().zip(decoded) {
                    res[i] = d;
                }
            }
        };
        let workers = self.sessions.len().min(batches.len()).max(1);
        if workers == 1 {
            work(0)?;
        } else {
            std::thread::scope(|s| -> Result<(), OcrError> {
                let handles: Vec<_> = (0..workers).map(|w| s.spawn(move || work(w))).collect();
                for h in handles {
                    h.join()
                        .map_err(|_| OcrError::Config("recognition worker panicked".into()))??;
                }
                Ok(())
            })?;
        }
        Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn run_batch(
        &self,
        worker: usize,
        items: &[&RgbImage],
        batch: &Batch,
    ) -> Result<Vec<(String, f32)>, OcrError> {
        let model = &self.sessions[worker.min(self.sessions.len() - 1)];
        let (n, w, h) = (items.len(), batch.width, REC_HEIGHT);
        let plane = w * h;
        let mut input = vec![0f32; n * 3 * plane];
        for (k, img) in items.iter().enumerate() {
            let ratio = img.width() as f32 / img.height().max(1) as f32;
            let rw = crop_width(ratio, &self.params).min(w);
            let resized = resize(img, rw as u32, h as u32);
            write_chw_bgr(
                &resized,
                Normalize::HALF,
                &mut input[k * 3 * plane..(k + 1) * 3 * plane],
                w,
                h,
            );
        }
        let charset = &self.charset;
        model.run([n, 3, h, w], input, |outs| {
            let out = outs
                .first()
                .ok_or_else(|| OcrError::inference(model.name(), "no output"))?;
            let (b, steps, classes) = match out.shape.as_slice() {
                [b, t, c] => (*b, *t, *c),
                other => {
                    return Err(OcrError::inference(
                        model.name(),
                        format!("unexpected output shape {other:?}"),
                    ))
                }
            };
            if classes != charset.len() {
                return Err(OcrError::model(
                    model.name(),
                    format!(
                        "{classes} output classes but the alphabet has {} (with blank and space)",
                        charset.len()
                    ),
                ));
            }
            if steps == 0 {
                return Ok(vec![(String::new(), 0.0); n]);
            }
            if b < n || out.data.len() < n * steps * classes {
                return Err(OcrError::inference(
                    model.name(),
                    format!("output {:?} is short for {n} crops", out.shape),
                ));
            }
            Ok(out
                .data
                .chunks_exact(steps * classes)
                .take(n)
                .map(|item| charset.decode(item, steps, classes))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_group_similar_ratios_and_respect_limits() {
        let p = RecParams {
            width_scale: 1.0,
            max_batch: 2,
            width_budget: 10_000,
            min_width: 320,
            max_width: 4800,
        };
        // ratios 30, 1, 2, 29 → sorted 1, 2, 29, 30
        let b = plan_batches(&[30.0, 1.0, 2.0, 29.0], &p);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            Batch {
                items: vec![1, 2],
                width: 320
            }
        );
        assert_eq!(b[1].items, vec![3, 0]);
        assert_eq!(b[1].width, 1440);
    }

    #[test]
    fn width_budget_splits_wide_batches() {
        let p = RecParams {
            width_scale: 1.0,
            max_batch: 16,
            width_budget: 3000,
            min_width: 320,
            max_width: 4800,
        };
        let b = plan_batches(&[30.0; 5], &p);
        // 1440 px each: two fit in 3000.
        assert_eq!(
            b.iter().map(|b| b.items.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        // A crop wider than the budget still gets a batch of its own.
        let b = plan_batches(&[100.0], &p);
        assert_eq!(
            b,
            vec![Batch {
                items: vec![0],
                width: 4800
            }]
        );
        assert!(plan_batches(&[], &p).is_empty());
    }

    #[test]
    fn crop_width_is_bounded() {
        let p = RecParams::default();
        assert_eq!(crop_width(2.0, &p), 72);
        assert_eq!(crop_width(f32::INFINITY, &p), p.max_width);
        assert_eq!(crop_width(0.0, &p), 1);
    }
}
