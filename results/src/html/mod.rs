//! The document viewer: one self-contained HTML page per document.
//!
//! Each page image is shown with its blocks' boxes drawn over it (an SVG overlay in page pixels),
//! coloured by kind and numbered in reading order; selecting a box (click, Enter) shows its text,
//! confidence, table (rendered from its cells), chart series, formula and fields; the document's
//! Markdown sits beside. The same page is served by `GET /v1/documents/{id}/view` (images linked
//! through the API) and written by `folio parse --format html` (images embedded as `data:` URIs).
//!
//! Nothing is fetched from the internet: the style sheet and the script are inline, and a
//! Content-Security-Policy that allows exactly those two (by hash) and the page images is part
//! of the page (and of the API's answer), so even text that escaped escaping could not run. All
//! text from the document goes through maud's escaping.

mod block;

use base64::Engine as _;
use folio_schemas::{BlockKind, DocumentResult, DocumentStatus, PageError, PageResult};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("viewer.css");
const JS: &str = include_str!("viewer.js");

/// Every block kind, in the legend's order.
const KINDS: [BlockKind; 14] = [
    BlockKind::Title,
    BlockKind::Text,
    BlockKind::ListItem,
    BlockKind::Table,
    BlockKind::Chart,
    BlockKind::Figure,
    BlockKind::Formula,
    BlockKind::Caption,
    BlockKind::Handwriting,
    BlockKind::Signature,
    BlockKind::Stamp,
    BlockKind::Reference,
    BlockKind::Header,
    BlockKind::Footer,
];

/// Where the page images come from, which decides what the page's policy lets it load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSources {
    /// `data:` URIs inside the page (offline files).
    Embedded,
    /// URLs on the server that served the page.
    SameOrigin,
}

/// The page image of `page` as a `data:image/png;base64,…` URI.
pub fn png_data_uri(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The Content-Security-Policy of the viewer: nothing but its own style sheet and script (by
/// hash) and the page images; no connections, frames, forms or base URL changes.
pub fn content_security_policy(images: ImageSources) -> String {
    let img = match images {
        ImageSources::Embedded => "data:",
        ImageSources::SameOrigin => "'self'",
    };
    format!(
        "default-src 'none'; img-src {img}; style-src '{}'; script-src '{}'; \
         base-uri 'none'; form-action 'none'",
        hash(CSS),
        hash(JS)
    )
}

fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The viewer page of `doc`. `image_src(page)` is the `src` of a page's image (`None`: the page
/// is drawn without its image, boxes only); `images` says what kind of source those are.
pub fn document_html(
    doc: &DocumentResult,
    image_src: &dyn Fn(u32) -> Option<String>,
    images: ImageSources,
) -> String {
    let name = doc
        .source
        .file_name
        .clone()
        .unwrap_or_else(|| doc.document_id.clone());
    let blocks: usize = doc.pages.iter().map(|p| p.blocks.len()).sum();
    let status = match doc.status {
        DocumentStatus::Complete => "complete",
        DocumentStatus::Partial => "partial",
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content=(content_security_policy(images));
                meta name="referrer" content="no-referrer";
                title { "Folio · " (name) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { (name) }
                    p {
                        (status) " · " (doc.pages.len() + doc.errors.len()) " page(s) · "
                        (blocks) " block(s) · document " code { (doc.document_id) }
                    }
                    ul.legend aria-label="Block kinds" {
                        @for kind in KINDS {
                            li { i class={ "k-" (kind_name(kind)) } {} (kind_label(kind)) }
                        }
                    }
                }
                main {
                    section #pages aria-label="Pages" {
                        @for item in pages_in_order(doc) {
                            @match item {
                                Item::Page(page) => (page_figure(page, image_src(page.page))),
                                Item::Failed(error) => (failed_figure(error)),
                            }
                        }
                    }
                    aside {
                        section.pane #detail-pane aria-live="polite" {
                            h2 { "Block" }
                            p.hint #hint { "Select a box on a page to see its content." }
                            @for page in &doc.pages {
                                @for (i, b) in page.blocks.iter().enumerate() {
                                    (block::detail(page.page, i + 1, b))
                                }
                            }
                        }
                        section.pane #markdown-pane {
                            h2 { "Markdown" }
                            pre #markdown { (doc.markdown) }
                        }
                    }
                }
                script { (PreEscaped(JS)) }
            }
        }
    };
    markup.into_string()
}

