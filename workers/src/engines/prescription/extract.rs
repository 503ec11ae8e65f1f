//! Rows of a page → the prescription record, and whether the page is a prescription at all.
//!
//! Header fields come from labels (`Name:`/`Patient:`, `Age:`, `Date:`) or their usual shapes
//! (`45 yrs`, `12/03/2024`), the prescriber from the first `Dr.` row. Medication lines are rows
//! that [`notation::parse_medication`] reads; rows without a form word only count after an Rx mark
//! or among form-led lines. A row under a medication that is not one itself adds that medication's
//! missing frequency, duration or instructions (instructions written on a line of their own).

use super::notation::{self, MedLine};
use super::rows::Row;
use folio_schemas::{BBox, Medication, Prescription};
use regex::Regex;
use std::sync::LazyLock;

/// What the rules found on a page.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub record: Prescription,
    /// An Rx mark (`Rx`, `℞`, `R/x`) starts a row.
    pub rx_mark: bool,
    /// Medication lines that start with a form word.
    pub form_lines: usize,
    /// The box around the rows the record was read from (`None` when nothing was read).
    pub bbox: Option<BBox>,
}

impl Found {
    /// The page looks like a prescription: an Rx mark with a medication line, or two medication
    /// lines led by form words.
    pub fn is_prescription(&self) -> bool {
        let meds = self.record.medications.len();
        (self.rx_mark && meds >= 1) || self.form_lines >= 2
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the header patterns are valid")
}

static RX_MARK: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)^\s*(?:rx|r/x|℞)(?:[\s.:,]|$)"));
static PATIENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:patient'?s?\s*name|pt\.?\s*name|patient|name)\s*[:.\-]\s*(?P<v>.+?)\s*(?:\s\s|\b(?:age|date|sex|gender|dob)\b|$)",
    )
});
static AGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?:\bage\s*[:.\-/]?\s*(?P<a>\d{1,3})|\b(?P<b>\d{1,3})\s*(?:yrs?|years?|y)\b)")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?P<d>\b\d{1,2}\s*[/.\-]\s*\d{1,2}\s*[/.\-]\s*\d{2,4}\b|\b\d{1,2}\s+(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{2,4}\b)",
    )
});
static DOCTOR: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(?:Dr|DR|dr)\s*[.,]?\s+(?P<n>[^,|]+)"));
/// Rows after which no medication follows (advice, signature).
static STOP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:adv(?:ice)?\b|review\b|follow[\s-]?up\b|signature\b|sign\b|next visit\b|investigations?\b)",
    )
});
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:name|patient|age|date|sex|gender|reg(?:istration)?\.?\s*no|ph(?:one)?|tel|address|dob|weight|bp)\s*[:.]",
    )
});

/// Reads the rows of one page.
pub fn extract(rows: &[Row]) -> Found {
    let mut record = Prescription::default();
    let mut rx_at: Option<usize> = None;
    let mut form_lines = 0;
    let mut used: Vec<BBox> = Vec::new();
    // Medication lines with the row index they were read from.
    let mut meds: Vec<(usize, MedLine)> = Vec::new();
    let mut open: Option<usize> = None; // index in `meds` that continuation rows extend
    for (i, row) in rows.iter().enumerate() {
        let text = row.text.as_str();
        if rx_at.is_none() && RX_MARK.is_match(text) {
            rx_at = Some(i);
            used.push(row.bbox);
        }
        if header(&mut record, text) {
            used.push(row.bbox);
            open = None;
            continue;
        }
        if STOP.is_match(text) {
            open = None;
            continue;
        }
        let body = RX_MARK.replace(text, "");
        if let Some(m) = notation::parse_medication(&body) {
            if m.form.is_some() {
                form_lines += 1;
            }
            meds.push((i, m));
            open = Some(meds.len() - 1);
            used.push(row.bbox);
            continue;
        }
        if let Some(k) = open {
            if extend(&mut meds[k].1, &body) {
                used.push(row.bbox);
            } else {
                open = None;
            }
        }
    }
    // Form-less lines count after the Rx mark or when form-led lines vouch for the page.
    let trusted = |row: usize, m: &MedLine| {
        m.form.is_some() || form_lines > 0 || rx_at.is_some_and(|r| row >= r)
    };
    record.medications = meds
        .into_iter()
        .filter(|(row, m)| trusted(*row, m))
        .map(|(_, m)| medication(m))
        .collect();
    let bbox = used.into_iter().reduce(|a, b| a.union(&b));
    Found {
        record,
        rx_mark: rx_at.is_some(),
        form_lines,
        bbox,
    }
}

