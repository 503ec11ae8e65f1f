//! Upload options: read from the query string and/or multipart fields as raw text, then checked
//! once into [`UploadOptions`] (engine, DPI, page selection, prompt profile, password, callback).

use crate::http::error::ApiError;
use axum::http::HeaderMap;
use folio_ingest::PageRange;
use folio_schemas::{EngineKind, JobOptions, OCR_PROFILES};
use serde::Deserialize;
use std::ops::RangeInclusive;
use utoipa::IntoParams;

/// DPI a request may ask for.
pub const DPI_RANGE: RangeInclusive<u32> = 36..=1200;
/// Prompt profiles of the glm45v engine (ARCHITECTURE §5); the ocr engine's are [`OCR_PROFILES`].
pub const PROFILES: &[&str] = &["document", "table", "chart", "prescription", "question"];
/// Longest free prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// Options of `POST /v1/documents`, as query parameters (or multipart fields of the same names).
#[derive(Default, Deserialize, IntoParams, custom_debug::Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Engine that processes the pages: `ocr` (default) or `glm45v`.
    #[param(example = "ocr")]
    pub engine: Option<String>,
    /// PDF rendering resolution, 36..=1200 (default: the server's, usually 200).
    #[param(value_type = Option<u32>, example = 200)]
    pub dpi: Option<String>,
    /// Pages to process, 1-based: `3`, `2-5`, `2-`, `-4` or a comma list (default: all).
    #[param(example = "2-5")]
    pub pages: Option<String>,
    /// Profile. ocr: auto (default), document, prescription. glm45v: document, table, chart,
    /// prescription, question.
    pub profile: Option<String>,
    /// Free prompt for the `question` profile.
    #[debug(with = crate::redact::text_len)]
    pub prompt: Option<String>,
    /// Password of an encrypted PDF: only as the multipart field `password` or the header
    /// [`PASSWORD_HEADER`]; in the query (where proxies and access logs keep it) it is refused
    /// with 400 `password_in_query`.
    #[debug(with = crate::redact::secret)]
    #[param(ignore)]
    pub password: Option<String>,
    /// Original file name, kept in the manifest (multipart uploads use the part's file name).
    pub filename: Option<String>,
    /// `http`/`https` URL POSTed a signed JSON when the document ends (needs a callback secret
    /// for the tenant; loopback, private and link-local hosts are refused).
    pub callback_url: Option<String>,
}

/// The header that carries the password of an encrypted PDF with a raw-body upload.
pub const PASSWORD_HEADER: &str = "x-folio-pdf-password";

