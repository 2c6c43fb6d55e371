//! Field mapping between our JSON shape and a supplier's: rename object keys
//! recursively, and translate status words. Driven by plugin config so one
//! adapter serves many suppliers with similar APIs.

use std::collections::BTreeMap;

use serde_json::Value;

/// Renames object keys (at any depth) from `ours → theirs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyMap {
    forward: BTreeMap<String, String>,
    backward: BTreeMap<String, String>,
}

impl KeyMap {
    /// A map from our key names to the supplier's.
    pub fn new(ours_to_theirs: BTreeMap<String, String>) -> KeyMap {
        let backward = ours_to_theirs.iter().map(|(a, b)| (b.clone(), a.clone())).collect();
        KeyMap { forward: ours_to_theirs, backward }
    }

    /// Our shape → the supplier's (outgoing bodies).
    pub fn to_theirs(&self, v: Value) -> Value {
        rename(v, &self.forward)
    }

    /// The supplier's shape → ours (incoming bodies).
    pub fn to_ours(&self, v: Value) -> Value {
        rename(v, &self.backward)
    }
}

fn rename(v: Value, map: &BTreeMap<String, String>) -> Value {
    if map.is_empty() {
        return v;
    }
    match v {
        Value::Object(obj) => {
            Value::Object(obj.into_iter().map(|(k, v)| (map.get(&k).cloned().unwrap_or(k), rename(v, map))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|v| rename(v, map)).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_both_ways_at_any_depth() {
        let map = KeyMap::new(BTreeMap::from([
            ("external_id".to_string(), "orderNo".to_string()),
            ("sku".to_string(), "goodsCode".to_string()),
        ]));
        let ours = serde_json::json!({"external_id": "PO1", "items": [{"sku": "A", "qty": 2}]});
        let theirs = map.to_theirs(ours.clone());
        assert_eq!(theirs, serde_json::json!({"orderNo": "PO1", "items": [{"goodsCode": "A", "qty": 2}]}));
        assert_eq!(map.to_ours(theirs), ours);
    }
}
