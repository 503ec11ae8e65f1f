//! The notations people write on prescriptions, as rules over one row of text.
//!
//! - form words: `Tab.`/`Tab`/`T.`/`Tablet`, `Cap.`/`Caps`, `Syp.`/`Syr.`/`Syrup`, `Inj.`, `Susp.`,
//!   `Oint.`, `Drops`/`Gtt`, `Cream`, `Gel`, `Inh.`, `Sachet`;
//! - strengths: a number and `mg`, `mcg`/`µg`, `ml`, `g`, `IU`, `units`, `%` (`500mg`, `5 ml`);
//! - frequencies: `OD`, `BD`/`BID`, `TDS`/`TID`, `QID`/`QDS`, `HS`, `SOS`, `PRN`, `STAT`, with or
//!   without dots, and the dose pattern `1-0-1`;
//! - durations: `x 5 days`, `x5d`, `for 2 weeks`, `5 days`, `1 month`.
//!
//! OCR noise is tolerated where it is safe: any case, missing or extra dots, `O`/`o` read for `0`
//! and `l`/`I`/`|` for `1` inside numbers (`5OOmg`, `l-0-l`), `rng` for `mg`, `mI` for `ml`.
//! There is no drug-name lexicon: a medication line is found by its form word or its strength, and
//! the name is what stands between the form word and the first dose notation.

use regex::Regex;
use std::sync::LazyLock;

/// One medication line, values normalised (`500 mg`, `BD`, `5 days`, `tablet`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MedLine {
    pub name: Option<String>,
    pub strength: Option<String>,
    pub form: Option<String>,
    pub frequency: Option<String>,
    pub duration: Option<String>,
    pub instructions: Option<String>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the notation patterns are valid")
}

/// An optional list number (`1.`, `2)`, `l.`), then a form word.
static FORM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\s*(?:[0-9lI]{1,2}\s*[.)]\s*)?(?:(?P<form>tab(?:let)?s?|caps?(?:ule)?s?|sy[pr]|syrup|inj(?:ection)?|susp(?:ension)?|oint(?:ment)?|drops?|gtt|cream|gel|inh(?:aler)?|sach(?:et)?s?)\b[.,:]?|(?P<t>t)[.,:])",
    )
});
static LIST_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*[0-9lI]{1,2}\s*[.)]\s+"));
static STRENGTH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>mcg|meg|µg|ug|mg|rng|ml|m1|gm|g|i\.?\s?u\.?|units?|%)(?:\b|$)",
    )
});
static FREQUENCY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|[^a-z0-9])(?P<f>(?P<dose>[01½OoCcIl|]\s*-\s*[01½OoCcIl|]\s*-\s*[01½OoCcIl|](?:\s*-\s*[01½OoCcIl|])?)|[o0]\.?\s?d\.?|b\.?\s?i?\.?\s?d\.?|t\.?\s?[di]\.?\s?[sd]\.?|q\.?\s?[id]\.?\s?[ds]\.?|h\.?\s?s\.?|s\.?\s?[o0u]\.?\s?s\.?|prn|stat|once\s+(?:a\s+)?daily|twice\s+(?:a\s+)?daily|thrice\s+daily|at\s+bed\s?time)(?:[^a-z0-9]|$)",
    )
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:(?P<lead>[x×*]|for)\s*)?(?P<n>\d{1,3})\s*(?P<unit>d[ao]?ys?|d|w(?:ee)?ks?|w|months?|mths?|mo)(?:\b|$)",
    )
});
static NUMERIC_LEAD: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9OoCcIl|]*[0-9][0-9OoCcIl|]*"));
/// A number written with no digit left (`IC` for `10`), trusted only right before a unit.
static LOOKALIKE_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"^[Il|][0-9OoCcIl|]{0,4}$"));

