//! `Debug` formatters for fields that must not show in logs (passwords, secrets, free text) or
//! that are too large to show, used with `#[derive(custom_debug::Debug)]` and `#[debug(with = ...)]`.

use std::fmt;

/// `Some("<redacted>")` or `None`: whether a secret was given, never its value.
pub(crate) fn secret(value: &Option<String>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Debug::fmt(&value.as_ref().map(|_| "<redacted>"), f)
}

/// The length of an optional text in bytes (a prompt), not the text.
pub(crate) fn text_len(value: &Option<String>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Debug::fmt(&value.as_ref().map(String::len), f)
}

/// The length of a body in bytes.
pub(crate) fn byte_len(value: &bytes::Bytes, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Debug::fmt(&value.len(), f)
}

#[cfg(test)]
mod tests {
    #[derive(custom_debug::Debug)]
    struct Form {
        #[debug(with = super::secret)]
        password: Option<String>,
        #[debug(with = super::text_len)]
        prompt: Option<String>,
        #[debug(with = super::byte_len)]
        body: bytes::Bytes,
    }

    #[test]
    fn secrets_and_texts_do_not_show() {
        let form = Form {
            password: Some("hunter2".into()),
            prompt: Some("what is the total?".into()),
            body: bytes::Bytes::from_static(b"%PDF-1.7"),
        };
        let shown = format!("{form:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("total"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>") && shown.contains("18") && shown.contains('8'));
        let none = Form {
            password: None,
            prompt: None,
            body: bytes::Bytes::new(),
        };
        assert!(!format!("{none:?}").contains("<redacted>"));
    }
}