enum Item<'a> {
    Page(&'a PageResult),
    Failed(&'a PageError),
}

/// Results and failures merged in page order.
fn pages_in_order(doc: &DocumentResult) -> Vec<Item<'_>> {
    let mut items: Vec<(u32, Item<'_>)> = doc
        .pages
        .iter()
        .map(|p| (p.page, Item::Page(p)))
        .chain(doc.errors.iter().map(|e| (e.page, Item::Failed(e))))
        .collect();
    items.sort_by_key(|(page, _)| *page);
    items.into_iter().map(|(_, item)| item).collect()
}

fn page_figure(page: &PageResult, src: Option<String>) -> Markup {
    let (w, h) = (page.image.width.max(1), page.image.height.max(1));
    // Numbers stay readable whatever the page's pixel size.
    let font = (w.max(h) as f32 / 50.0).max(12.0);
    html! {
        figure.page id={ "page-" (page.page) } data-page=(page.page) {
            figcaption {
                "Page " (page.page) " · " (page.blocks.len()) " block(s) · " (page.engine.name)
                @if let Some(profile) = &page.engine.profile { " (" (profile) ")" }
                " · " (w) "×" (h) " px"
                @for warning in &page.warnings { br; span.warn { "⚠ " (warning) } }
            }
            div.sheet {
                @if let Some(src) = &src {
                    img src=(src) width=(w) height=(h) alt={ "Page " (page.page) };
                }
                svg class=(if src.is_some() { "overlay" } else { "overlay bare" })
                    viewBox={ "0 0 " (w) " " (h) } preserveAspectRatio="none"
                    role="group" aria-label={ "Blocks of page " (page.page) } {
                    @if src.is_none() {
                        rect x="0" y="0" width=(w) height=(h) fill="#fff" stroke="#999" {}
                    }
                    @for (i, b) in page.blocks.iter().enumerate() {
                        @let n = i + 1;
                        g class={ "blk k-" (kind_name(b.kind)) } id={ "b-" (page.page) "-" (n) }
                            data-detail={ "d-" (page.page) "-" (n) } data-kind=(kind_name(b.kind))
                            tabindex="0" role="button" aria-pressed="false"
                            aria-label={ "Block " (n) ": " (kind_label(b.kind)) } {
                            title { (n) ". " (kind_label(b.kind)) }
                            rect.box x=(px(b.bbox.x0())) y=(px(b.bbox.y0()))
                                width=(px(b.bbox.width().max(1.0))) height=(px(b.bbox.height().max(1.0))) {}
                            text x=(px(b.bbox.x0() + 2.0)) y=(px(b.bbox.y0() + font)) font-size=(px(font)) { (n) }
                        }
                    }
                }
            }
        }
    }
}

fn failed_figure(error: &PageError) -> Markup {
    html! {
        figure.page.failed id={ "page-" (error.page) } data-page=(error.page) {
            figcaption { "Page " (error.page) " could not be processed" }
            p { code { (error.code) } ": " (error.message) " (" (error.attempts) " attempt(s))" }
        }
    }
}

/// A coordinate or size in page pixels, one decimal.
fn px(v: f32) -> String {
    format!("{:.1}", if v.is_finite() { v } else { 0.0 })
}

/// `list_item`, `table`, …: the kind's name in the JSON.
pub(crate) fn kind_name(kind: BlockKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{kind:?}").to_lowercase(),
    }
}

/// `list item`, `table`, …: the kind for people.
pub(crate) fn kind_label(kind: BlockKind) -> String {
    kind_name(kind).replace('_', " ")
}

#[cfg(test)]
mod tests;
