//! The JSON object in an answer: fenced (```` ```json ````) or bare, with text around it.

use serde_json::Value;

use super::PageParseError;

/// The first JSON object of `text`. Text before or after it is dropped with a warning; when
/// `truncated` and no whole object is there, the answer was cut: [`PageParseError::Truncated`].
pub fn extract_json(
    text: &str,
    truncated: bool,
    warnings: &mut Vec<String>,
) -> Result<Value, PageParseError> {
    let body = unfence(text);
    let Some(start) = body.find('{') else {
        return Err(if truncated {
            PageParseError::Truncated
        } else {
            PageParseError::Malformed("no JSON object in the answer".into())
        });
    };
    let mut stream = serde_json::Deserializer::from_str(&body[start..]).into_iter::<Value>();
    match stream.next() {
        Some(Ok(value)) => {
            let rest = body[start + stream.byte_offset()..].trim();
            if !body[..start].trim().is_empty() || !rest.is_empty() {
                warnings.push("text around the JSON answer was ignored".into());
            }
            if truncated {
                warnings.push("the answer hit the token budget after a complete JSON value".into());
            }
            Ok(value)
        }
        Some(Err(e)) if e.is_eof() => Err(if truncated {
            PageParseError::Truncated
        } else {
            PageParseError::Malformed(format!("the JSON answer is incomplete: {e}"))
        }),
        Some(Err(e)) => Err(PageParseError::Malformed(format!("invalid JSON: {e}"))),
        None => Err(PageParseError::Malformed(
            "no JSON object in the answer".into(),
        )),
    }
}

/// The inside of the first ```` ``` ```` fence, or `text` itself when there is none. An
/// unclosed fence runs to the end.
fn unfence(text: &str) -> &str {
    let Some(open) = text.find("```") else {
        return text;
    };
    let after = &text[open + 3..];
    // Skip the info string (`json`) up to the end of the line.
    let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
    let info = after[..body_start].trim();
    let body = if info.starts_with('{') {
        after
    } else {
        &after[body_start..]
    };
    match body.find("```") {
        Some(close) => &body[..close],
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_bare_and_surrounded_json() {
        let mut w = Vec::new();
        let v = extract_json("```json\n{\"a\": 1}\n```", false, &mut w).expect("fenced");
        assert_eq!(v["a"], 1);
        assert!(w.is_empty());
        let v = extract_json("Here it is: {\"a\": [1, 2]} hope it helps", false, &mut w)
            .expect("surrounded");
        assert_eq!(v["a"][1], 2);
        assert_eq!(w.len(), 1);
        let v = extract_json("```{\"a\": 2}```", false, &mut w).expect("inline fence");
        assert_eq!(v["a"], 2);
    }

    #[test]
    fn cut_and_broken_json_are_errors() {
        let mut w = Vec::new();
        assert_eq!(
            extract_json("{\"a\": [1, 2", true, &mut w),
            Err(PageParseError::Truncated)
        );
        assert!(matches!(
            extract_json("{\"a\": [1, 2", false, &mut w),
            Err(PageParseError::Malformed(_))
        ));
        assert!(matches!(
            extract_json("{\"a\": nope}", false, &mut w),
            Err(PageParseError::Malformed(_))
        ));
        assert!(matches!(
            extract_json("no json here", false, &mut w),
            Err(PageParseError::Malformed(_))
        ));
    }
}
