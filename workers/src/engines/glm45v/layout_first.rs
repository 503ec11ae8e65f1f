//! Layout-first reading: the `ocr` engine's layout model (with its reading order) finds the
//! regions of a page; each region is cropped and read by GLM-4.5V with the profile of its kind
//! (tables → `table`, figures and charts → `chart`, the rest → `document`); the blocks are merged
//! in the regions' reading order with boxes in page pixels. A region GLM-4.5V cannot read keeps
//! the ocr engine's reading, with a warning.

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::profiles::{profile_for_block, Profile, ProfileKind};
use folio_schemas::{Block, BlockKind};
use image::RgbImage;

use super::run::{ReadOutcome, ReadResult, ReadTask};

/// Pixels of context kept around a region when cropping it.
const MARGIN: f32 = 4.0;
/// Regions narrower or lower than this (after the margin) are kept as the ocr engine read them.
const MIN_SIDE: u32 = 8;

/// The profile a region of `kind` is read with. CDLA's layout model has no chart class, so its
/// figures are read as charts (a figure that is not one yields an empty chart, or the ocr block).
pub fn region_profile(kind: BlockKind) -> ProfileKind {
    match kind {
        BlockKind::Figure | BlockKind::Chart => ProfileKind::Chart,
        k => profile_for_block(k),
    }
}

/// The crop of `image` under `bbox` plus a margin, and the crop's box in page pixels; `None`
/// when the region is too small to read.
pub fn crop_region(image: &RgbImage, bbox: &folio_schemas::BBox) -> Option<(RgbImage, [f32; 4])> {
    let (w, h) = image.dimensions();
    let x0 = (bbox.x0() - MARGIN).floor().clamp(0.0, w as f32) as u32;
    let y0 = (bbox.y0() - MARGIN).floor().clamp(0.0, h as f32) as u32;
    let x1 = (bbox.x1() + MARGIN).ceil().clamp(0.0, w as f32) as u32;
    let y1 = (bbox.y1() + MARGIN).ceil().clamp(0.0, h as f32) as u32;
    if x1 < x0 + MIN_SIDE || y1 < y0 + MIN_SIDE {
        return None;
    }
    let crop = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    Some((crop, [x0 as f32, y0 as f32, x1 as f32, y1 as f32]))
}

/// One read task per region that is large enough (`None` for the others), in region order.
pub fn region_tasks(
    page: u32,
    image: &RgbImage,
    regions: &[Block],
) -> Vec<Option<ReadTask<'static>>> {
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (crop, region) = crop_region(image, &r.bbox)?;
            Some(ReadTask {
                image: Cow::Owned(crop),
                region: Some(region),
                profile: Profile::new(region_profile(r.kind)),
                question: None,
                block_id_prefix: format!("p{page}-r{}-", i + 1),
            })
        })
        .collect()
}

/// What the merge produced for a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// Blocks in reading order, ids `p{page}-b{n}` from 1.
    pub blocks: Vec<Block>,
    pub warnings: Vec<String>,
    /// Ids of the profiles that produced blocks, sorted.
    pub profiles: BTreeSet<String>,
}

/// Merges the region readings (`results[i]` for `regions[i]`, `None` when it was not read) in
/// the regions' order.
pub fn merge(page: u32, regions: &[Block], results: Vec<Option<ReadResult>>) -> Merged {
    let mut merged = Merged {
        blocks: Vec::new(),
        warnings: Vec::new(),
        profiles: BTreeSet::new(),
    };
    for (region, result) in regions.iter().zip(results) {
        let Some(result) = result else {
            merged.blocks.push(region.clone());
            continue;
        };
        let label = format!("region {} ({:?})", region.id, region.kind).to_lowercase();
        match result.outcome {
            ReadOutcome::Parsed {
                page: parsed,
                profile,
            } => {
                if !result.failures.is_empty() {
                    merged.warnings.push(format!(
                        "glm45v: {label}: first answer unusable ({}); read again with {}",
                        result.failures.join("; "),
                        profile.id()
                    ));
                }
                merged.profiles.insert(profile.id());
                merged.warnings.extend(
                    parsed
                        .warnings
                        .iter()
                        .map(|w| format!("glm45v: {label}: {w}")),
                );
                let single = parsed.blocks.len() == 1;
                for mut b in parsed.blocks {
                    // The layout model knows headers, footers, captions… better than Markdown does.
                    if single && b.kind == BlockKind::Text && keeps_layout_kind(region.kind) {
                        b.kind = region.kind;
                    }
                    merged.blocks.push(b);
                }
            }
            ReadOutcome::Failed { .. } => {
                merged.warnings.push(format!(
                    "glm45v: {label}: no usable answer ({}); kept the ocr engine's reading",
                    result.failures.join("; ")
                ));
                merged.blocks.push(region.clone());
            }
        }
    }
    for (n, b) in merged.blocks.iter_mut().enumerate() {
        b.id = format!("p{page}-b{}", n + 1);
    }
    merged
}

