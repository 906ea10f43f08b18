//! Rows in COPY's text format (`storage.bulk.insert_rows` on PostgreSQL): tab-separated
//! columns, a line a row, `\N` for NULL, backslash escapes; JSON columns written from the
//! Python value (`pyjson`), the others as the driver writes them as text. A value of any
//! other type answers None and the driver writes the rows instead.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::pyjson::{exact_str, write_value, Style};

/// A text column as COPY's text format carries it, escaped as the driver escapes it (false: a
/// NUL, which PostgreSQL refuses). Runs of plain bytes are copied whole.
pub fn copy_text(out: &mut Vec<u8>, text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            0 => return false,
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b", // (the driver escapes these three too)
            0x0b => b"\\v",
            0x0c => b"\\f",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    true
}

/// JSON text (`pyjson::write_value`'s) as COPY's text format carries it: its strings escape
/// every control character, so a backslash is the only byte COPY escapes in it.
pub fn copy_json(out: &mut Vec<u8>, json: &[u8]) {
    let mut start = 0;
    for (i, &b) in json.iter().enumerate() {
        if b == b'\\' {
            out.extend_from_slice(&json[start..=i]);
            out.push(b'\\');
            start = i + 1;
        }
    }
    out.extend_from_slice(&json[start..]);
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
    let module = py.import("datetime")?;
    let datetime = module.getattr("datetime")?;
    let utc = module.getattr("timezone")?.getattr("utc")?;
    let keys: Vec<Bound<'py, PyString>> = names.iter().map(|n| PyString::new(py, n)).collect();
    let mut out = Vec::with_capacity(rows.len() * 256);
    let mut scratch = Vec::with_capacity(1024);
    let mut cache = Texts {
        datetime,
        utc,
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

/// The datetime type, UTC, and the text of the last datetime written: a batch's rows share
/// some of their times (`str()` of a datetime costs more than the rest of a row).
struct Texts<'py> {
    datetime: Bound<'py, PyAny>,
    utc: Bound<'py, PyAny>,
    last: Option<(Bound<'py, PyAny>, String)>,
}

/// `str()` of an exact datetime in UTC (`tzinfo is datetime.timezone.utc`), written from its
/// fields (`2026-01-02 03:04:05.000006+00:00`; no fraction when the microsecond is 0): a
/// quarter of the cost of `str()` here. None for any other datetime: `str()` writes those.
fn utc_text(value: &Bound<'_, PyAny>, utc: &Bound<'_, PyAny>) -> Option<String> {
    let py = value.py();
    if !value.getattr(intern!(py, "tzinfo")).ok()?.is(utc) {
        return None;
    }
    let field = |name: &Bound<'_, PyString>| value.getattr(name).ok()?.extract::<u32>().ok();
    let year = field(intern!(py, "year"))?;
    let month = field(intern!(py, "month"))?;
    let day = field(intern!(py, "day"))?;
    let hour = field(intern!(py, "hour"))?;
    let minute = field(intern!(py, "minute"))?;
    let second = field(intern!(py, "second"))?;
    let micro = field(intern!(py, "microsecond"))?;
    let mut text = format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
    if micro != 0 {
        text.push_str(&format!(".{micro:06}"));
    }
    text.push_str("+00:00");
    Some(text)
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
        copy_json(out, scratch);
        return true;
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
        let text = match utc_text(value, &cache.utc) {
            Some(text) => text,
            None => match value.str() {
                Ok(text) => text.to_string(),
                Err(_) => return false,
            },
        };
        let written = copy_text(out, &text);
        cache.last = Some((value.clone(), text));
        return written;
    } else {
        return false;
    }
    true
}
