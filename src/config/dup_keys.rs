//! Duplicate keys in a JSON document, reported by path.
//!
//! `serde_json::Value` keeps the last of two equal keys and drops the first
//! without a word, so `{"limit": 10, ..., "limit": 1000}` would run with
//! 1000 while the operator reads 10. This pass walks the document with a
//! visitor that remembers the keys of each object (after unescaping, so
//! `"a"` and `"\u0061"` are the same key) and fails on the first repeat
//! with its JSON path: `rate_limit.limit: duplicate key`. Nesting depth is
//! bounded by serde_json's recursion limit.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// `Err("PATH: duplicate key (line L, column C)")` for the first repeated key.
pub fn check(text: &str) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let walked = Node {
        path: String::new(),
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    walked.map_err(|e| {
        // serde_json appends the position to a custom message; restate it
        // so the message still starts with the field.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let msg = full.strip_suffix(&suffix).unwrap_or(&full);
        format!("{msg} (line {}, column {})", e.line(), e.column())
    })
}

/// A value at `path` (empty for the document itself).
struct Node {
    path: String,
}

impl Node {
    fn child_key(&self, key: &str) -> Node {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Node { path }
    }
}

impl<'de> DeserializeSeed<'de> for Node {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(Node {
                path: format!("{}[{i}]", self.path),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child_key(&key);
            if !seen.insert(key) {
                return Err(de::Error::custom(format_args!(
                    "{}: duplicate key",
                    child.path
                )));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn finds_repeats_at_any_depth_and_names_them() {
        assert_eq!(check(r#"{"a": 1, "b": [1, {"c": null}]}"#), Ok(()));
        let e = check(r#"{"listen": "x", "listen": "y"}"#).unwrap_err();
        assert!(
            e.starts_with("listen: duplicate key (line 1, column "),
            "{e}"
        );
        let e = check("{\"rate_limit\": {\"limit\": 10,\n \"limit\": 1000}}").unwrap_err();
        assert!(
            e.starts_with("rate_limit.limit: duplicate key (line 2,"),
            "{e}"
        );
        let e = check(r#"{"backends": [{"addr": "a"}, {"addr": "a", "addr": "b"}]}"#).unwrap_err();
        assert!(e.starts_with("backends[1].addr: duplicate key"), "{e}");
        let e = check(r#"{"x": {"a": 1, "\u0061": 2}}"#).unwrap_err();
        assert!(e.starts_with("x.a: duplicate key"), "{e}");
        // Equal keys in different objects are fine.
        assert_eq!(check(r#"[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]"#), Ok(()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(check(&deep).is_err());
    }
}
