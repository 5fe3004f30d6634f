//! Header edits a route applies to one direction of an exchange: fields
//! removed, fields set (replacing the message's own).
//!
//! Built from config once; applying them is a case-insensitive name check
//! per field and one copy of pre-rendered lines. The config refuses rules
//! on hop-by-hop, framing and gateway-owned fields, so an edit can never
//! change how a message is framed or what the gateway itself asserts.

use super::head::eq_ci;
use crate::config::HeaderRules;

/// Header edits for one direction, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct HeaderEdits {
    /// Lower-cased names of fields dropped from the message: the `remove`
    /// list and every `set` name (a set field replaces the message's own).
    drop: Vec<Box<[u8]>>,
    /// The `set` fields as whole lines (`Name: value\r\n`), in config order.
    lines: Vec<u8>,
}

/// No edits (a route without header rules, or a caller without routes).
pub static NONE: HeaderEdits = HeaderEdits {
    drop: Vec::new(),
    lines: Vec::new(),
};

impl HeaderEdits {
    /// Compiles `rules`.
    pub fn new(rules: &HeaderRules) -> HeaderEdits {
        let mut drop: Vec<Box<[u8]>> = rules
            .remove
            .iter()
            .map(|n| n.to_ascii_lowercase().into_bytes().into_boxed_slice())
            .collect();
        let mut lines = Vec::new();
        for (name, value) in &rules.set {
            drop.push(name.to_ascii_lowercase().into_bytes().into_boxed_slice());
            lines.extend_from_slice(name.as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        drop.sort();
        drop.dedup();
        HeaderEdits { drop, lines }
    }

    /// Whether nothing is changed.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
    }

    /// Whether a field named `name` (any case) is dropped from the message.
    #[inline]
    pub fn drops(&self, name: &[u8]) -> bool {
        self.drop.iter().any(|d| eq_ci(d, name))
    }

    /// The `set` lines, to append after the message's own fields.
    #[inline]
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits_drop_set_and_removed_names_in_any_case() {
        let rules = HeaderRules {
            set: vec![("X-Route".into(), "users".into())],
            remove: vec!["x-debug".into()],
        };
        let e = HeaderEdits::new(&rules);
        assert!(e.drops(b"X-DEBUG") && e.drops(b"x-route") && !e.drops(b"x-other"));
        assert_eq!(e.lines(), b"X-Route: users\r\n");
        assert!(HeaderEdits::default().is_empty());
    }
}
