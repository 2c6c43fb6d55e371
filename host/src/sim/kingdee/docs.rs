//! Documents kept as JSON (PUR_PurchaseOrder, SAL_OUTSTOCK): a list per form
//! with lookups by FID and bill number and a case-insensitive index of every
//! scalar header value, so a marker-field query (`F_X_PoNo = 'PO-1'`) costs
//! the same with 10 documents or 100,000, as on a real database.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::forms::FieldPlace;

/// One form's documents.
#[derive(Default)]
pub struct DocTable {
    pub docs: Vec<Value>,
    by_fid: HashMap<i64, usize>,
    by_number: HashMap<String, usize>,
    /// lowercase field path → lowercase value → positions (may hold stale
    /// positions after an update: candidates are always re-checked). A set:
    /// every Submit and Audit re-indexes the whole document, and a list grew
    /// by one duplicate per unchanged field each time.
    index: HashMap<String, HashMap<String, BTreeSet<usize>>>,
}

/// A key of a JSON object, found without regard to case.
pub fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Follows a `.`-path below a value; a base-data reference read without a
/// path gives its number, as integrations expect (`FSupplierId` → `VEN01`).
pub fn sub_value(v: Option<&Value>, sub: Option<&str>) -> Value {
    let Some(v) = v else { return Value::Null };
    match sub {
        Some(path) => {
            let mut cur = v;
            for part in path.split('.') {
                match cur.as_object().and_then(|m| get_ci(m, part)) {
                    Some(n) => cur = n,
                    None => return Value::Null,
                }
            }
            cur.clone()
        }
        None => match v.as_object() {
            Some(m) => ["FNumber", "FNUMBER", "FCODE", "FName"]
                .iter()
                .find_map(|k| get_ci(m, k).cloned())
                .unwrap_or(Value::Null),
            None => v.clone(),
        },
    }
}

/// A field of a document row (header, or header plus one entry).
pub fn doc_value(doc: &Value, entry: Option<&Value>, place: &FieldPlace) -> Value {
    match place {
        FieldPlace::Header(name, sub) => sub_value(doc.as_object().and_then(|m| get_ci(m, name)), sub.as_deref()),
        FieldPlace::Entry(name, sub) => {
            sub_value(entry.and_then(Value::as_object).and_then(|m| get_ci(m, name)), sub.as_deref())
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Read access as a list, in creation order (what tests inspect).
impl std::ops::Deref for DocTable {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.docs
    }
}

impl DocTable {
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn by_fid(&self, fid: i64) -> Option<usize> {
        self.by_fid.get(&fid).copied()
    }

    pub fn by_number(&self, number: &str) -> Option<usize> {
        self.by_number.get(number).copied()
    }

    /// Adds a document (with its FID and FBillNo set).
    pub fn insert(&mut self, doc: Value) -> usize {
        let pos = self.docs.len();
        self.docs.push(doc);
        self.reindex(pos);
        pos
    }

    /// Records a document's current values after an update.
    pub fn reindex(&mut self, pos: usize) {
        let Some(m) = self.docs[pos].as_object() else { return };
        if let Some(fid) = get_ci(m, "FID").and_then(Value::as_i64) {
            self.by_fid.insert(fid, pos);
        }
        if let Some(n) = get_ci(m, "FBillNo").and_then(Value::as_str) {
            self.by_number.insert(n.to_string(), pos);
        }
        for (k, v) in m {
            let key = k.to_ascii_lowercase();
            let mut add = |path: String, v: &Value| {
                if let Some(t) = text(v) {
                    self.index.entry(path).or_default().entry(t).or_default().insert(pos);
                }
            };
            match v {
                Value::Object(sub) => {
                    for (sk, sv) in sub {
                        add(format!("{key}.{}", sk.to_ascii_lowercase()), sv);
                    }
                    if let Some(n) = ["FNumber", "FNUMBER", "FCODE"].iter().find_map(|x| get_ci(sub, x)) {
                        add(key.clone(), n);
                    }
                }
                // Entry rows: their scalar fields, under `entry:<field>` (a
                // query names an entry field without its entity).
                Value::Array(rows) => {
                    for row in rows.iter().filter_map(Value::as_object) {
                        for (ek, ev) in row {
                            if !ev.is_object() && !ev.is_array() {
                                add(format!("entry:{}", ek.to_ascii_lowercase()), ev);
                            }
                        }
                    }
                }
                other => add(key.clone(), other),
            }
        }
    }

    /// Sets one header scalar (a status, a date) and indexes its new value.
    /// Submit and Audit change a field or two of a document with dozens:
    /// re-indexing all of it was most of their cost.
    pub fn set_scalar(&mut self, pos: usize, key: &str, value: Value) {
        let Some(m) = self.docs.get_mut(pos).and_then(Value::as_object_mut) else { return };
        if let Some(t) = text(&value) {
            self.index.entry(key.to_ascii_lowercase()).or_default().entry(t).or_default().insert(pos);
        }
        m.insert(key.to_string(), value);
        if key.eq_ignore_ascii_case("FID") || key.eq_ignore_ascii_case("FBillNo") {
            self.reindex(pos);
        }
    }

    /// Removes a document; positions shift, so everything is re-indexed.
    pub fn remove(&mut self, pos: usize) -> Value {
        let doc = self.docs.remove(pos);
        self.by_fid.clear();
        self.by_number.clear();
        self.index.clear();
        for p in 0..self.docs.len() {
            self.reindex(p);
        }
        doc
    }

    /// Positions that may match `path = value` (a superset), or `None` when
    /// the field is not indexed (an entry field): scan everything.
    pub fn candidates(&self, place: &FieldPlace, value: &str) -> Option<Vec<usize>> {
        let (name, sub) = match place {
            FieldPlace::Header(name, sub) => (name, sub),
            FieldPlace::Entry(name, None) => {
                if value.trim().parse::<f64>().is_ok() || crate::erp::time::parse(value).is_some() {
                    return None;
                }
                let path = format!("entry:{}", name.to_ascii_lowercase());
                return Some(self.positions(&path, value));
            }
            FieldPlace::Entry(..) => return None,
        };
        if name == "FID" && sub.is_none() {
            // '200001.0' is 200001 to a numeric column; not a number: no row.
            let id = value.trim().parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.is_finite());
            return Some(id.and_then(|f| self.by_fid(f as i64)).into_iter().collect());
        }
        // Numbers and dates compare by value ('1' = 1.0, 'T' = ' '): scan.
        if value.trim().parse::<f64>().is_ok() || crate::erp::time::parse(value).is_some() {
            return None;
        }
        let path = match sub {
            Some(s) => format!("{}.{}", name.to_ascii_lowercase(), s.to_ascii_lowercase()),
            None => name.to_ascii_lowercase(),
        };
        Some(self.positions(&path, value))
    }

    /// The indexed positions of `path = value`, in creation order.
    fn positions(&self, path: &str, value: &str) -> Vec<usize> {
        self.index
            .get(path)
            .and_then(|m| m.get(&value.to_lowercase()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}
