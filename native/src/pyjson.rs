//! Python values written as JSON, without a round trip through Python's `json`: plain JSON
//! data only (exact str, int, bool, None, finite float, list, dict with str keys), in one of
//! two styles (`Style`); anything else answers false and the caller leaves the value to
//! Python.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::json::{write_float, write_str};

/// How a value is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, floats by
    /// their `repr` as `json` writes them: the audit chain's canonical text.
    Canonical,
    /// What `storage.database.column_json` writes (orjson: keys in their order, orjson's
    /// floats): a JSON column's text.
    Column,
}

const MAX_DEPTH: usize = 200; // deeper data is left to Python (and its recursion limit)

/// Writes `value` as JSON in `style`; false where it is not plain JSON data.
pub fn write_value(
    out: &mut Vec<u8>,
    value: &Bound<'_, PyAny>,
    style: Style,
    depth: usize,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if value.is_exact_instance_of::<PyString>() {
        let Some(text) = exact_str(value) else {
            return false; // a lone surrogate: UTF-8 cannot carry it
        };
        write_str(out, text);
    } else if value.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if value.is_truthy().unwrap_or(false) {
            b"true"
        } else {
            b"false"
        });
    } else if value.is_exact_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<i64>() {
            out.extend_from_slice(n.to_string().as_bytes());
        } else if let Ok(n) = value.extract::<u64>() {
            out.extend_from_slice(n.to_string().as_bytes()); // (orjson writes these too)
        } else if style == Style::Canonical {
            // int.__repr__, as json writes it (past Python's digit limit it raises, and
            // Python's path raises the same)
            match value.repr() {
                Ok(text) => out.extend_from_slice(text.to_string().as_bytes()),
                Err(_) => return false,
            }
        } else {
            // orjson refuses it: `column_json` writes the whole value with json, its own
            // spacing and escapes, which only Python's path gives byte for byte
            return false;
        }
    } else if value.is_exact_instance_of::<PyFloat>() {
        let Ok(f) = value.extract::<f64>() else {
            return false;
        };
        if !f.is_finite() {
            return false;
        }
        if style == Style::Column {
            write_float(out, f);
        } else {
            match value.repr() {
                Ok(text) => out.extend_from_slice(text.to_string().as_bytes()), // float.__repr__
                Err(_) => return false,
            }
        }
    } else if value.is_exact_instance_of::<PyList>() {
        let Ok(list) = value.downcast::<PyList>() else {
            return false;
        };
        out.push(b'[');
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if !write_value(out, &item, style, depth + 1) {
                return false;
            }
        }
        out.push(b']');
    } else if value.is_exact_instance_of::<PyDict>() {
        let Ok(dict) = value.downcast::<PyDict>() else {
            return false;
        };
        return write_dict(out, dict, style, depth);
    } else {
        return false;
    }
    true
}

fn write_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, style: Style, depth: usize) -> bool {
    out.push(b'{');
    if style == Style::Column {
        for (i, (key, value)) in dict.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if !write_key(out, &key) || !write_value(out, &value, style, depth + 1) {
                return false;
            }
        }
        out.push(b'}');
        return true;
    }
    let mut items = Vec::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let Some(name) = exact_str(&key) else {
            return false;
        };
        items.push((name.to_owned(), value));
    }
    // code point order, as Python sorts str keys: UTF-8 bytes sort the same way
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        if !write_value(out, value, style, depth + 1) {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// A dict key and its colon; false for a key that is not an exact str (or not UTF-8).
fn write_key(out: &mut Vec<u8>, key: &Bound<'_, PyAny>) -> bool {
    let Some(name) = exact_str(key) else {
        return false;
    };
    write_str(out, name);
    out.push(b':');
    true
}

/// The text of an exact str (not a subclass); None for anything else, or a str with a lone
/// surrogate (UTF-8 cannot carry it).
pub fn exact_str<'a>(value: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !value.is_exact_instance_of::<PyString>() {
        return None;
    }
    value.downcast::<PyString>().ok()?.to_str().ok()
}
