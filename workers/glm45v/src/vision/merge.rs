//! Where vision meets the decoder (spec §2.1 step 3, §2.4): 3-D M-RoPE positions of a mixed
//! text/image prompt (`get_rope_index`), the hand-off of the tower's rows from ONNX Runtime to
//! candle, and the splice of those rows into the token embeddings at the `<|image|>` positions.

use candle_core::{DType, Device, Tensor};

use crate::decoder::mrope::Positions3;
use crate::error::{Error, Result};
use crate::processor::GridThw;
use crate::vision::onnx::VisionEmbeddings;

/// transformers' `get_rope_index` for one sequence. `types` are the `mm_token_type_ids`
/// (0 text, 1 image, 2 video frame); each maximal image run consumes the next image grid, each
/// video-frame run the next temporal patch of the videos (grids split into (1, H, W) frames).
/// Text runs count on from the current position on all three axes; an image run of grid
/// (1, H, W) gives token (r, c) of its H/m × W/m merged grid the position (p, p + r, p + c) and
/// advances p by max(H, W) / m.
pub fn rope_index(
    types: &[u8],
    image_grids: &[GridThw],
    video_grids: &[GridThw],
    merge: usize,
) -> Result<Positions3> {
    let frames: Vec<GridThw> = video_grids
        .iter()
        .flat_map(|&[t, h, w]| std::iter::repeat_n([1, h, w], t))
        .collect();
    let (mut images, mut videos) = (image_grids.iter(), frames.iter());
    let mut rows: [Vec<u32>; 3] = Default::default();
    let mut cur: u64 = 0;
    let mut i = 0;
    while i < types.len() {
        let kind = types[i];
        let run = types[i..].iter().take_while(|&&t| t == kind).count();
        match kind {
            0 => {
                for k in 0..run as u64 {
                    let p = to_u32(cur + k)?;
                    rows.iter_mut().for_each(|r| r.push(p));
                }
                cur += run as u64;
            }
            1 | 2 => {
                let grid = if kind == 1 {
                    images.next()
                } else {
                    videos.next()
                }
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "more {} runs in the prompt than grids given",
                        if kind == 1 { "image" } else { "video frame" }
                    ))
                })?;
                let (gh, gw) = (grid[1] / merge.max(1), grid[2] / merge.max(1));
                if gh * gw != run {
                    return Err(Error::InvalidInput(format!(
                        "an image run of {run} tokens does not match grid {grid:?} ({} tokens)",
                        gh * gw
                    )));
                }
                for r in 0..gh as u64 {
                    for c in 0..gw as u64 {
                        rows[0].push(to_u32(cur)?);
                        rows[1].push(to_u32(cur + r)?);
                        rows[2].push(to_u32(cur + c)?);
                    }
                }
                cur += gh.max(gw) as u64;
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "unknown mm token type {other}"
                )))
            }
        }
        i += run;
    }
    if images.next().is_some() || videos.next().is_some() {
        return Err(Error::InvalidInput(
            "more grids given than image runs in the prompt".into(),
        ));
    }
    Ok(Positions3 { rows })
}

fn to_u32(v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidInput(format!("position {v} overflows u32")))
}

/// The ort → candle hand-off: the tower's host rows become one [rows, hidden] tensor on
/// `device` in `dtype`. Cost: one host copy of `rows·hidden·4` bytes into candle's storage (for
/// GLM-4.5V a 1024×1024 page is 1,369 × 4096 × 4 B ≈ 22 MB), plus the upload when `device` is a
/// GPU and the cast when `dtype` is not f32.
pub fn vision_rows_to_tensor(
    emb: &VisionEmbeddings,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let n = emb.len();
    if emb.rows.len() != n * emb.hidden {
        return Err(Error::InvalidInput(format!(
            "{} vision values for {n} rows of {}",
            emb.rows.len(),
            emb.hidden
        )));
    }
    let t = Tensor::from_slice(&emb.rows, (n, emb.hidden), &Device::Cpu)?;
    Ok(t.to_device(device)?.to_dtype(dtype)?)
}

/// Places `vision` rows [M, H] at the positions of `image_token` in `ids`, in order, replacing
/// the rows of `text_embeds` [1, T, H] (transformers' `masked_scatter`). M must equal the
/// number of image tokens.
pub fn splice_embeddings(
    text_embeds: &Tensor,
    ids: &[u32],
    image_token: u32,
    vision: &Tensor,
) -> Result<Tensor> {
    let (b, t, h) = text_embeds.dims3()?;
    let (m, vh) = vision.dims2()?;
    if b != 1 || t != ids.len() || vh != h {
        return Err(Error::InvalidInput(format!(
            "cannot splice {:?} vision rows into embeddings {:?} of {} ids",
            vision.dims(),
            text_embeds.dims(),
            ids.len()
        )));
    }
    let slots = ids.iter().filter(|&&id| id == image_token).count();
    if slots != m {
        return Err(Error::InvalidInput(format!(
            "the prompt has {slots} image tokens but the vision tower gave {m} rows"
        )));
    }
    if m == 0 {
        return Ok(text_embeds.clone());
    }
    let mut next_vision = t as u32;
    let source: Vec<u32> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            if id == image_token {
                next_vision += 1;
                next_vision - 1
            } else {
                i as u32
            }
        })
        .collect();
    let vision = vision.to_dtype(text_embeds.dtype())?;
    let all = Tensor::cat(&[&text_embeds.squeeze(0)?, &vision], 0)?;
    let index = Tensor::new(source.as_slice(), text_embeds.device())?;
    Ok(all.index_select(&index, 0)?.unsqueeze(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_text_image_text() {
        // 2 text, one 4x6 grid (2x3 tokens), 2 text.
        let types = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0];
        let p = rope_index(&types, &[[1, 4, 6]], &[], 2).expect("positions");
        assert_eq!(p.rows[0], vec![0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(p.rows[1], vec![0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(p.rows[2], vec![0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
        assert_eq!(p.rope_delta(), 7 - 10);
        assert!(rope_index(&types, &[], &[], 2).is_err());
        assert!(rope_index(&types, &[[1, 4, 4]], &[], 2).is_err());
    }

    #[test]
    fn video_frames_are_separate_runs() {
        // Two temporal patches of a 2x2 grid (1 token each), separated by text.
        let types = [0, 2, 0, 0, 2, 0];
        let p = rope_index(&types, &[], &[[2, 2, 2]], 2).expect("positions");
        assert_eq!(p.rows[0], vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn splice_replaces_image_rows_in_order() -> Result<()> {
        let dev = Device::Cpu;
        let text = Tensor::arange(0f32, 8.0, &dev)?.reshape((1, 4, 2))?;
        let vision = Tensor::new(&[[10f32, 11.], [12., 13.]], &dev)?;
        let out = splice_embeddings(&text, &[5, 9, 9, 5], 9, &vision)?;
        assert_eq!(
            out.squeeze(0)?.to_vec2::<f32>()?,
            vec![vec![0., 1.], vec![10., 11.], vec![12., 13.], vec![6., 7.]]
        );
        assert!(splice_embeddings(&text, &[5, 9, 5, 5], 9, &vision).is_err());
        Ok(())
    }
}