/// Adds a continuation row's notations to `med`; false when the row is not one.
fn extend(med: &mut MedLine, row: &str) -> bool {
    if notation::starts_with_form(row) || LABEL.is_match(row) || RX_MARK.is_match(row) {
        return false;
    }
    let c = notation::parse_continuation(row);
    let fills_dose = (c.frequency.is_some() && med.frequency.is_none())
        || (c.duration.is_some() && med.duration.is_none());
    let trimmed = row.trim();
    let instruction_like = trimmed.starts_with('(')
        || (trimmed.split_whitespace().count() <= 5 && med.instructions.is_none());
    let adds_instructions = instruction_like && c.instructions.is_some();
    if !(fills_dose || adds_instructions) {
        return false;
    }
    if med.frequency.is_none() {
        med.frequency = c.frequency;
    }
    if med.duration.is_none() {
        med.duration = c.duration;
    }
    if let Some(extra) = c.instructions {
        med.instructions = Some(match med.instructions.take() {
            Some(first) => format!("{first}; {extra}"),
            None => extra,
        });
    }
    true
}

/// Fills header fields from `row`; true when the row was a header row.
fn header(record: &mut Prescription, row: &str) -> bool {
    let mut hit = false;
    if record.prescriber.is_none() {
        if let Some(c) = DOCTOR.captures(row) {
            let name = notation::tidy(&c["n"]);
            if name.chars().filter(|c| c.is_alphabetic()).count() >= 2 {
                record.prescriber = Some(format!("Dr. {name}"));
                return true;
            }
        }
    }
    if let Some(c) = PATIENT.captures(row) {
        let v = notation::tidy(&c["v"]);
        if record.patient.is_none() && v.chars().any(char::is_alphabetic) {
            record.patient = Some(v);
        }
        hit = true;
    }
    if let Some(c) = AGE.captures(row) {
        let labelled = c.name("a").is_some();
        if labelled || hit {
            if record.age.is_none() {
                record.age = c
                    .name("a")
                    .or_else(|| c.name("b"))
                    .map(|m| m.as_str().into());
            }
            hit = true;
        }
    }
    if row.to_ascii_lowercase().contains("date") || hit {
        if let Some(c) = DATE.captures(row) {
            if record.date.is_none() {
                record.date = Some(c["d"].split_whitespace().collect());
            }
            hit = true;
        }
    }
    hit || LABEL.is_match(row) && notation::parse_medication(row).is_none()
}

fn medication(m: MedLine) -> Medication {
    Medication {
        name: m.name.unwrap_or_default(),
        strength: m.strength,
        form: m.form,
        frequency: m.frequency,
        duration: m.duration,
        instructions: m.instructions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(texts: &[&str]) -> Vec<Row> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Row {
                text: (*t).to_string(),
                bbox: BBox::new(0.0, i as f32 * 50.0, 800.0, i as f32 * 50.0 + 40.0),
            })
            .collect()
    }

    #[test]
    fn reads_a_prescription_page() {
        let found = extract(&rows(&[
            "Dr. K. Adeyemi",
            "MBBS, MD (Medicine)",
            "City Care Clinic",
            "Reg. No. 89365  Ph: 534 1444833",
            "Name: Rahul Haddad  Date: 16/11/2022",
            "Age: 18 Y  Sex: M",
            "Rx",
            "1. Tab. Metformin 850 mg OD x 5 days",
            "(after meals)",
            "2. Ibuprofen 400 mg 0-0-1",
            "for 5 days",
            "Adv: Review after 1 week",
            "Signature",
        ]));
        assert!(found.is_prescription());
        let r = &found.record;
        assert_eq!(r.prescriber.as_deref(), Some("Dr. K. Adeyemi"));
        assert_eq!(r.patient.as_deref(), Some("Rahul Haddad"));
        assert_eq!(r.age.as_deref(), Some("18"));
        assert_eq!(r.date.as_deref(), Some("16/11/2022"));
        assert_eq!(r.medications.len(), 2, "{:?}", r.medications);
        assert_eq!(
            r.medications[0].instructions.as_deref(),
            Some("after meals")
        );
        assert_eq!(r.medications[1].name, "Ibuprofen");
        assert_eq!(r.medications[1].duration.as_deref(), Some("5 days"));
        assert_eq!(found.bbox, Some(BBox::new(0.0, 0.0, 800.0, 540.0)));
    }

    #[test]
    fn ordinary_pages_are_not_prescriptions() {
        let found = extract(&rows(&[
            "Annual Inspection Report",
            "Date: 12/03/2024",
            "The tablet press was serviced on 4 March.",
            "Amlodipine 5 mg OD is listed in the appendix table.",
            "Table 1. Findings by unit",
        ]));
        assert!(!found.is_prescription(), "{found:?}");
        assert!(found.record.medications.is_empty());
    }
}
