//! The `chart` profile's JSON → `folio_schemas::Chart`.
//!
//! Follows the profile's schema (`chart_type`, `title`, `axes.{x,y}.{title,unit}`,
//! `series[].{name, points[].{x, y}}`) and accepts the variations models write without a
//! constraint: `type` for `chart_type`, `data`/`values` for `points`, points as `[x, y]` pairs,
//! numbers as strings (`"12.5%"`), axes as `x_axis`/`y_axis` or plain strings.

use std::collections::BTreeMap;

use folio_schemas::{Chart, ChartAxis, ChartPoint, ChartSeries};
use serde_json::{Map, Value};

const CHART_TYPES: [&str; 7] = [
    "bar",
    "line",
    "pie",
    "scatter",
    "area",
    "histogram",
    "other",
];

/// Maps the answer; an error when it is not an object with series.
pub fn chart_from_json(v: &Value, warnings: &mut Vec<String>) -> Result<Chart, String> {
    let obj = v
        .as_object()
        .ok_or("the chart answer is not a JSON object")?;
    let chart_type = match str_of(obj, &["chart_type", "type"]) {
        Some(t) => {
            let t = t.trim().to_ascii_lowercase();
            if !CHART_TYPES.contains(&t.as_str()) {
                warnings.push(format!("unusual chart type {t:?}"));
            }
            t
        }
        None => {
            warnings.push("the chart type is missing: `other`".into());
            "other".into()
        }
    };
    let title = str_of(obj, &["title"]).filter(|t| !t.trim().is_empty());
    let mut axes = BTreeMap::new();
    for (name, alts) in [("x", ["x", "x_axis"]), ("y", ["y", "y_axis"])] {
        let axis = obj
            .get("axes")
            .and_then(|a| alts.iter().find_map(|k| a.get(*k)))
            .or_else(|| alts.iter().skip(1).find_map(|k| obj.get(*k)));
        if let Some(axis) = axis.and_then(axis_of) {
            axes.insert(name.to_string(), axis);
        }
    }
    let series_value = obj
        .get("series")
        .or_else(|| obj.get("data"))
        .ok_or("the chart answer has no `series`")?;
    let list: Vec<&Value> = match series_value {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![series_value],
        _ => return Err("`series` is not a list".into()),
    };
    let mut series = Vec::new();
    for (i, s) in list.into_iter().enumerate() {
        let Some(s) = s.as_object() else {
            warnings.push(format!("series {} is not an object: skipped", i + 1));
            continue;
        };
        let name = str_of(s, &["name", "label"]).unwrap_or_else(|| format!("series {}", i + 1));
        let raw_points = ["points", "data", "values"]
            .iter()
            .find_map(|k| s.get(*k).and_then(Value::as_array));
        let mut points = Vec::new();
        let mut skipped = 0;
        for p in raw_points.into_iter().flatten() {
            match point_of(p) {
                Some(p) => points.push(p),
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            warnings.push(format!(
                "{skipped} unreadable point(s) in series {name:?} skipped"
            ));
        }
        series.push(ChartSeries { name, points });
    }
    Ok(Chart {
        chart_type,
        title,
        axes,
        series,
    })
}

/// A one-paragraph description of the chart (block text).
pub fn chart_text(c: &Chart) -> String {
    let mut out = match &c.title {
        Some(t) => format!("{} chart: {t}", c.chart_type),
        None => format!("{} chart", c.chart_type),
    };
    for s in &c.series {
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|p| {
                let x = match &p.x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match p.y {
                    Some(y) => format!("{x}: {y}"),
                    None => format!("{x}: -"),
                }
            })
            .collect();
        out.push_str(&format!("\n{}: {}", s.name, pts.join(", ")));
    }
    out
}

fn str_of(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match obj.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn axis_of(v: &Value) -> Option<ChartAxis> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(ChartAxis {
            title: Some(s.clone()),
            unit: None,
        }),
        Value::Object(o) => {
            let title = str_of(o, &["title", "label", "name"]).filter(|t| !t.is_empty());
            let unit = str_of(o, &["unit", "units"]).filter(|t| !t.is_empty());
            (title.is_some() || unit.is_some()).then_some(ChartAxis { title, unit })
        }
        _ => None,
    }
}

fn point_of(p: &Value) -> Option<ChartPoint> {
    let (x, y) = match p {
        Value::Object(o) => (
            o.get("x")
                .or_else(|| o.get("label"))
                .or_else(|| o.get("category"))?,
            o.get("y").or_else(|| o.get("value")),
        ),
        Value::Array(a) if a.len() == 2 => (&a[0], Some(&a[1])),
        _ => return None,
    };
    let x = match x {
        Value::String(_) | Value::Number(_) => x.clone(),
        _ => return None,
    };
    let y = match y {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_f64()?),
        Some(Value::String(s)) => Some(number_in(s)?),
        Some(_) => return None,
    };
    Some(ChartPoint { x, y })
}

/// `"1,234.5%"` → 1234.5.
fn number_in(s: &str) -> Option<f64> {
    let cleaned: String = s
        .trim()
        .trim_end_matches('%')
        .chars()
        .filter(|c| *c != ',' && *c != ' ' && *c != '$' && *c != '€')
        .collect();
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}
