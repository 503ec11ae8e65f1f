//! The `prescription` profile's JSON → a block's `fields`.
//!
//! The fields are the one prescription record of `folio_schemas::prescription` (the same schema
//! constrains the answer): `patient`, `age`, `date`, `prescriber` (string or null) and
//! `medications` (objects with `name`, `strength`, `form`, `frequency`, `duration`,
//! `instructions`). Values are normalised (numbers to strings, blanks to null, missing keys to
//! null); the record is closed, so keys outside it are named in a warning with their values,
//! and nothing the model read is lost.

use serde_json::{Map, Value};

use folio_schemas::prescription::{MEDICATION_KEYS as MEDICATION, PRESCRIPTION_KEYS};

/// The record's scalar keys (every key but the trailing `medications`).
const TOP: &[&str] = match PRESCRIPTION_KEYS.split_last() {
    Some((_, scalars)) => scalars,
    None => &[],
};

/// Normalised fields; an error when the answer is not an object with a prescription in it.
pub fn fields_from_json(
    v: &Value,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, String> {
    let obj = v
        .as_object()
        .ok_or("the prescription answer is not a JSON object")?;
    let mut fields = Map::new();
    for &key in TOP {
        fields.insert(key.into(), scalar(obj.get(key)));
    }
    let meds = obj
        .get("medications")
        .or_else(|| obj.get("medicines"))
        .or_else(|| obj.get("drugs"));
    let mut list = Vec::new();
    match meds {
        Some(Value::Array(a)) => {
            for (i, m) in a.iter().enumerate() {
                match m {
                    Value::Object(m) => {
                        let mut med = Map::new();
                        for key in MEDICATION {
                            med.insert(key.into(), scalar(m.get(key)));
                        }
                        if med["name"].is_null() {
                            warnings.push(format!("medication {} has no name", i + 1));
                        }
                        list.push(Value::Object(med));
                    }
                    Value::String(s) => {
                        let mut med: Map<String, Value> = MEDICATION
                            .iter()
                            .map(|k| (k.to_string(), Value::Null))
                            .collect();
                        med.insert("name".into(), Value::String(s.clone()));
                        list.push(Value::Object(med));
                    }
                    _ => warnings.push(format!("medication {} is unreadable: skipped", i + 1)),
                }
            }
        }
        None | Some(Value::Null) => warnings.push("no medications in the prescription".into()),
        Some(_) => warnings.push("`medications` is not a list: ignored".into()),
    }
    let known = |k: &str| TOP.contains(&k) || ["medications", "medicines", "drugs"].contains(&k);
    let extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !known(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if fields.values().all(Value::is_null) && list.is_empty() {
        return Err("the prescription answer holds none of its fields".into());
    }
    fields.insert("medications".into(), Value::Array(list));
    if !extra.is_empty() {
        warnings.push(format!(
            "keys outside the prescription record: {}",
            Value::Object(extra)
        ));
    }
    Ok(fields)
}

/// The prescription as readable text (block text).
pub fn fields_text(f: &Map<String, Value>) -> String {
    let get =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let mut head = Vec::new();
    for (label, key) in [
        ("Patient", "patient"),
        ("Age", "age"),
        ("Date", "date"),
        ("Prescriber", "prescriber"),
    ] {
        if let Some(v) = get(f, key) {
            head.push(format!("{label}: {v}"));
        }
    }
    let mut lines = vec![head.join(", ")];
    for m in f
        .get("medications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        let parts: Vec<String> = MEDICATION.iter().filter_map(|k| get(m, k)).collect();
        lines.push(format!("- {}", parts.join(", ")));
    }
    lines.retain(|l| !l.is_empty());
    lines.join("\n")
}

/// A string or null: numbers become strings, blank strings and other values null.
fn scalar(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => Value::String(s.trim().to_string()),
        Some(Value::Number(n)) => Value::String(n.to_string()),
        _ => Value::Null,
    }
}
