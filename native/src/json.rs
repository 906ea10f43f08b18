//! JSON values as the Python side sees them, read strictly and written as orjson writes them.
//!
//! Reading refuses (so the caller hands the document to Python) whatever Python could read
//! differently: a key twice in one object, an integral float of 2^63 or more (serde_json reads
//! an integer beyond 64 bits as a float; Python keeps it an integer), a negative zero (`-0` is
//! the integer 0 in Python). Integers are those of 64 bits, signed or not, as in Python's
//! carriable range (`responder.events.limits`).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    /// Its pairs in order and, for an object of more than `SMALL_OBJECT` keys, where each key is.
    Object(Vec<(String, Value)>, Option<Box<KeyIndex>>),
}

pub type KeyIndex = HashMap<String, usize>;

impl Value {
    /// An object of these pairs (keys distinct), indexed when large.
    pub fn object(items: Vec<(String, Value)>) -> Value {
        let index = (items.len() > SMALL_OBJECT).then(|| {
            Box::new(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect(),
            )
        });
        Value::Object(items, index)
    }

    /// The string this value is, or None.
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` of an object (a hash lookup where large, as Python's dict).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(items, Some(index)) => index.get(key).map(|&i| &items[i].1),
            Value::Object(items, None) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

const SMALL_OBJECT: usize = 12; // up to this many keys, lookups and duplicates are a scan

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v as i128))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v as i128))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if !v.is_finite() {
            return Err(E::custom("not a finite number"));
        }
        if v == 0.0 && v.is_sign_negative() {
            return Err(E::custom("negative zero: `-0` or `-0.0`"));
        }
        if v.fract() == 0.0 && v.abs() >= 9.223_372_036_854_776e18 {
            return Err(E::custom(
                "an integer beyond 64 bits, or a float written as one",
            ));
        }
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            out.push(item);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out: Vec<(String, Value)> = Vec::new();
        let mut index: Option<Box<KeyIndex>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = match index.as_mut() {
                Some(index) => index.insert(key.clone(), out.len()).is_some(),
                None => {
                    let found = out.iter().any(|(k, _)| *k == key);
                    if !found && out.len() == SMALL_OBJECT {
                        let mut built: KeyIndex = out
                            .iter()
                            .enumerate()
                            .map(|(i, (k, _))| (k.clone(), i))
                            .collect();
                        built.insert(key.clone(), out.len());
                        index = Some(Box::new(built));
                    }
                    found
                }
            };
            if duplicate {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value::<Value>()?;
            out.push((key, value));
        }
        Ok(Value::Object(out, index))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The document in `raw`, or None for anything this reader leaves to Python.
pub fn parse(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice(raw).ok()
}

/// Appends `value` as orjson writes it (compact, keys in order, its string escapes and floats).
pub fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Value::Object(items, _) => {
            out.push(b'{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A string as orjson escapes it: `"`, `\` and the C0 controls, nothing else.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escaped.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escaped);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A finite float as orjson writes it: the shortest digits that read back the same, in fixed
/// notation from 1e-5 up to below 1e16 (always with a fraction: `1.0`), else `1.5e+16`, `1e-7`.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let mut point = whole.len() as i32 + exponent; // the decimal point follows this many digits
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..leading);
    point -= leading as i32;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if negative {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
        return;
    }
    let x = point - 1; // value = d.ddd × 10^x
    if !(-5..16).contains(&x) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if x >= 0 { b'+' } else { b'-' });
        out.extend_from_slice(x.abs().to_string().as_bytes());
    } else if x >= 0 {
        let whole = (x + 1) as usize;
        for i in 0..whole {
            out.push(*digits.get(i).unwrap_or(&b'0'));
        }
        out.push(b'.');
        if digits.len() > whole {
            out.extend_from_slice(&digits[whole..]);
        } else {
            out.push(b'0');
        }
    } else {
        out.extend_from_slice(b"0.");
        for _ in 0..(-x - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(&digits);
    }
}
