//! Merging batch events that wait for the same topic: the batch rule applied across commits.
//!
//! A batch event's JSON is flat: its `type` and fields holding sorted, unique lists of ids
//! (`{"type":"list_update","order_ids":["a","b"]}`). Two such events of the same type merge
//! into one whose lists are the union of theirs, sorted, unique — what one commit changing all
//! of their rows would have sent. Anything else (fields that differ and are not lists, lists of
//! objects or of mixed kinds) does not merge, and the events leave one by one.

use serde_json::{Map, Value};

/// Builds one merged body from batch event bodies, in the order they are offered.
#[derive(Debug)]
pub(crate) struct Merger {
    /// The first body's keys, in their order in its text (`type` first).
    keys: Vec<String>,
    fields: Map<String, Value>,
}

impl Merger {
    /// Starts from `data`; `None` when it is not a flat object of scalars and lists of scalars.
    pub(crate) fn new(data: &str) -> Option<Self> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(data) else {
            return None;
        };
        if !fields.values().all(flat) {
            return None;
        }
        // `Map` sorts its keys; the wire keeps the declaration order, which is the order of
        // the keys in the text. Top-level keys are found by their quoted form followed by a
        // colon: with no nested object, nothing else in the text looks like that.
        let mut keys: Vec<(usize, String)> = fields
            .keys()
            .map(|key| {
                let quoted = format!("{}:", Value::String(key.clone()));
                (data.find(&quoted).unwrap_or(usize::MAX), key.clone())
            })
            .collect();
        keys.sort();
        Some(Self {
            keys: keys.into_iter().map(|(_, key)| key).collect(),
            fields,
        })
    }

    /// Adds `data` when it merges with what is there; returns whether it did.
    pub(crate) fn add(&mut self, data: &str) -> bool {
        let Ok(Value::Object(other)) = serde_json::from_str::<Value>(data) else {
            return false;
        };
        if other.len() != self.fields.len() || !other.values().all(flat) {
            return false;
        }
        let mut next = self.fields.clone();
        for (key, value) in other {
            match (next.get_mut(&key), value) {
                (Some(Value::Array(mine)), Value::Array(theirs)) => {
                    mine.extend(theirs);
                    if !sort_unique(mine) {
                        return false;
                    }
                }
                (Some(mine), theirs) if *mine == theirs => {}
                _ => return false,
            }
        }
        self.fields = next;
        true
    }

    /// The merged body, keys in the first body's order.
    pub(crate) fn finish(&self) -> String {
        let mut out = String::from("{");
        for (n, key) in self.keys.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(key.clone()).to_string());
            out.push(':');
            if let Some(value) = self.fields.get(key) {
                out.push_str(&value.to_string());
            }
        }
        out.push('}');
        out
    }
}

fn scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn flat(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(scalar),
        other => scalar(other) || other.is_null(),
    }
}

/// Sorts and deduplicates a list of strings or of numbers; `false` for anything else.
fn sort_unique(items: &mut Vec<Value>) -> bool {
    if items.iter().all(Value::is_string) {
        items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    } else if items.iter().all(Value::is_i64) {
        items.sort_by_key(Value::as_i64);
    } else if items.iter().all(Value::is_u64) {
        items.sort_by_key(Value::as_u64);
    } else {
        return false;
    }
    items.dedup();
    true
}

#[cfg(test)]
mod tests {
    use super::Merger;

    #[test]
    fn lists_are_united_sorted_and_unique_and_the_key_order_kept() {
        let mut merger =
            Merger::new(r#"{"type":"list_update","order_ids":["b","c"]}"#).expect("flat");
        assert!(merger.add(r#"{"type":"list_update","order_ids":["a","c"]}"#));
        assert_eq!(
            merger.finish(),
            r#"{"type":"list_update","order_ids":["a","b","c"]}"#
        );
    }

    #[test]
    fn numbers_sort_as_numbers_and_other_shapes_do_not_merge() {
        let mut merger = Merger::new(r#"{"type":"t","ids":[10,9]}"#).expect("flat");
        assert!(merger.add(r#"{"type":"t","ids":[2]}"#));
        assert_eq!(merger.finish(), r#"{"type":"t","ids":[2,9,10]}"#);
        assert!(!merger.add(r#"{"type":"other","ids":[1]}"#), "another type");
        assert!(!merger.add(r#"{"type":"t","ids":["x"]}"#), "mixed kinds");
        assert!(!merger.add(r#"{"type":"t"}"#), "another shape");
        assert!(
            Merger::new(r#"{"type":"t","o":{"a":1}}"#).is_none(),
            "nested"
        );
        assert_eq!(merger.finish(), r#"{"type":"t","ids":[2,9,10]}"#);
    }
}