impl UploadQuery {
    /// Refuse a password in the query string; take it from [`PASSWORD_HEADER`] instead (a
    /// multipart `password` field is read later, and conflicts with the header).
    pub fn password_from_header(&mut self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.password.is_some() {
            return Err(ApiError::bad_request(
                "password_in_query",
                "the PDF password must not be in the URL (proxies and access logs keep it): \
                 send it in the `X-Folio-Pdf-Password` header, or as the multipart field `password`",
            ));
        }
        let mut values = headers.get_all(PASSWORD_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "conflicting_option",
                "the X-Folio-Pdf-Password header is given more than once",
            ));
        }
        let password = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            ApiError::bad_request(
                "bad_password_header",
                "the X-Folio-Pdf-Password header is not UTF-8; send such a password as the \
                 multipart field `password`",
            )
        })?;
        self.password = Some(password.to_string());
        Ok(())
    }

    /// The names accepted as multipart text fields (the same as the query parameters).
    pub const FIELDS: &'static [&'static str] = &[
        "engine",
        "dpi",
        "pages",
        "profile",
        "prompt",
        "password",
        "filename",
        "callback_url",
    ];

    /// Set option `name` from a multipart field; an option given twice (query and field, or two
    /// fields) is refused rather than silently choosing one.
    pub fn set_field(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        let slot = match name {
            "engine" => &mut self.engine,
            "dpi" => &mut self.dpi,
            "pages" => &mut self.pages,
            "profile" => &mut self.profile,
            "prompt" => &mut self.prompt,
            "password" => &mut self.password,
            "filename" => &mut self.filename,
            "callback_url" => &mut self.callback_url,
            other => {
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "unknown multipart field {other:?}; expected `file` or one of {:?}",
                        Self::FIELDS
                    ),
                ))
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(
                "conflicting_option",
                format!("option `{name}` is given more than once"),
            ));
        }
        *slot = Some(value);
        Ok(())
    }

    /// Check every option against the server's settings.
    pub fn resolve(
        &self,
        default_dpi: u32,
        engines: &[EngineKind],
    ) -> Result<UploadOptions, ApiError> {
        let engine = match self.engine.as_deref() {
            None => EngineKind::Ocr,
            Some(e) => e
                .parse::<EngineKind>()
                .map_err(|m| ApiError::bad_request("bad_engine", m))?,
        };
        if !engines.contains(&engine) {
            return Err(ApiError::bad_request(
                "engine_unavailable",
                format!("engine `{engine}` is not enabled on this server"),
            ));
        }
        let dpi = match self.dpi.as_deref() {
            None => default_dpi,
            Some(d) => d
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|d| DPI_RANGE.contains(d))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_dpi",
                        format!(
                            "dpi {d:?} must be a whole number in {}..={}",
                            DPI_RANGE.start(),
                            DPI_RANGE.end()
                        ),
                    )
                })?,
        };
        // A malformed selection is the ingest error `invalid_page_range` (422), like a page
        // past the end of the document.
        let pages = match self.pages.as_deref() {
            None => PageRange::all(),
            Some(p) => p.parse::<PageRange>()?,
        };
        let profile = self.profile.clone().filter(|p| !p.is_empty());
        if let Some(p) = &profile {
            if engine == EngineKind::Ocr && !OCR_PROFILES.contains(&p.as_str()) {
                return Err(ApiError::bad_request(
                    "bad_profile",
                    format!(
                        "the ocr engine has no profile {p:?}; expected one of {OCR_PROFILES:?}"
                    ),
                ));
            }
            if engine != EngineKind::Ocr && !PROFILES.contains(&p.as_str()) {
                return Err(ApiError::bad_request(
                    "bad_profile",
                    format!("unknown profile {p:?}; expected one of {PROFILES:?}"),
                ));
            }
        }
        let prompt = self.prompt.clone().filter(|p| !p.is_empty());
        if let Some(prompt) = &prompt {
            if profile.as_deref() != Some("question") {
                return Err(ApiError::bad_request(
                    "bad_prompt",
                    "a prompt needs profile=question",
                ));
            }
            if prompt.chars().count() > MAX_PROMPT_CHARS {
                return Err(ApiError::bad_request(
                    "bad_prompt",
                    format!("the prompt is longer than {MAX_PROMPT_CHARS} characters"),
                ));
            }
        }
        Ok(UploadOptions {
            job: JobOptions {
                engine,
                profile,
                prompt,
                dpi,
            },
            pages,
            password: self.password.clone().filter(|p| !p.is_empty()),
            file_name: self.filename.as_deref().and_then(clean_file_name),
            callback_url: self.callback_url.clone().filter(|u| !u.is_empty()),
        })
    }
}

/// Checked options of one upload.
#[derive(Clone, custom_debug::Debug)]
pub struct UploadOptions {
    pub job: JobOptions,
    pub pages: PageRange,
    #[debug(with = crate::redact::secret)]
    pub password: Option<String>,
    pub file_name: Option<String>,
    /// Checked against the tenant's callback settings by the upload handler.
    pub callback_url: Option<String>,
}

