//! `<|begin_of_box|>…<|end_of_box|>` spans: taken out of the text, mapped to page pixels.
//!
//! Coordinates are thousandths of the width (x) and height (y) of the image the model saw, in
//! any bracket style (`[..]`, `[[..]]`, `(..)`, several boxes in one span). When that image was
//! a crop, the crop's page box scales and offsets them back onto the page.

use folio_glm45v::generate::output::{box_spans, Span};
use folio_schemas::BBox;

use super::PageParseInput;

pub use folio_glm45v::generate::output::{BOX_CLOSE, BOX_OPEN};

/// `text` without box spans, and the boxes (0..1000) in order. An unclosed span runs to the
/// end of the text; a span without four numbers is dropped.
pub fn extract_boxes(text: &str) -> (String, Vec<[f32; 4]>) {
    let mut out = String::with_capacity(text.len());
    let mut boxes = Vec::new();
    for span in box_spans(text) {
        match span {
            Span::Text(text) => out.push_str(text),
            Span::Box(inner) => boxes.extend(numbers_to_boxes(inner)),
        }
    }
    // A stray close token (its open lost) is dropped too.
    (out.replace(BOX_CLOSE, ""), boxes)
}

fn numbers_to_boxes(inner: &str) -> Vec<[f32; 4]> {
    let numbers: Vec<f32> = inner
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse::<f32>().ok())
        .filter(|v| v.is_finite())
        .collect();
    numbers
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// The region the model saw, in page pixels (the crop, or the whole image).
pub fn whole_region(input: &PageParseInput) -> BBox {
    match input.region {
        Some([x0, y0, x1, y1]) => BBox::new(x0, y0, x1, y1),
        None => BBox::new(
            0.0,
            0.0,
            input.image_size.0 as f32,
            input.image_size.1 as f32,
        ),
    }
}

/// One 0..1000 box in page pixels, clamped to the region; `None` when degenerate.
pub fn to_page(norm: [f32; 4], input: &PageParseInput) -> Option<BBox> {
    let r = whole_region(input);
    let n = |v: f32| v.clamp(0.0, 1000.0) / 1000.0;
    let b = BBox::new(
        r.x0() + n(norm[0]) * r.width(),
        r.y0() + n(norm[1]) * r.height(),
        r.x0() + n(norm[2]) * r.width(),
        r.y0() + n(norm[3]) * r.height(),
    );
    (b.width() > 0.0 && b.height() > 0.0).then_some(b)
}

/// The union of `norm` boxes in page pixels; `None` when there is no usable box.
pub fn union_to_page(norm: &[[f32; 4]], input: &PageParseInput) -> Option<BBox> {
    norm.iter()
        .filter_map(|b| to_page(*b, input))
        .reduce(|a, b| a.union(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::glm45v::profiles::{Profile, ProfileKind};

    fn input(profile: &Profile, region: Option<[f32; 4]>) -> PageParseInput<'_> {
        PageParseInput {
            profile,
            raw: "",
            truncated: false,
            image_size: (2000, 1000),
            region,
            block_id_prefix: "p1-",
        }
    }

    #[test]
    fn spans_are_removed_and_read_in_any_bracket_style() {
        let (text, b) = extract_boxes(
            "<|begin_of_box|>[[10,20,30,40]]<|end_of_box|>Total\n<|begin_of_box|>(1, 2, 3, 4)<|end_of_box|><|begin_of_box|>none<|end_of_box|> end<|end_of_box|>",
        );
        assert_eq!(text, "Total\n end");
        assert_eq!(b, vec![[10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 3.0, 4.0]]);
        let (text, b) = extract_boxes("a <|begin_of_box|>[5,5,9,9]");
        assert_eq!((text.as_str(), b.len()), ("a ", 1));
    }

    #[test]
    fn boxes_map_to_the_page_and_through_a_crop() {
        let p = Profile::new(ProfileKind::Document);
        let page = input(&p, None);
        assert_eq!(
            to_page([100.0, 200.0, 500.0, 1200.0], &page),
            Some(BBox([200.0, 200.0, 1000.0, 1000.0]))
        );
        let crop = input(&p, Some([1000.0, 500.0, 1200.0, 600.0]));
        assert_eq!(
            union_to_page(
                &[[0.0, 0.0, 500.0, 500.0], [500.0, 500.0, 1000.0, 1000.0]],
                &crop
            ),
            Some(BBox([1000.0, 500.0, 1200.0, 600.0]))
        );
        assert_eq!(to_page([5.0, 5.0, 5.0, 9.0], &page), None);
        assert_eq!(whole_region(&crop), BBox([1000.0, 500.0, 1200.0, 600.0]));
    }
}
