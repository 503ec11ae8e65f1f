//! The output for one page: blocks in reading order, each with a box in page pixels.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[x0, y0, x1, y1]` in page-image pixels, origin top-left, `x0 <= x1`, `y0 <= y1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BBox(pub [f32; 4]);

impl BBox {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        BBox([x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)])
    }
    pub fn x0(&self) -> f32 {
        self.0[0]
    }
    pub fn y0(&self) -> f32 {
        self.0[1]
    }
    pub fn x1(&self) -> f32 {
        self.0[2]
    }
    pub fn y1(&self) -> f32 {
        self.0[3]
    }
    pub fn width(&self) -> f32 {
        self.x1() - self.x0()
    }
    pub fn height(&self) -> f32 {
        self.y1() - self.y0()
    }
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }
    /// Smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox([
            self.x0().min(other.x0()),
            self.y0().min(other.y0()),
            self.x1().max(other.x1()),
            self.y1().max(other.y1()),
        ])
    }
    /// Area of the overlap (0 when disjoint).
    pub fn intersection_area(&self, other: &BBox) -> f32 {
        let w = self.x1().min(other.x1()) - self.x0().max(other.x0());
        let h = self.y1().min(other.y1()) - self.y0().max(other.y0());
        w.max(0.0) * h.max(0.0)
    }
}

/// What a block is. Engines that cannot tell use `Text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    Text,
    Title,
    ListItem,
    Caption,
    Header,
    Footer,
    Handwriting,
    Table,
    Chart,
    Figure,
    Formula,
    Signature,
    Stamp,
    Reference,
}

/// One recognised line of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    pub bbox: BBox,
    /// The detected quadrilateral (clockwise from top-left), when the engine has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[f32; 2]>>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

/// One cell of a table; `row`/`col` are 0-based, spans are ≥ 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableCell {
    pub row: u32,
    pub col: u32,
    pub row_span: u32,
    pub col_span: u32,
    pub text: String,
    #[serde(default)]
    pub header: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<BBox>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Table {
    pub n_rows: u32,
    pub n_cols: u32,
    pub cells: Vec<TableCell>,
    /// The same table as an HTML `<table>` (with `rowspan`/`colspan`).
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChartAxis {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A data point; `x` is a category name or a number, `y` a number when the chart gives one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChartPoint {
    pub x: serde_json::Value,
    pub y: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChartSeries {
    pub name: String,
    pub points: Vec<ChartPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Chart {
    /// `bar`, `line`, `pie`, `scatter`, `area`, … as the engine names it.
    pub chart_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default)]
    pub axes: BTreeMap<String, ChartAxis>,
    pub series: Vec<ChartSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Formula {
    pub latex: String,
}

/// A region of the page in reading order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Block {
    /// Unique within the page, e.g. `p1-b3`.
    pub id: String,
    pub kind: BlockKind,
    pub bbox: BBox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<Formula>,
    /// Named fields (e.g. a prescription's patient, medications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Block {
    /// A block of `kind` with only a box; fill the rest with struct update syntax.
    pub fn new(id: impl Into<String>, kind: BlockKind, bbox: BBox) -> Self {
        Block {
            id: id.into(),
            kind,
            bbox,
            confidence: None,
            text: None,
            lines: Vec::new(),
            table: None,
            chart: None,
            formula: None,
            fields: None,
        }
    }
}

/// The page image the boxes refer to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PageImage {
    pub width: u32,
    pub height: u32,
    /// Rendering resolution for PDF pages; the file's own for images when it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
}

/// Which engine produced a result, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineInfo {
    pub name: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `cpu`, `cuda:0`, …
    pub device: String,
    /// Prompt profile and its version, for engines that have them (`document@1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// The structured result of one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PageResult {
    pub schema_version: String,
    pub document_id: String,
    /// 1-based page number in the source document.
    pub page: u32,
    pub image: PageImage,
    pub engine: EngineInfo,
    /// Blocks in reading order.
    pub blocks: Vec<Block>,
    /// The page as Markdown, in reading order.
    pub markdown: String,
    /// Wall time per stage in milliseconds (`detect`, `recognize`, `layout`, `table`, `total`, …).
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
    /// What the engine could not do on this page (e.g. no chart data extraction).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// RFC 3339 time the result was written (absent in results of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}
