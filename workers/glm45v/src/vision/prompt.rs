//! Image (and video) prompts end to end on a loaded [`Glm45v`]: chat rendering with the
//! placeholders expanded per image, the vision tower, the splice into the token embeddings and
//! the 3-D positions — producing a [`Prompt`] that [`Glm45v::generate_text`] decodes with the
//! right rope offset.

use candle_core::Tensor;
use image::DynamicImage;

use crate::chat::{ChatMessage, ChatOptions};
use crate::error::{Error, Result};
use crate::generate::Prompt;
use crate::model::Glm45v;
use crate::processor::prompt::{expand_placeholders, mm_token_type_ids, VideoPrompt};
use crate::processor::video::ProcessedVideo;
use crate::processor::{GridThw, ProcessedImage};
use crate::vision::merge::{rope_index, splice_embeddings, vision_rows_to_tensor};
use crate::vision::onnx::{VisionEmbeddings, VisionTower};

/// Media of one prompt, already processed (prompt order within each kind).
#[derive(Debug, Clone, Copy, Default)]
pub struct Media<'a> {
    pub images: &'a [ProcessedImage],
    pub videos: &'a [ProcessedVideo],
}

impl Glm45v {
    fn merge_size(&self) -> usize {
        self.processor.config.merge_size
    }

    fn tower(&self) -> Result<&VisionTower> {
        self.vision.as_ref().ok_or_else(|| {
            Error::Vision(
                "no vision tower attached (Glm45v::attach_vision with vision.onnx)".into(),
            )
        })
    }

    /// Prompt ids of a conversation whose image/video parts correspond to `media`, in order.
    pub fn encode_with_media(
        &self,
        messages: &[ChatMessage],
        opts: ChatOptions,
        media: Media<'_>,
    ) -> Result<Vec<u32>> {
        let text = self.render(messages, opts)?;
        let merge = self.merge_size();
        let tokens: Vec<usize> = media.images.iter().map(|i| i.num_tokens(merge)).collect();
        let videos: Vec<VideoPrompt> = media.videos.iter().map(|v| v.prompt(merge)).collect();
        let expanded = expand_placeholders(&text, &tokens, &videos)?;
        self.tokenizer.encode(&expanded)
    }

    /// The decoder input of `ids` with `media`: token embeddings with the vision rows spliced in
    /// and `get_rope_index` positions.
    pub fn media_prompt(&self, ids: Vec<u32>, media: Media<'_>) -> Result<Prompt> {
        let types = mm_token_type_ids(&ids, &self.special);
        let image_grids: Vec<GridThw> = media.images.iter().map(|i| i.grid).collect();
        let video_grids: Vec<GridThw> = media.videos.iter().map(|v| v.grid).collect();
        let positions = rope_index(&types, &image_grids, &video_grids, self.merge_size())?;
        let device = self.model.device().clone();
        let embeds = self
            .model
            .embed(&Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?)?;
        if media.images.is_empty() && media.videos.is_empty() {
            return Ok(Prompt {
                ids,
                embeds: Some(embeds),
                positions: Some(positions),
            });
        }
        let tower = self.tower()?;
        let images = tower.embed(media.images)?;
        let mut video_rows = Vec::new();
        for v in media.videos {
            video_rows.extend(tower.run(&v.pixel_values, &[v.grid])?);
        }
        let ordered = order_rows(&types, &images, &video_rows)?;
        let vision = vision_rows_to_tensor(&ordered, &device, embeds.dtype())?;
        let embeds = splice_embeddings(&embeds, &ids, self.special.image, &vision)?;
        Ok(Prompt {
            ids,
            embeds: Some(embeds),
            positions: Some(positions),
        })
    }

    /// Processes `images`, renders `messages` (whose image parts they fill, in order) and builds
    /// the decoder input. Returns the processed images too (their original sizes scale boxes).
    pub fn prepare_images(
        &self,
        messages: &[ChatMessage],
        opts: ChatOptions,
        images: &[DynamicImage],
    ) -> Result<(Prompt, Vec<ProcessedImage>)> {
        let processed = self.processor.process_all(images)?;
        let media = Media {
            images: &processed,
            videos: &[],
        };
        let ids = self.encode_with_media(messages, opts, media)?;
        let prompt = self.media_prompt(ids, media)?;
        Ok((prompt, processed))
    }
}

/// Vision rows in the order their tokens occur: image rows fill type-1 tokens, video rows type-2.
fn order_rows(
    types: &[u8],
    images: &VisionEmbeddings,
    video_rows: &[f32],
) -> Result<VisionEmbeddings> {
    let h = images.hidden;
    let (mut i_rows, mut v_rows) = (images.rows.chunks_exact(h), video_rows.chunks_exact(h));
    let mut rows = Vec::with_capacity(images.rows.len() + video_rows.len());
    let mut count = 0;
    for &t in types {
        let row = match t {
            1 => i_rows.next(),
            2 => v_rows.next(),
            _ => continue,
        };
        let row = row.ok_or_else(|| {
            Error::InvalidInput(
                "the prompt has more image tokens than the vision tower gave rows".into(),
            )
        })?;
        rows.extend_from_slice(row);
        count += 1;
    }
    if i_rows.next().is_some() || v_rows.next().is_some() {
        return Err(Error::InvalidInput(
            "the vision tower gave more rows than the prompt has image tokens".into(),
        ));
    }
    Ok(VisionEmbeddings {
        rows,
        hidden: h,
        tokens_per_image: vec![count],
    })
}
