//! Rows in COPY's text format (`storage.bulk.insert_rows` on PostgreSQL): tab-separated
//! columns, a line a row, `\N` for NULL, backslash escapes; JSON columns written from the
//! Python value (`pyjson`), the others as the driver writes them as text. A value of any
//! other type answers None and the driver writes the rows instead.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::pyjson::{exact_str, write_value, Style};

/// A text column as COPY's text format carries it, escaped as the driver escapes it (false: a
/// NUL, which PostgreSQL refuses).
pub fn copy_text(out: &mut Vec<u8>, text: &str) -> bool {
    for &b in text.as_bytes() {
        match b {
            0 => return false,
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"), // (the driver escapes these three too)
            0x0b => out.extend_from_slice(b"\\v"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.push(b),
        }
    }
    true
}

/// `rows` (dicts holding every one of `names`) in COPY's text format, the columns in the order
/// of `names`; `json[i]`: column i is a JSON column (None is JSON's `null` there, as
/// SQLAlchemy writes it). None: a row or a value it does not take.
pub fn rows<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    names: &[String],
    json: &[bool],
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if json.len() != names.len() {
        return Err(PyValueError::new_err(
            "copy_rows: one json flag per column name",
        ));
    }
    let datetime = py.import("datetime")?.getattr("datetime")?;
    let keys: Vec<Bound<'py, PyString>> = names.iter().map(|n| PyString::new(py, n)).collect();
    let mut out = Vec::with_capacity(rows.len() * 256);
    let mut scratch = Vec::with_capacity(1024);
    let mut cache = Texts {
        datetime,
        last: None,
    };
    for row in rows.iter() {
        if !row.is_exact_instance_of::<PyDict>() {
            return Ok(None); // (a subclass may read its items its own way)
        }
        let Ok(dict) = row.downcast::<PyDict>() else {
            return Ok(None);
        };
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            let Some(value) = dict.get_item(key)? else {
                return Ok(None);
            };
            let is_json = json[i];
            if !column(&mut out, &mut scratch, &value, is_json, &mut cache) {
                return Ok(None);
            }
        }
        out.push(b'\n');
    }
    Ok(Some(PyBytes::new(py, &out)))
}

/// The datetime type, and the text of the last datetime written: a batch's rows share their
/// times (`str()` of a datetime costs more than the rest of a row).
struct Texts<'py> {
    datetime: Bound<'py, PyAny>,
    last: Option<(Bound<'py, PyAny>, String)>,
}

fn column<'py>(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    value: &Bound<'py, PyAny>,
    is_json: bool,
    cache: &mut Texts<'py>,
) -> bool {
    if is_json {
        scratch.clear();
        if !write_value(scratch, value, Style::Column, 0) {
            return false;
        }
        let Ok(text) = std::str::from_utf8(scratch) else {
            return false;
        };
        return copy_text(out, text);
    }
    if value.is_none() {
        out.extend_from_slice(b"\\N");
    } else if value.is_exact_instance_of::<PyString>() {
        let Some(text) = exact_str(value) else {
            return false;
        };
        return copy_text(out, text);
    } else if value.is_exact_instance_of::<PyBool>() {
        out.push(if value.is_truthy().unwrap_or(false) {
            b't'
        } else {
            b'f'
        });
    } else if value.is_exact_instance_of::<PyInt>() {
        let Ok(n) = value.extract::<i64>() else {
            return false;
        };
        out.extend_from_slice(n.to_string().as_bytes());
    } else if value.is_exact_instance_of::<PyFloat>() {
        let Ok(f) = value.extract::<f64>() else {
            return false;
        };
        if !f.is_finite() {
            return false;
        }
        let Ok(text) = value.repr() else {
            return false;
        };
        out.extend_from_slice(text.to_string().as_bytes());
    } else if value.get_type().is(&cache.datetime) {
        // as the driver writes a datetime: str(value), its offset included
        if let Some((last, text)) = &cache.last {
            if last.is(value) {
                return copy_text(out, text);
            }
        }
        let Ok(text) = value.str() else {
            return false;
        };
        let text = text.to_string();
        let written = copy_text(out, &text);
        cache.last = Some((value.clone(), text));
        return written;
    } else {
        return false;
    }
    true
}
