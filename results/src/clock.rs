//! Timestamps of page records (`finished_at`) and of documents (`completed_at`).
//!
//! Written as RFC 3339 UTC with exactly three fractional digits (`2026-01-02T03:04:05.678Z`), so
//! that they also sort as text. Reading accepts any RFC 3339 time.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Now, in the fixed form.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// `t` in UTC, in the fixed form.
pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// The latest of `times` that parse as RFC 3339 (others are ignored), in the fixed form.
pub fn latest<'a>(times: impl IntoIterator<Item = &'a str>) -> Option<String> {
    times
        .into_iter()
        .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .max()
        .map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_form_sorts_as_text() {
        let t = OffsetDateTime::parse("2026-01-02T03:04:05Z", &Rfc3339).unwrap();
        assert_eq!(format(t), "2026-01-02T03:04:05.000Z");
        let later = t + time::Duration::milliseconds(1);
        assert!(format(t) < format(later));
        assert_eq!(now().len(), "2026-01-02T03:04:05.000Z".len());
    }

    #[test]
    fn latest_compares_times_not_text() {
        let got = latest([
            "2026-01-02T03:04:05.9Z",
            "2026-01-02T03:04:06+01:00",
            "not a time",
            "2026-01-02T03:04:05Z",
        ]);
        assert_eq!(got.as_deref(), Some("2026-01-02T03:04:05.900Z"));
        assert_eq!(latest([]), None);
        assert_eq!(latest(["garbage"]), None);
    }
}