/// Dashes, multiplication signs and runs of spaces made plain.
pub fn clean(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| match c {
            '–' | '—' | '−' => '-',
            '×' => 'x',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    words
        .iter()
        .enumerate()
        .map(|(i, w)| fix_number(w, words.get(i + 1).copied()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `5OOmg` → `500mg`, `l0` → `10`, `4CC mg` → `400 mg`, `IC IU` → `10 IU`: letters that look like
/// digits, in a word that starts as a number, or in a digit-less word right before a unit.
fn fix_number(word: &str, next: Option<&str>) -> String {
    let before_unit = next.is_some_and(|n| {
        STRENGTH
            .find(&format!("1{n}"))
            .is_some_and(|m| m.len() == n.len() + 1)
    });
    if before_unit && LOOKALIKE_NUMBER.is_match(word) {
        return word.chars().map(digit_for).collect();
    }
    let Some(m) = NUMERIC_LEAD.find(word) else {
        return word.to_string();
    };
    let rest = &word[m.end()..];
    // Only where the rest is a unit, a duration letter or nothing, so words are never touched.
    let unit_like = rest.is_empty()
        || rest.starts_with(|c: char| !c.is_alphabetic())
        || STRENGTH.is_match(&format!("1{rest}"))
        || DURATION.is_match(&format!("1{rest}"));
    if !unit_like {
        return word.to_string();
    }
    let digits: String = m.as_str().chars().map(digit_for).collect();
    format!("{digits}{rest}")
}

fn digit_for(c: char) -> char {
    match c {
        'O' | 'o' | 'C' | 'c' => '0',
        'I' | 'l' | '|' => '1',
        c => c,
    }
}

/// The canonical form name of a form word.
fn form_name(word: &str) -> &'static str {
    let w = word.to_ascii_lowercase();
    let w = w.trim_end_matches(['.', ',', ':']);
    match w {
        "t" => "tablet",
        _ if w.starts_with("tab") => "tablet",
        _ if w.starts_with("cap") => "capsule",
        _ if w.starts_with("sy") => "syrup",
        _ if w.starts_with("inj") => "injection",
        _ if w.starts_with("susp") => "suspension",
        _ if w.starts_with("oint") => "ointment",
        _ if w.starts_with("drop") || w == "gtt" => "drops",
        _ if w.starts_with("inh") => "inhaler",
        _ if w.starts_with("sach") => "sachet",
        "cream" => "cream",
        _ => "gel",
    }
}

fn strength_value(num: &str, unit: &str) -> String {
    let u = unit.to_ascii_lowercase().replace([' ', '.'], "");
    let unit = match u.as_str() {
        "mcg" | "meg" | "µg" | "ug" => "mcg",
        "mg" | "rng" => "mg",
        "ml" | "m1" => "ml",
        "g" | "gm" => "g",
        "iu" => "IU",
        "unit" | "units" => "units",
        _ => "%",
    };
    let num = num.replace(',', ".");
    if unit == "%" {
        format!("{num}%")
    } else {
        format!("{num} {unit}")
    }
}

fn frequency_value(raw: &str, dose: bool) -> String {
    if dose {
        return raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(digit_for)
            .collect();
    }
    let compact: String = raw
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    let letters: String = compact.chars().filter(|c| !c.is_whitespace()).collect();
    match letters.as_str() {
        "0D" => "OD".into(),
        "SUS" | "S0S" => "SOS".into(),
        "ONCEDAILY" | "ONCEADAILY" => "OD".into(),
        "TWICEDAILY" | "TWICEADAILY" => "BD".into(),
        "THRICEDAILY" => "TDS".into(),
        "ATBEDTIME" => "HS".into(),
        _ => letters,
    }
}

fn duration_value(n: &str, unit: &str) -> String {
    let u = unit.to_ascii_lowercase();
    let base = if u.starts_with('w') {
        "week"
    } else if u.starts_with('m') {
        "month"
    } else {
        "day"
    };
    let n = n.trim_start_matches('0');
    let n = if n.is_empty() { "0" } else { n };
    if n == "1" {
        format!("1 {base}")
    } else {
        format!("{n} {base}s")
    }
}

/// The first duration in `s` as `(start, end, value)`: bare short units (`5 d`) need `x`/`for`.
fn find_duration(s: &str) -> Option<(usize, usize, String)> {
    DURATION.captures_iter(s).find_map(|c| {
        let all = c.get(0)?;
        let unit = c.name("unit")?.as_str();
        let short = unit.len() <= 2 && !unit.eq_ignore_ascii_case("mo");
        if short && c.name("lead").is_none() {
            return None;
        }
        Some((
            all.start(),
            all.end(),
            duration_value(c.name("n")?.as_str(), unit),
        ))
    })
}

fn find_frequency(s: &str) -> Option<(usize, usize, String)> {
    let c = FREQUENCY.captures(s)?;
    let f = c.name("f")?;
    Some((
        f.start(),
        f.end(),
        frequency_value(f.as_str(), c.name("dose").is_some()),
    ))
}

fn find_strength(s: &str) -> Option<(usize, usize, String)> {
    let c = STRENGTH.captures(s)?;
    let all = c.get(0)?;
    Some((
        all.start(),
        all.end(),
        strength_value(c.name("num")?.as_str(), c.name("unit")?.as_str()),
    ))
}

/// Whether the row holds a dose notation (a frequency or a duration).
pub fn has_dose_notation(row: &str) -> bool {
    let s = clean(row);
    find_frequency(&s).is_some() || find_duration(&s).is_some()
}

/// Whether the row starts with a form word (`Tab.`, `Cap`, …).
pub fn starts_with_form(row: &str) -> bool {
    FORM.is_match(&clean(row))
}

/// Reads a medication line. `None` when the row has neither a form word nor a strength, or when
/// no name of at least three letters stands before the dose notations.
pub fn parse_medication(row: &str) -> Option<MedLine> {
    let s = clean(row);
    let (form, body_start) = match FORM.captures(&s) {
        Some(c) => {
            let f = c.name("form").or_else(|| c.name("t"))?;
            (Some(form_name(f.as_str())), c.get(0)?.end())
        }
        None => (None, LIST_NUMBER.find(&s).map_or(0, |m| m.end())),
    };
    let body = &s[body_start..];
    let strength = find_strength(body);
    if form.is_none() && strength.is_none() {
        return None;
    }
    // Cut out the notations (durations first: `x 5 d` must not read as a frequency `D`).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let duration = find_duration(body);
    let mut masked = body.to_string();
    if let Some((a, b, _)) = &duration {
        spans.push((*a, *b));
        masked.replace_range(*a..*b, &" ".repeat(b - a));
    }
    let strength = find_strength(&masked);
    if let Some((a, b, _)) = &strength {
        spans.push((*a, *b));
        masked.replace_range(*a..*b, &" ".repeat(b - a));
    }
    let frequency = find_frequency(&masked);
    if let Some((a, b, _)) = &frequency {
        spans.push((*a, *b));
        masked.replace_range(*a..*b, &" ".repeat(b - a));
    }
    let first = spans.iter().map(|s| s.0).min().unwrap_or(body.len());
    let name = tidy(&masked[..first]);
    if name.chars().filter(|c| c.is_alphabetic()).count() < 3 {
        return None;
    }
    // Without a form word, only a short name followed by a dose notation makes a medication line
    // (`Amlodipine 5 mg OD`, not `The tablet was taken with 200 ml of water`).
    if form.is_none()
        && (name.split_whitespace().count() > 3 || (frequency.is_none() && duration.is_none()))
    {
        return None;
    }
    let rest = tidy(&masked[first..]);
    let instructions = (rest.chars().filter(|c| c.is_alphabetic()).count() >= 3).then_some(rest);
    Some(MedLine {
        name: Some(name),
        strength: strength.map(|s| s.2),
        form: form.map(str::to_string),
        frequency: frequency.map(|s| s.2),
        duration: duration.map(|s| s.2),
        instructions,
    })
}

/// A row read as a continuation of the medication above it: its dose notations and its words.
pub fn parse_continuation(row: &str) -> MedLine {
    let s = clean(row);
    let mut masked = s.clone();
    let duration = find_duration(&masked);
    if let Some((a, b, _)) = &duration {
        masked.replace_range(*a..*b, &" ".repeat(b - a));
    }
    let frequency = find_frequency(&masked);
    if let Some((a, b, _)) = &frequency {
        masked.replace_range(*a..*b, &" ".repeat(b - a));
    }
    let rest = tidy(&masked);
    MedLine {
        frequency: frequency.map(|f| f.2),
        duration: duration.map(|d| d.2),
        instructions: (rest.chars().filter(|c| c.is_alphabetic()).count() >= 3).then_some(rest),
        ..MedLine::default()
    }
}

/// Spaces collapsed, brackets and stray punctuation trimmed from both ends.
pub fn tidy(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '%')
        .replace(['(', ')'], "")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn med(row: &str) -> MedLine {
        parse_medication(row).unwrap_or_else(|| panic!("no medication in {row:?}"))
    }

    #[test]
    fn reads_the_common_notations() {
        let m = med("1. Tab. Amoxicillin 500 mg 1-0-1 x 5 days after food");
        assert_eq!(m.name.as_deref(), Some("Amoxicillin"));
        assert_eq!(m.form.as_deref(), Some("tablet"));
        assert_eq!(m.strength.as_deref(), Some("500 mg"));
        assert_eq!(m.frequency.as_deref(), Some("1-0-1"));
        assert_eq!(m.duration.as_deref(), Some("5 days"));
        assert_eq!(m.instructions.as_deref(), Some("after food"));

        let m = med("Cap Omeprazole 20mg OD (before food) for 2 weeks");
        assert_eq!(
            (
                m.form.as_deref(),
                m.strength.as_deref(),
                m.frequency.as_deref()
            ),
            (Some("capsule"), Some("20 mg"), Some("OD"))
        );
        assert_eq!(m.duration.as_deref(), Some("2 weeks"));
        assert_eq!(m.instructions.as_deref(), Some("before food"));

        let m = med("Syp. Paracetamol 5 ml T.D.S x3d");
        assert_eq!(m.strength.as_deref(), Some("5 ml"));
        assert_eq!(m.frequency.as_deref(), Some("TDS"));
        assert_eq!(m.duration.as_deref(), Some("3 days"));

        let m = med("Inj. Insulin Glargine 20 IU HS");
        assert_eq!(m.name.as_deref(), Some("Insulin Glargine"));
        assert_eq!(m.strength.as_deref(), Some("20 IU"));
        assert_eq!(m.frequency.as_deref(), Some("HS"));

        let m = med("T. Levothyroxine 50mcg 1-0-0 x 1 month");
        assert_eq!(m.form.as_deref(), Some("tablet"));
        assert_eq!(m.strength.as_deref(), Some("50 mcg"));
        assert_eq!(m.duration.as_deref(), Some("1 month"));
    }

    #[test]
    fn tolerates_ocr_noise() {
        let m = med("tab metformin 5OOmg bd × 10 days");
        assert_eq!(m.strength.as_deref(), Some("500 mg"));
        assert_eq!(m.frequency.as_deref(), Some("BD"));
        assert_eq!(m.duration.as_deref(), Some("10 days"));
        let m = med("TAB, Cetirizine l0 rng l-O-l X 5 DAYS");
        assert_eq!(m.name.as_deref(), Some("Cetirizine"));
        assert_eq!(m.strength.as_deref(), Some("10 mg"));
        assert_eq!(m.frequency.as_deref(), Some("1-0-1"));
        assert_eq!(m.duration.as_deref(), Some("5 days"));
        // Handwritten zeros read as C, a 1 as I, an O as U.
        let m = med("Tab Metronidazole 4CC mg C-C-1 x7d");
        assert_eq!(m.name.as_deref(), Some("Metronidazole"));
        assert_eq!(m.strength.as_deref(), Some("400 mg"));
        assert_eq!(m.frequency.as_deref(), Some("0-0-1"));
        let m = med("Inj Insulin Glarsine IC IU BD");
        assert_eq!(m.name.as_deref(), Some("Insulin Glarsine"));
        assert_eq!(m.strength.as_deref(), Some("10 IU"));
        assert_eq!(
            med("Tab Ondansetron 4mg SUS").frequency.as_deref(),
            Some("SOS")
        );
        let m = med("Cap Doxycycline 100 mg 0D x 7 days");
        assert_eq!(m.frequency.as_deref(), Some("OD"));
        // A strength without a form word still makes a medication line.
        let m = med("Amlodipine 5 mg OD");
        assert_eq!(m.form, None);
        assert_eq!(m.name.as_deref(), Some("Amlodipine"));
    }

    #[test]
    fn ordinary_text_is_not_a_medication() {
        for row in [
            "Name: Rahul Haddad",
            "Review after 1 week",
            "The tablet was taken with 200 ml of water",
            "Table 3. Results",
            "Total 12 g",
            "Dr. K. Adeyemi",
        ] {
            assert_eq!(parse_medication(row), None, "{row}");
        }
        // Words are never rewritten as numbers.
        assert_eq!(clean("Ollie lol Oslo 1O0mg"), "Ollie lol Oslo 100mg");
        assert_eq!(
            clean("Vitamin IC and Cool 2 mg"),
            "Vitamin IC and Cool 2 mg"
        );
    }

    #[test]
    fn continuation_rows_give_dose_and_instructions() {
        let c = parse_continuation("(after meals) x 5 days");
        assert_eq!(c.duration.as_deref(), Some("5 days"));
        assert_eq!(c.instructions.as_deref(), Some("after meals"));
        assert_eq!(c.frequency, None);
        assert!(has_dose_notation("1-0-1"));
        assert!(!has_dose_notation("with water"));
        assert!(starts_with_form("Tab. X"));
    }
}
