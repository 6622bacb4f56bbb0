//! RFC 8785 canonical JSON for the values draw-v1 and the log hash: strings, non-negative
//! integers below 2^53, booleans, null, arrays and objects.
//!
//! Written out rather than left to `serde_json::to_vec`: serde_json sorts object keys only while
//! its `preserve_order` feature is off, and any crate in a build can switch that on. Key order
//! here is explicit, by UTF-16 code units as RFC 8785 requires.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JcsError {
    #[error("number {0} is not a non-negative integer below 2^53")]
    Number(String),
}

/// The canonical bytes of `value`.
pub fn canonical(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match n.as_u64() {
            Some(u) if u < (1 << 53) => out.extend_from_slice(u.to_string().as_bytes()),
            _ => return Err(JcsError::Number(n.to_string())),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Minimal escaping: `"`, `\` and control characters; `\b \t \n \f \r` short, the other
/// controls as `\u00xx` in lowercase hex. Everything else, non-ASCII included, as is.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Whether a JSON text repeats a key within one object. RFC 8259 leaves such text open to
/// interpretation (serde_json keeps the last value, other parsers the first), so a verifier
/// refuses it rather than guess which value was meant.
pub fn has_duplicate_keys(text: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Check(bool);

    impl<'de> Deserialize<'de> for Check {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Check, D::Error> {
            d.deserialize_any(CheckVisitor)
        }
    }

    struct CheckVisitor;

    impl<'de> Visitor<'de> for CheckVisitor {
        type Value = Check;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_str<E>(self, _: &str) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_unit<E>(self) -> Result<Check, E> {
            Ok(Check(false))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Check, A::Error> {
            let mut dup = false;
            while let Some(Check(d)) = seq.next_element()? {
                dup |= d;
            }
            Ok(Check(dup))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Check, A::Error> {
            let mut keys = std::collections::HashSet::new();
            let mut dup = false;
            while let Some(key) = map.next_key::<String>()? {
                dup |= !keys.insert(key);
                dup |= map.next_value::<Check>()?.0;
            }
            Ok(Check(dup))
        }
    }

    let mut de = serde_json::Deserializer::from_slice(text);
    Check::deserialize(&mut de).map(|c| c.0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(v: Value) -> String {
        String::from_utf8(canonical(&v).unwrap()).unwrap()
    }

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        assert_eq!(
            text(json!({"b": [1, 2], "a": {"d": null, "c": true}})),
            r#"{"a":{"c":true,"d":null},"b":[1,2]}"#
        );
    }

    #[test]
    fn strings_are_escaped_minimally() {
        assert_eq!(
            text(json!("a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}/é骰\u{7f}")),
            "\"a\\\"b\\\\c\\b\\t\\n\\f\\r\\u0001\\u001f/é骰\u{7f}\""
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+E000 sorts after U+1F600 in UTF-8 byte order, before it in UTF-16 (surrogates).
        assert_eq!(
            text(json!({"\u{1F600}": 1, "\u{E000}": 2})),
            "{\"\u{1F600}\":1,\"\u{E000}\":2}"
        );
    }

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert!(!has_duplicate_keys(
            br#"{"a":1,"b":{"c":[{"d":1},{"d":2}]}}"#
        ));
        assert!(has_duplicate_keys(br#"{"a":1,"a":2}"#));
        assert!(has_duplicate_keys(br#"{"x":[{"k":"v","k":"w"}]}"#));
    }

    #[test]
    fn only_safe_integers_are_accepted() {
        assert!(canonical(&json!(-1)).is_err());
        assert!(canonical(&json!(1.5)).is_err());
        assert!(canonical(&json!(1u64 << 53)).is_err());
        assert_eq!(text(json!((1u64 << 53) - 1)), "9007199254740991");
    }
}
