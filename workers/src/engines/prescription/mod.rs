//! Prescriptions on the CPU: the `ocr` engine's profiles and the rules that read the record.
//!
//! The `ocr` engine has three profiles (job option `profile`, [`folio_schemas::OCR_PROFILES`]):
//! - `auto` (the default): the page's text, plus a prescription record when the page is one (an
//!   Rx mark with a medication line, or two medication lines led by form words);
//! - `prescription`: the record on every page (empty, with a warning, when nothing is found);
//! - `document`: the text only.
//!
//! The record is [`folio_schemas::Prescription`], the same schema the `glm45v` engine's
//! `prescription` profile is constrained to; it is added as one more block (kind `handwriting`, like
//! the `glm45v` profile's block), with the record in `fields` and no `text` (its words are already
//! in the page's text blocks).
//!
//! | module | job |
//! | --- | --- |
//! | [`rows`] | recognised lines → visual rows, whatever the blocks' order |
//! | [`notation`] | one row → a medication (form, name, strength, frequency, duration) |
//! | [`extract`] | rows → the record, and whether the page is a prescription |

pub mod extract;
pub mod notation;
pub mod rows;

use crate::engine::EngineError;
use folio_schemas::{BBox, Block, BlockKind, EngineKind, JobOptions};

/// What the `ocr` engine adds to a page's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcrProfile {
    Auto,
    Document,
    Prescription,
}

impl OcrProfile {
    /// The profile of a job option (`None` or empty: `auto`).
    pub fn parse(option: Option<&str>) -> Result<Self, EngineError> {
        match option
            .map(str::trim)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("auto") => Ok(OcrProfile::Auto),
            Some("document") => Ok(OcrProfile::Document),
            Some("prescription") => Ok(OcrProfile::Prescription),
            Some(other) => Err(EngineError::Permanent {
                code: "bad_profile",
                message: format!(
                    "the ocr engine has no profile `{other}` (expected one of {:?})",
                    folio_schemas::OCR_PROFILES
                ),
            }),
        }
    }

    /// The profile of a page job. Jobs of another engine reach the `ocr` engine as `glm45v`'s
    /// fallback: its `prescription` profile keeps the record, every other profile is `document`
    /// (layout-first reads the `ocr` blocks as regions; an extra record block must not be one).
    pub fn for_job(options: &JobOptions) -> Result<Self, EngineError> {
        if options.engine == EngineKind::Ocr {
            return Self::parse(options.profile.as_deref());
        }
        Ok(match options.profile.as_deref().map(str::trim) {
            Some(p) if p.eq_ignore_ascii_case("prescription") => OcrProfile::Prescription,
            _ => OcrProfile::Document,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            OcrProfile::Auto => "auto",
            OcrProfile::Document => "document",
            OcrProfile::Prescription => "prescription",
        }
    }
}

/// Adds the prescription block to `blocks` as `profile` says; a warning when the `prescription`
/// profile finds no medication.
pub fn attach(profile: OcrProfile, page: u32, blocks: &mut Vec<Block>, warnings: &mut Vec<String>) {
    if profile == OcrProfile::Document {
        return;
    }
    let found = extract::extract(&rows::rows(blocks));
    let wanted = match profile {
        OcrProfile::Prescription => true,
        _ => found.is_prescription(),
    };
    if !wanted {
        return;
    }
    if found.record.medications.is_empty() {
        warnings.push("prescription: no medication line was found on the page".into());
    }
    let bbox = found
        .bbox
        .or_else(|| blocks.iter().map(|b| b.bbox).reduce(|a, b| a.union(&b)))
        .unwrap_or(BBox::new(0.0, 0.0, 0.0, 0.0));
    let id = format!("p{page}-b{}", blocks.len() + 1);
    blocks.push(Block {
        fields: Some(found.record.to_fields()),
        ..Block::new(id, BlockKind::Handwriting, bbox)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_block(id: &str, text: &str) -> Block {
        Block {
            text: Some(text.into()),
            ..Block::new(id, BlockKind::Text, BBox::new(0.0, 0.0, 900.0, 400.0))
        }
    }

    #[test]
    fn profiles_decide_when_the_record_is_added() {
        let rx = text_block("p2-b1", "Rx\nTab. Amoxicillin 500 mg TDS x 5 days");
        let letter = text_block("p2-b1", "Dear Ms Okafor,\nThank you for your letter.");
        let run = |p: OcrProfile, b: &Block| {
            let (mut blocks, mut warnings) = (vec![b.clone()], Vec::new());
            attach(p, 2, &mut blocks, &mut warnings);
            (blocks, warnings)
        };
        let (blocks, warnings) = run(OcrProfile::Auto, &rx);
        assert_eq!(blocks.len(), 2);
        assert!(warnings.is_empty());
        let rec = &blocks[1];
        assert_eq!(rec.id, "p2-b2");
        assert_eq!(rec.text, None);
        let fields = rec.fields.as_ref().expect("fields");
        assert_eq!(fields["medications"][0]["name"], "Amoxicillin");
        assert_eq!(fields["medications"][0]["frequency"], "TDS");
        let schema = folio_schemas::prescription_schema();
        let value = serde_json::Value::Object(fields.clone());
        assert!(jsonschema::is_valid(&schema, &value), "{value}");

        assert_eq!(run(OcrProfile::Document, &rx).0.len(), 1);
        assert_eq!(run(OcrProfile::Auto, &letter).0.len(), 1);
        let (blocks, warnings) = run(OcrProfile::Prescription, &letter);
        assert_eq!(blocks.len(), 2);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn glm_fallback_jobs_keep_only_the_prescription_profile() {
        let job = |profile: &str| JobOptions {
            engine: EngineKind::Glm45v,
            profile: Some(profile.into()),
            ..JobOptions::default()
        };
        assert_eq!(
            OcrProfile::for_job(&job("prescription")).unwrap(),
            OcrProfile::Prescription
        );
        for other in ["chart", "document", "question"] {
            assert_eq!(
                OcrProfile::for_job(&job(other)).unwrap(),
                OcrProfile::Document
            );
        }
        assert_eq!(
            OcrProfile::for_job(&JobOptions::default()).unwrap(),
            OcrProfile::Auto
        );
    }

    #[test]
    fn profile_names_parse() {
        assert_eq!(OcrProfile::parse(None).unwrap(), OcrProfile::Auto);
        assert_eq!(
            OcrProfile::parse(Some(" Prescription ")).unwrap(),
            OcrProfile::Prescription
        );
        for name in folio_schemas::OCR_PROFILES {
            assert_eq!(OcrProfile::parse(Some(name)).unwrap().name(), *name);
        }
        assert!(matches!(
            OcrProfile::parse(Some("chart")),
            Err(EngineError::Permanent {
                code: "bad_profile",
                ..
            })
        ));
    }
}
