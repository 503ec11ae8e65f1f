//! The serialisation used for every JSON object Folio stores: pretty, stable field order,
//! trailing newline — so that writing the same value twice gives the same bytes.

use bytes::Bytes;

/// `value` as stored JSON.
pub fn to_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_else(|e| {
        // Our types contain no maps with non-string keys and no failing Serialize impls.
        unreachable!("schema types always serialise: {e}")
    });
    v.push(b'\n');
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_with_trailing_newline() {
        let v = serde_json::json!({"b": 1, "a": [true]});
        let out = to_bytes(&v);
        assert!(out.ends_with(b"}\n"));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            v
        );
    }
}
