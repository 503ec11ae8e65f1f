//! The prescription record: what both engines put in a block's `fields` for a prescription.
//!
//! The one schema of the record: the `ocr` engine fills it from its rules, the `glm45v` engine's
//! `prescription` profile constrains the model's answer with [`prescription_schema`]. Every value is
//! a string as written on the page (`"500 mg"`, `"1-0-1"`, `"x 5 days"`), or null when absent.
//! The schema is self-contained (no `$ref`) and closed (`additionalProperties: false`, every key
//! required, lengths bounded) so that constrained decoding can enforce it as written.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One prescribed medication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline, transform = medication_required)]
pub struct Medication {
    /// Drug name as written (`Amoxicillin`).
    #[schemars(length(max = 200))]
    pub name: String,
    /// Strength with its unit (`500 mg`, `5 ml`, `40 IU`).
    #[schemars(length(max = 100))]
    pub strength: Option<String>,
    /// Dosage form (`tablet`, `capsule`, `syrup`, `injection`, …).
    #[schemars(length(max = 100))]
    pub form: Option<String>,
    /// How often (`BD`, `TDS`, `1-0-1`, `at bedtime`).
    #[schemars(length(max = 100))]
    pub frequency: Option<String>,
    /// For how long (`5 days`, `2 weeks`).
    #[schemars(length(max = 100))]
    pub duration: Option<String>,
    /// Anything else for this medication (`after food`).
    #[schemars(length(max = 300))]
    pub instructions: Option<String>,
}

/// A prescription: who it is for, who wrote it, when, and what was prescribed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = prescription_required)]
pub struct Prescription {
    #[schemars(length(max = 200))]
    pub patient: Option<String>,
    #[schemars(length(max = 50))]
    pub age: Option<String>,
    #[schemars(length(max = 50))]
    pub date: Option<String>,
    #[schemars(length(max = 200))]
    pub prescriber: Option<String>,
    #[schemars(length(max = 30))]
    pub medications: Vec<Medication>,
}

pub const MEDICATION_KEYS: [&str; 6] = [
    "name",
    "strength",
    "form",
    "frequency",
    "duration",
    "instructions",
];
pub const PRESCRIPTION_KEYS: [&str; 5] = ["patient", "age", "date", "prescriber", "medications"];

/// Every key required (null when absent), in field order: constrained decoding writes the keys
/// in the order of `required`. (`#[schemars(required)]` on an `Option` would drop its `null`.)
fn require(schema: &mut schemars::Schema, keys: &[&str]) {
    schema.insert("required".into(), serde_json::json!(keys));
}

fn medication_required(schema: &mut schemars::Schema) {
    require(schema, &MEDICATION_KEYS);
}

fn prescription_required(schema: &mut schemars::Schema) {
    require(schema, &PRESCRIPTION_KEYS);
}

impl Prescription {
    /// The record as a block's `fields` (every key present, absent values as null).
    pub fn to_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("a struct of strings always serialises to an object"),
        }
    }

    /// Whether the record holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.patient.is_none()
            && self.age.is_none()
            && self.date.is_none()
            && self.prescriber.is_none()
            && self.medications.is_empty()
    }
}

/// The JSON Schema of [`Prescription`], inlined and closed: the contract of the `fields` of a
/// prescription block, and the constraint of the `glm45v` `prescription` profile.
pub fn prescription_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Prescription))
        .expect("a schema is always valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_closed_and_inlined() {
        let s = prescription_schema();
        let text = s.to_string();
        assert!(!text.contains("$ref"), "{text}");
        assert_eq!(s["additionalProperties"], false);
        let med = &s["properties"]["medications"]["items"];
        assert_eq!(med["additionalProperties"], false);
        let required: Vec<&str> = med["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            required,
            [
                "name",
                "strength",
                "form",
                "frequency",
                "duration",
                "instructions"
            ]
        );
        assert_eq!(s["required"].as_array().unwrap().len(), 5);
        // Every property is required, and every optional one may be null.
        for (obj, keys) in [(&s, &PRESCRIPTION_KEYS[..]), (med, &MEDICATION_KEYS[..])] {
            let props = obj["properties"].as_object().unwrap();
            assert_eq!(props.len(), keys.len());
            for key in keys {
                let ty = &props[*key]["type"];
                let nullable = ty.as_array().is_some_and(|t| t.contains(&"null".into()));
                assert_eq!(
                    nullable,
                    !["name", "medications"].contains(key),
                    "{key}: {ty}"
                );
            }
        }
    }

    #[test]
    fn fields_keep_every_key() {
        let rx = Prescription {
            patient: Some("A. Kumar".into()),
            medications: vec![Medication {
                name: "Amoxicillin".into(),
                strength: Some("500 mg".into()),
                ..Medication::default()
            }],
            ..Prescription::default()
        };
        let f = rx.to_fields();
        assert_eq!(f["patient"], "A. Kumar");
        assert!(f["age"].is_null());
        assert_eq!(f["medications"][0]["strength"], "500 mg");
        assert!(f["medications"][0]["duration"].is_null());
        let back: Prescription = serde_json::from_value(serde_json::Value::Object(f)).unwrap();
        assert_eq!(back, rx);
        assert!(!rx.is_empty());
        assert!(Prescription::default().is_empty());
    }
}
