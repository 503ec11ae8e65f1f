//! The `document` profile's Markdown → raw blocks (kind, text, table, formula, boxes).
//!
//! Line based: headings → `Title`, list items → `ListItem` (one block each, indented lines
//! continue them), `$$…$$` / `\[…\]` → `Formula`, `<table>…</table>` → `Table`, pipe tables →
//! `Table`, `![…](…)` → `Figure`, other runs of lines → `Text`; blank lines end blocks. When
//! the answer starts with a box (the prompted layout), each box belongs to the block after it;
//! otherwise boxes follow their blocks. Boxes inside a table or formula belong to it.

use folio_schemas::{BlockKind, Formula, Table};

use super::boxes::{extract_boxes, BOX_CLOSE, BOX_OPEN};
use super::html_table;

/// A block before ids and page boxes are given.
#[derive(Debug, Clone, PartialEq)]
pub struct RawBlock {
    pub kind: BlockKind,
    pub text: Option<String>,
    pub table: Option<Table>,
    pub formula: Option<Formula>,
    /// Boxes in 0..1000 of the image.
    pub boxes: Vec<[f32; 4]>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Paragraph,
    ListItem,
    Formula { close: &'static str },
    Html,
    Pipe,
}

struct Builder<'w> {
    blocks: Vec<RawBlock>,
    lines: Vec<String>,
    open: Option<Open>,
    boxes: Vec<[f32; 4]>,
    pending: Vec<[f32; 4]>,
    /// Boxes precede their blocks (the prompted layout) or, when the answer does not start
    /// with a box, follow them.
    boxes_first: bool,
    /// The last line inside an open HTML table was blank.
    blank_in_html: bool,
    warnings: &'w mut Vec<String>,
}

/// Blocks of `answer` in order.
pub fn parse_markdown(answer: &str, warnings: &mut Vec<String>) -> Vec<RawBlock> {
    let mut b = Builder {
        blocks: Vec::new(),
        lines: Vec::new(),
        open: None,
        boxes: Vec::new(),
        pending: Vec::new(),
        boxes_first: answer.trim_start().starts_with(BOX_OPEN),
        blank_in_html: false,
        warnings,
    };
    // A box written right after a block's text on the same line is common; give every box
    // span its own line start so the line rules below see the content after it.
    let normalized = answer
        .replace("\r\n", "\n")
        .replace(BOX_OPEN, &format!("\n{BOX_OPEN}"))
        .replace(BOX_CLOSE, &format!("{BOX_CLOSE}\n"));
    for line in normalized.lines() {
        b.line(line);
    }
    b.close();
    if !b.pending.is_empty() {
        b.warnings
            .push("boxes after the last block were ignored".into());
    }
    b.blocks
}