fn keeps_layout_kind(kind: BlockKind) -> bool {
    matches!(
        kind,
        BlockKind::Title
            | BlockKind::Header
            | BlockKind::Footer
            | BlockKind::Caption
            | BlockKind::Reference
            | BlockKind::ListItem
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::glm45v::page_parse::ParsedPage;
    use crate::engines::glm45v::tests::summary;
    use folio_schemas::BBox;

    /// Blocks with text from `(id, kind, box, text)` rows.
    fn blocks(rows: &[(&str, BlockKind, [f32; 4], &str)]) -> Vec<Block> {
        rows.iter()
            .map(|&(id, kind, b, text)| Block {
                text: Some(text.into()),
                ..Block::new(id, kind, BBox::new(b[0], b[1], b[2], b[3]))
            })
            .collect()
    }

    #[test]
    fn crops_keep_a_margin_and_skip_slivers() {
        let img = RgbImage::new(100, 50);
        let (crop, region) = crop_region(&img, &BBox::new(10.0, 10.0, 30.0, 20.0)).expect("crop");
        assert_eq!(crop.dimensions(), (28, 18));
        assert_eq!(region, [6.0, 6.0, 34.0, 24.0]);
        let (_, region) = crop_region(&img, &BBox::new(90.0, 40.0, 120.0, 60.0)).expect("edge");
        assert_eq!(region, [86.0, 36.0, 100.0, 50.0]);
        assert!(crop_region(&img, &BBox::new(10.0, 10.0, 10.5, 40.0)).is_some());
        assert!(crop_region(&img, &BBox::new(99.0, 10.0, 100.0, 40.0)).is_none());
        assert_eq!(region_profile(BlockKind::Table), ProfileKind::Table);
        assert_eq!(region_profile(BlockKind::Figure), ProfileKind::Chart);
        assert_eq!(region_profile(BlockKind::Header), ProfileKind::Document);
    }

    #[test]
    fn merge_keeps_region_order_and_ocr_blocks_where_reading_failed() {
        use BlockKind::{Header, Table, Text, Title};
        let regions = blocks(&[
            ("p2-b1", Header, [0.0, 0.0, 100.0, 10.0], "ocr header"),
            ("p2-b2", Text, [0.0, 20.0, 100.0, 60.0], "ocr body"),
            ("p2-b3", Table, [0.0, 70.0, 100.0, 90.0], "ocr table"),
            ("p2-b4", Text, [0.0, 95.0, 1.0, 96.0], "sliver"),
        ]);
        let doc = Profile::new(ProfileKind::Document);
        let parsed = |blocks: Vec<Block>, warnings: Vec<String>| ReadResult {
            outcome: ReadOutcome::Parsed {
                page: ParsedPage {
                    blocks,
                    warnings,
                    reasoning: None,
                },
                profile: doc,
            },
            failures: vec![],
            timings: Default::default(),
        };
        let results = vec![
            Some(parsed(
                blocks(&[("p2-r1-b1", Text, [1.0, 1.0, 90.0, 9.0], "Header")]),
                vec![],
            )),
            Some(parsed(
                blocks(&[
                    ("p2-r2-b1", Title, [0.0, 20.0, 100.0, 30.0], "Title"),
                    ("p2-r2-b2", Text, [0.0, 30.0, 100.0, 60.0], "Body"),
                ]),
                vec!["block p2-r2-b2 has no box".into()],
            )),
            Some(ReadResult {
                outcome: ReadOutcome::Failed {
                    profile: Profile::new(ProfileKind::Table).stricter().expect("strict"),
                },
                failures: vec![
                    "table@1: malformed".into(),
                    "table-strict@1: malformed".into(),
                ],
                timings: Default::default(),
            }),
            None,
        ];
        let m = merge(2, &regions, results);
        assert_eq!(
            summary(&m.blocks),
            vec![
                ("p2-b1", BlockKind::Header, "Header"),
                ("p2-b2", BlockKind::Title, "Title"),
                ("p2-b3", BlockKind::Text, "Body"),
                ("p2-b4", BlockKind::Table, "ocr table"),
                ("p2-b5", BlockKind::Text, "sliver"),
            ]
        );
        assert_eq!(
            m.profiles.into_iter().collect::<Vec<_>>(),
            vec!["document@1"]
        );
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("region p2-b2") && m.warnings[0].contains("no box"));
        assert!(m.warnings[1].contains("p2-b3") && m.warnings[1].contains("kept the ocr"));
    }
}
