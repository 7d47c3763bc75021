//! JSON that keeps its key order. Clients and scripts compare runc's output as text
//! (`events` is `{"type","id","data"}` in that order), so the matrix must see the order;
//! serde_json's `Value` sorts keys unless a crate-wide feature is switched on, which would
//! also change the runtime's own output. This small tree is parsed through serde's visitor
//! and rendered back in the order it was read.

use std::fmt::Write;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON document with object keys in their original order.
#[derive(Clone, Debug, PartialEq)]
pub enum OJson {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<OJson>),
    Obj(Vec<(String, OJson)>),
}

impl OJson {
    /// Parses one JSON document, or None when the text is not exactly one.
    pub fn parse(text: &str) -> Option<OJson> {
        serde_json::from_str(text).ok()
    }

    /// The document's shape: key names in order and value types, arrays as the set of
    /// their elements' shapes. Two outputs of "the same shape" differ only in values.
    pub fn shape(&self) -> String {
        match self {
            OJson::Null => "null".into(),
            OJson::Bool(_) => "bool".into(),
            OJson::Num(_) => "num".into(),
            OJson::Str(_) => "str".into(),
            OJson::Arr(items) => {
                let mut shapes: Vec<String> = Vec::new();
                for s in items.iter().map(OJson::shape) {
                    if !shapes.contains(&s) {
                        shapes.push(s);
                    }
                }
                format!("[{}]", shapes.join("|"))
            }
            OJson::Obj(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.shape()))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
        }
    }

    /// Compact text in the original key order, with every string and number passed
    /// through `leaf(key, text)` (the key of the enclosing field, "" inside arrays).
    pub fn render(&self, leaf: &dyn Fn(&str, &str) -> String) -> String {
        let mut out = String::new();
        self.render_into("", leaf, &mut out);
        out
    }

    fn render_into(&self, key: &str, leaf: &dyn Fn(&str, &str) -> String, out: &mut String) {
        match self {
            OJson::Null => out.push_str("null"),
            OJson::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            OJson::Num(n) => out.push_str(&leaf(key, n)),
            OJson::Str(s) => {
                let _ = write!(out, "{:?}", leaf(key, s));
            }
            OJson::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render_into("", leaf, out);
                }
                out.push(']');
            }
            OJson::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k:?}:");
                    v.render_into(k, leaf, out);
                }
                out.push('}');
            }
        }
    }

    /// The value at a path of object keys (array elements by decimal index).
    pub fn get(&self, path: &[&str]) -> Option<&OJson> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match self {
            OJson::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == first)
                .and_then(|(_, v)| v.get(rest)),
            OJson::Arr(items) => first
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .and_then(|v| v.get(rest)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for OJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OJsonVisitor)
    }
}

struct OJsonVisitor;

impl<'de> Visitor<'de> for OJsonVisitor {
    type Value = OJson;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<OJson, E> {
        Ok(OJson::Null)
    }
    fn visit_none<E>(self) -> Result<OJson, E> {
        Ok(OJson::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<OJson, E> {
        Ok(OJson::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<OJson, E> {
        Ok(OJson::Num(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<OJson, E> {
        Ok(OJson::Num(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<OJson, E> {
        Ok(OJson::Num(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<OJson, E> {
        Ok(OJson::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<OJson, E> {
        Ok(OJson::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OJson, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(OJson::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OJson, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, OJson>()? {
            fields.push((k, v));
        }
        Ok(OJson::Obj(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_renders_shapes() {
        let j = OJson::parse(r#"{"type":"stats","id":"x","data":{"b":[1,2],"a":null}}"#).unwrap();
        assert_eq!(j.shape(), "{type:str,id:str,data:{b:[num],a:null}}");
        let sorted = OJson::parse(r#"{"data":{},"id":"x","type":"stats"}"#).unwrap();
        assert_ne!(j.shape(), sorted.shape());
        assert_eq!(
            j.render(&|_, s| s.to_string()),
            r#"{"type":"stats","id":"x","data":{"b":[1,2],"a":null}}"#
        );
        assert_eq!(j.get(&["data", "b", "1"]), Some(&OJson::Num("2".into())));
    }
}
