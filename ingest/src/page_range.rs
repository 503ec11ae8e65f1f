//! `PageRange`: the `--pages` selection ("3", "2-5", "2-", "-4", or a comma list of those),
//! parsed once and resolved against a document's page count with [`PageRange::select`].

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use super::error::IngestError;

/// One span of 1-based pages; `last == None` means "to the end".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: u32,
    last: Option<u32>,
}

/// A selection of 1-based pages. Parse with [`str::parse`]; the default selects every page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRange {
    spans: Vec<Span>,
}

impl PageRange {
    /// Every page ("1-").
    pub fn all() -> Self {
        PageRange {
            spans: vec![Span {
                first: 1,
                last: None,
            }],
        }
    }

    /// The selected pages of a document with `page_count` pages, in the order written, each
    /// page once. A page past the end is [`IngestError::PageOutOfRange`]; so is "2-" on a
    /// one-page document.
    pub fn select(&self, page_count: u32) -> Result<Vec<u32>, IngestError> {
        let out_of_range = |page| IngestError::PageOutOfRange { page, page_count };
        let mut seen = HashSet::new();
        let mut pages = Vec::new();
        for span in &self.spans {
            if span.first > page_count {
                return Err(out_of_range(span.first));
            }
            let last = match span.last {
                Some(last) if last > page_count => return Err(out_of_range(last)),
                Some(last) => last,
                None => page_count,
            };
            for page in span.first..=last {
                if seen.insert(page) {
                    pages.push(page);
                }
            }
        }
        Ok(pages)
    }
}

impl Default for PageRange {
    fn default() -> Self {
        PageRange::all()
    }
}

impl FromStr for PageRange {
    type Err = IngestError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| IngestError::InvalidPageRange {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let page = |s: &str| -> Result<u32, IngestError> {
            let n: u32 = s
                .trim()
                .parse()
                .map_err(|_| invalid(&format!("{:?} is not a page number", s.trim())))?;
            if n == 0 {
                return Err(invalid("pages are numbered from 1"));
            }
            Ok(n)
        };
        if input.trim().is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut spans = Vec::new();
        for part in input.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(invalid("it has an empty item"));
            }
            let span = match part.split_once('-') {
                None => {
                    let n = page(part)?;
                    Span {
                        first: n,
                        last: Some(n),
                    }
                }
                Some((a, b)) => {
                    let first = if a.trim().is_empty() { 1 } else { page(a)? };
                    let last = if b.trim().is_empty() {
                        None
                    } else {
                        Some(page(b)?)
                    };
                    if a.trim().is_empty() && last.is_none() {
                        return Err(invalid("\"-\" alone is not a range"));
                    }
                    if let Some(last) = last {
                        if last < first {
                            return Err(invalid(&format!("{first}-{last} runs backwards")));
                        }
                    }
                    Span { first, last }
                }
            };
            spans.push(span);
        }
        Ok(PageRange { spans })
    }
}

impl fmt::Display for PageRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.spans.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match s.last {
                Some(l) if l == s.first => write!(f, "{}", s.first)?,
                Some(l) => write!(f, "{}-{l}", s.first)?,
                None => write!(f, "{}-", s.first)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str, n: u32) -> Result<Vec<u32>, IngestError> {
        s.parse::<PageRange>()?.select(n)
    }

    #[test]
    fn forms() {
        assert_eq!(sel("3", 5).ok(), Some(vec![3]));
        assert_eq!(sel("2-5", 5).ok(), Some(vec![2, 3, 4, 5]));
        assert_eq!(sel("2-", 4).ok(), Some(vec![2, 3, 4]));
        assert_eq!(sel("-2", 4).ok(), Some(vec![1, 2]));
        assert_eq!(sel(" 4, 1-2 ,2", 4).ok(), Some(vec![4, 1, 2]));
        assert_eq!(PageRange::all().select(3).ok(), Some(vec![1, 2, 3]));
    }

    #[test]
    fn out_of_range() {
        for (s, n, bad) in [("6", 5, 6), ("2-7", 5, 7), ("2-", 1, 2)] {
            match sel(s, n) {
                Err(IngestError::PageOutOfRange { page, page_count }) => {
                    assert_eq!((page, page_count), (bad, n), "{s}");
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid() {
        for s in ["", "0", "5-2", "abc", "1,,2", "-", "1-x", "-0"] {
            let e = s.parse::<PageRange>().expect_err(s);
            assert_eq!(e.code(), "invalid_page_range", "{s}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["3", "2-5", "2-", "1,4-6,9-"] {
            assert_eq!(
                s.parse::<PageRange>()
                    .map(|r| r.to_string())
                    .ok()
                    .as_deref(),
                Some(s)
            );
        }
    }
}
