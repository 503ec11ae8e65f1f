//! Prompt expansion for images and videos (spec §3.6), as transformers' `Glm4vProcessor` does it:
//! one left-to-right pass over the rendered prompt text replacing each `<|image|>` with as many
//! copies as the image has LLM tokens, and each `<|video|>` with one
//! `<|begin_of_image|><|image|>…<|end_of_image|>{seconds}` group per temporal patch. Then
//! `mm_token_type_ids` (0 text, 1 image, 2 image inside a video span) from the ids.

use crate::chat::tokenizer::SpecialTokens;
use crate::error::{Error, Result};

/// Placeholder strings of GLM-4.5V's tokenizer.
pub const IMAGE_TOKEN: &str = "<|image|>";
pub const VIDEO_TOKEN: &str = "<|video|>";
pub const IMAGE_START: &str = "<|begin_of_image|>";
pub const IMAGE_END: &str = "<|end_of_image|>";

/// What a `<|video|>` placeholder expands to.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPrompt {
    /// LLM tokens of one temporal patch (grid_h · grid_w / merge²).
    pub tokens_per_frame: usize,
    /// Timestamp in seconds of the first frame of each temporal patch.
    pub timestamps: Vec<f64>,
}

/// Expands the placeholders of `text`; the counts must match the media given, in order.
pub fn expand_placeholders(
    text: &str,
    image_tokens: &[usize],
    videos: &[VideoPrompt],
) -> Result<String> {
    let mut out = String::with_capacity(text.len() + image_tokens.iter().sum::<usize>() * 9);
    let (mut images, mut vids) = (image_tokens.iter(), videos.iter());
    let mut rest = text;
    loop {
        let next_image = rest.find(IMAGE_TOKEN);
        let next_video = rest.find(VIDEO_TOKEN);
        let (at, is_image) = match (next_image, next_video) {
            (Some(i), Some(v)) => (i.min(v), i < v),
            (Some(i), None) => (i, true),
            (None, Some(v)) => (v, false),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        if is_image {
            let n = images
                .next()
                .ok_or_else(|| count_error(text, image_tokens.len(), videos.len()))?;
            out.push_str(&IMAGE_TOKEN.repeat(*n));
            rest = &rest[at + IMAGE_TOKEN.len()..];
        } else {
            let v = vids
                .next()
                .ok_or_else(|| count_error(text, image_tokens.len(), videos.len()))?;
            for ts in &v.timestamps {
                out.push_str(IMAGE_START);
                out.push_str(&IMAGE_TOKEN.repeat(v.tokens_per_frame));
                out.push_str(IMAGE_END);
                // Python's `str(int(ts))`: truncation toward zero.
                out.push_str(&format!("{}", ts.trunc() as i64));
            }
            rest = &rest[at + VIDEO_TOKEN.len()..];
        }
    }
    out.push_str(rest);
    if images.next().is_some() || vids.next().is_some() {
        return Err(count_error(text, image_tokens.len(), videos.len()));
    }
    Ok(out)
}

fn count_error(text: &str, images: usize, videos: usize) -> Error {
    Error::InvalidInput(format!(
        "the prompt has {} {IMAGE_TOKEN} and {} {VIDEO_TOKEN} placeholders but {images} images and {videos} videos were given",
        text.matches(IMAGE_TOKEN).count(),
        text.matches(VIDEO_TOKEN).count()
    ))
}

/// Token type per id: 1 = image token, 2 = image token inside a video span, 0 = text.
pub fn mm_token_type_ids(ids: &[u32], special: &SpecialTokens) -> Vec<u8> {
    let mut depth = 0i64;
    ids.iter()
        .map(|&id| {
            if Some(id) == special.video_start {
                depth += 1;
            } else if Some(id) == special.video_end {
                depth -= 1;
            }
            if id != special.image {
                0
            } else if depth > 0 {
                2
            } else {
                1
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_videos_expand_in_order() {
        let text = "a<|begin_of_image|><|image|><|end_of_image|>b<|begin_of_video|><|video|><|end_of_video|><|image|>";
        let video = VideoPrompt {
            tokens_per_frame: 2,
            timestamps: vec![0.0, 1.5],
        };
        let got = expand_placeholders(text, &[3, 1], &[video]).expect("expands");
        assert_eq!(
            got,
            "a<|begin_of_image|><|image|><|image|><|image|><|end_of_image|>b<|begin_of_video|>\
             <|begin_of_image|><|image|><|image|><|end_of_image|>0\
             <|begin_of_image|><|image|><|image|><|end_of_image|>1<|end_of_video|><|image|>"
        );
    }

    #[test]
    fn count_mismatches_are_errors() {
        assert!(expand_placeholders("<|image|>", &[], &[]).is_err());
        assert_eq!(
            expand_placeholders("text", &[], &[]).expect("plain"),
            "text"
        );
        assert!(expand_placeholders("<|image|>", &[1, 2], &[]).is_err());
        assert!(expand_placeholders("no placeholder", &[1], &[]).is_err());
    }
}