/// The last path component, without control characters, at most 255 bytes; `None` if empty.
pub fn clean_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut out: String = base.chars().filter(|c| !c.is_control()).collect();
    while out.len() > 255 {
        out.pop();
    }
    let out = out.trim().to_string();
    (!out.is_empty() && out != "." && out != "..").then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(q: UploadQuery) -> Result<UploadOptions, ApiError> {
        q.resolve(200, &[EngineKind::Ocr, EngineKind::Glm45v])
    }

    fn code(r: Result<UploadOptions, ApiError>) -> &'static str {
        r.err().map_or("ok", |e| e.status_and_code().1)
    }

    #[test]
    fn defaults_and_values() {
        let o = resolve(UploadQuery::default()).unwrap();
        assert_eq!(o.job, JobOptions::default());
        let o = resolve(UploadQuery {
            engine: Some("glm45v".into()),
            dpi: Some("300".into()),
            pages: Some("2-5".into()),
            profile: Some("question".into()),
            prompt: Some("What is the total?".into()),
            password: Some("pw".into()),
            filename: Some("C:\\scans\\a.pdf".into()),
            callback_url: Some("https://hooks.example.com/folio".into()),
        })
        .unwrap();
        assert_eq!(o.job.engine, EngineKind::Glm45v);
        assert_eq!(o.job.dpi, 300);
        assert_eq!(o.pages.select(9).unwrap(), vec![2, 3, 4, 5]);
        assert_eq!(o.file_name.as_deref(), Some("a.pdf"));
        assert!(!format!("{o:?}").contains("pw\""));
    }

    #[test]
    fn bad_options_have_codes() {
        let q = |f: fn(&mut UploadQuery)| {
            let mut q = UploadQuery::default();
            f(&mut q);
            q
        };
        assert_eq!(
            code(resolve(q(|q| q.engine = Some("gpt".into())))),
            "bad_engine"
        );
        assert_eq!(code(resolve(q(|q| q.dpi = Some("abc".into())))), "bad_dpi");
        assert_eq!(code(resolve(q(|q| q.dpi = Some("5000".into())))), "bad_dpi");
        assert_eq!(
            code(resolve(q(|q| q.pages = Some("5-2".into())))),
            "invalid_page_range"
        );
        assert_eq!(
            code(resolve(q(|q| q.profile = Some("table".into())))),
            "bad_profile"
        );
        let rx = resolve(q(|q| q.profile = Some("prescription".into())));
        assert_eq!(
            rx.ok().and_then(|o| o.job.profile).as_deref(),
            Some("prescription")
        );
        assert_eq!(
            code(resolve(q(|q| {
                q.engine = Some("glm45v".into());
                q.profile = Some("poem".into());
            }))),
            "bad_profile"
        );
        assert_eq!(
            code(resolve(q(|q| q.prompt = Some("hi".into())))),
            "bad_prompt"
        );
        let only_ocr = UploadQuery {
            engine: Some("glm45v".into()),
            ..Default::default()
        }
        .resolve(200, &[EngineKind::Ocr]);
        assert_eq!(code(only_ocr), "engine_unavailable");
    }

    #[test]
    fn fields_cannot_repeat_or_be_unknown() {
        let mut q = UploadQuery {
            dpi: Some("100".into()),
            ..Default::default()
        };
        assert_eq!(
            q.set_field("dpi", "200".into())
                .unwrap_err()
                .status_and_code()
                .1,
            "conflicting_option"
        );
        assert_eq!(
            q.set_field("colour", "x".into())
                .unwrap_err()
                .status_and_code()
                .1,
            "unknown_field"
        );
        q.set_field("pages", "1".into()).unwrap();
        assert_eq!(q.pages.as_deref(), Some("1"));
    }

    #[test]
    fn the_password_comes_from_the_header_never_the_query() {
        let headers = |values: &[&[u8]]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(
                    PASSWORD_HEADER,
                    axum::http::HeaderValue::from_bytes(v).unwrap(),
                );
            }
            h
        };
        let mut q = UploadQuery {
            password: Some("pw".into()),
            ..Default::default()
        };
        let e = q.password_from_header(&headers(&[])).unwrap_err();
        assert_eq!(e.status_and_code().1, "password_in_query");
        assert!(e.to_string().contains("X-Folio-Pdf-Password"));
        let mut q = UploadQuery::default();
        q.password_from_header(&headers(&[b"s3cret"])).unwrap();
        assert_eq!(q.password.as_deref(), Some("s3cret"));
        // And then the multipart field conflicts with it.
        let e = q.set_field("password", "x".into()).unwrap_err();
        assert_eq!(e.status_and_code().1, "conflicting_option");
        let mut q = UploadQuery::default();
        let e = q.password_from_header(&headers(&[b"a", b"b"])).unwrap_err();
        assert_eq!(e.status_and_code().1, "conflicting_option");
        let e = q
            .password_from_header(&headers(&[b"\xff\xfe"]))
            .unwrap_err();
        assert_eq!(e.status_and_code().1, "bad_password_header");
        let mut q = UploadQuery::default();
        q.password_from_header(&headers(&[])).unwrap();
        assert_eq!(q.password, None);
    }

    #[test]
    fn file_names_are_cleaned() {
        assert_eq!(
            clean_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(clean_file_name("a\u{0}b.pdf").as_deref(), Some("ab.pdf"));
        assert_eq!(clean_file_name(".."), None);
        assert_eq!(clean_file_name("dir/"), None);
    }
}