impl Builder<'_> {
    fn line(&mut self, raw: &str) {
        let (text, boxes) = extract_boxes(raw);
        let trimmed = text.trim();
        if !boxes.is_empty() && trimmed.is_empty() {
            match self.open {
                // Inside a multi-line construct a box belongs to it.
                Some(Open::Html | Open::Formula { .. }) => self.boxes.extend(boxes),
                _ if self.boxes_first => {
                    self.close();
                    self.pending.extend(boxes);
                }
                Some(_) => {
                    self.boxes.extend(boxes);
                    self.close();
                }
                None => match self.blocks.last_mut().filter(|b| b.boxes.is_empty()) {
                    Some(last) => last.boxes = boxes,
                    None => self
                        .warnings
                        .push("a box that follows no block was ignored".into()),
                },
            }
            return;
        }
        self.boxes.extend(boxes);
        match self.open {
            // An unclosed table ends at a blank line followed by something that is not a tag.
            Some(Open::Html) if !self.blank_in_html || trimmed.starts_with('<') => {
                self.blank_in_html = trimmed.is_empty();
                self.lines.push(text.clone());
                if text.to_ascii_lowercase().contains("</table>") {
                    self.close();
                }
                return;
            }
            Some(Open::Html) => self.close(),
            Some(Open::Formula { close }) => {
                if let Some(end) = trimmed.find(close) {
                    self.lines.push(trimmed[..end].to_string());
                    self.close();
                } else {
                    self.lines.push(trimmed.to_string());
                }
                return;
            }
            _ => {}
        }
        if trimmed.is_empty() {
            self.close();
            return;
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("<table") || lower.starts_with("<tr") {
            self.start(Open::Html);
            self.lines.push(trimmed.to_string());
            if lower.contains("</table>") {
                self.close();
            }
        } else if let Some((open, close)) = formula_open(trimmed) {
            let body = &trimmed[open.len()..];
            self.start(Open::Formula { close });
            match body.find(close) {
                Some(end) => {
                    self.lines.push(body[..end].to_string());
                    self.close();
                }
                None => self.lines.push(body.to_string()),
            }
        } else if let Some(title) = heading(trimmed) {
            self.start(Open::Paragraph);
            self.lines.push(title.to_string());
            self.close_as(BlockKind::Title);
        } else if trimmed.starts_with('|') {
            if self.open != Some(Open::Pipe) {
                self.start(Open::Pipe);
            }
            self.lines.push(trimmed.to_string());
        } else if let Some(item) = list_item(trimmed) {
            self.start(Open::ListItem);
            self.lines.push(item.to_string());
        } else if let Some(caption) = image_line(trimmed) {
            self.start(Open::Paragraph);
            self.lines.push(caption);
            self.close_as(BlockKind::Figure);
        } else {
            match self.open {
                // Indented or wrapped lines continue a list item or paragraph.
                Some(Open::ListItem | Open::Paragraph) => self.lines.push(trimmed.to_string()),
                _ => {
                    self.start(Open::Paragraph);
                    self.lines.push(trimmed.to_string());
                }
            }
        }
    }

    /// Closes what is open and starts `open`, taking the pending boxes.
    fn start(&mut self, open: Open) {
        self.close();
        self.blank_in_html = false;
        self.open = Some(open);
        self.boxes.append(&mut self.pending);
    }

    fn close(&mut self) {
        let kind = match self.open {
            Some(Open::ListItem) => BlockKind::ListItem,
            Some(Open::Formula { .. }) => BlockKind::Formula,
            Some(Open::Html | Open::Pipe) => BlockKind::Table,
            _ => BlockKind::Text,
        };
        self.close_as(kind);
    }

    fn close_as(&mut self, kind: BlockKind) {
        let Some(open) = self.open.take() else {
            return;
        };
        let lines = std::mem::take(&mut self.lines);
        let boxes = std::mem::take(&mut self.boxes);
        let mut block = RawBlock {
            kind,
            text: None,
            table: None,
            formula: None,
            boxes,
        };
        match open {
            Open::Html => match html_table::parse_html_table(&lines.join("\n"), self.warnings) {
                Ok(t) => {
                    block.text = Some(html_table::table_text(&t));
                    block.table = Some(t);
                }
                Err(e) => {
                    self.warnings.push(format!("table kept as text: {e}"));
                    block.kind = BlockKind::Text;
                    block.text = Some(lines.join("\n"));
                }
            },
            Open::Pipe => match html_table::parse_pipe_table(&lines.join("\n")) {
                Some(t) => {
                    block.text = Some(html_table::table_text(&t));
                    block.table = Some(t);
                }
                None => {
                    block.kind = BlockKind::Text;
                    block.text = Some(lines.join("\n"));
                }
            },
            Open::Formula { .. } => {
                let latex = lines.join("\n").trim().to_string();
                if latex.is_empty() {
                    return;
                }
                block.text = Some(latex.clone());
                block.formula = Some(Formula { latex });
            }
            Open::Paragraph | Open::ListItem => {
                let text = lines.join(if open == Open::ListItem { " " } else { "\n" });
                if text.trim().is_empty() {
                    return;
                }
                block.text = Some(text);
            }
        }
        self.blocks.push(block);
    }
}

/// `$$` or `\[` at the start of a line, with its closing delimiter.
fn formula_open(line: &str) -> Option<(&'static str, &'static str)> {
    if line.starts_with("$$") {
        Some(("$$", "$$"))
    } else if line.starts_with("\\[") {
        Some(("\\[", "\\]"))
    } else {
        None
    }
}

/// Heading text of `# …` … `###### …`.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        let t = line[hashes..].trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

/// Text of a `- `, `* `, `+ `, `1. ` or `1) ` list item (the marker kept for numbered ones).
fn list_item(line: &str) -> Option<&str> {
    for marker in ["- ", "* ", "+ ", "• "] {
        if let Some(rest) = line.strip_prefix(marker) {
            return Some(rest.trim());
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &line[digits..];
        if rest.starts_with(". ") || rest.starts_with(") ") {
            return Some(line);
        }
    }
    None
}

/// Caption of a `![caption](target)` line.
fn image_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix("![")?;
    let end = rest.find("](")?;
    let target = rest[end + 2..].trim_end_matches(')');
    let caption = rest[..end].trim();
    Some(
        if caption.is_empty() || caption.eq_ignore_ascii_case("figure") {
            target.trim().to_string()
        } else {
            caption.to_string()
        },
    )
}
