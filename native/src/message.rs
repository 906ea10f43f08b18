//! Reading a correlation message (`responder.streams.records.read`) in one pass: the header is
//! parsed here and each record becomes its `(key, WindowEvent)` directly, without the header's
//! lists as Python objects in between. Only the shape ingest writes is taken (string keys,
//! source, id and type; an integer rank; a number for the time); anything else, valid or not,
//! is left to the Python reader (None), which decides and words any error.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::json::{self, Value};

const MAGIC: &[u8] = b"RSP3";

/// A JSON value as orjson.loads gives it.
fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(items, _) => {
            let dict = PyDict::new(py);
            for (k, v) in items {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

fn number<'py>(py: Python<'py>, value: &Value) -> Option<PyResult<Bound<'py, PyAny>>> {
    match value {
        Value::Int(_) | Value::Float(_) => Some(to_python(py, value)),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// (records, progress) as `records.read` returns them, or None: Python reads it.
pub fn read<'py>(
    py: Python<'py>,
    value: &[u8],
    window_event: &Bound<'py, PyAny>,
    missing: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyList>, Bound<'py, PyList>)>> {
    let Some(parts) = split(value) else {
        return Ok(None);
    };
    let (header, base) = parts;
    let Some(Value::Object(fields, _)) = json::parse(header) else {
        return Ok(None);
    };
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    if fields
        .iter()
        .any(|(k, _)| !matches!(k.as_str(), "docs" | "recs" | "wm"))
    {
        return Ok(None);
    }
    let progress = PyList::empty(py);
    match field("wm") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Array(pair) = item else {
                    return Ok(None);
                };
                let [Value::Int(p), newest] = pair.as_slice() else {
                    return Ok(None);
                };
                let newest = match newest {
                    Value::Null => py.None().into_bound(py),
                    other => match number(py, other) {
                        Some(n) => n?,
                        None => return Ok(None),
                    },
                };
                progress.append(PyTuple::new(py, [p.into_pyobject(py)?.into_any(), newest])?)?;
            }
        }
        Some(_) => return Ok(None),
    }
    let (Some(Value::Array(docs)), Some(Value::Array(recs))) = (field("docs"), field("recs"))
    else {
        return Ok(None);
    };
    // each event once: (raw, source, id, type, rank, time) as the records share them
    let mut heads: Vec<[Bound<'py, PyAny>; 6]> = Vec::with_capacity(docs.len());
    for head in docs {
        let Value::Array(head) = head else {
            return Ok(None);
        };
        let [offset, length, source, id, kind, rank, time] = head.as_slice() else {
            return Ok(None);
        };
        let (Some(offset), Some(length)) = (int(offset), int(length)) else {
            return Ok(None);
        };
        let start = base as i128 + offset;
        if offset < 0 || length < 0 || start + length > value.len() as i128 {
            return Ok(None);
        }
        let (Some(source), Some(id), Some(kind)) = (text(source), text(id), text(kind)) else {
            return Ok(None);
        };
        let (Some(rank), Some(time)) = (int(rank).map(|_| rank), number(py, time)) else {
            return Ok(None);
        };
        let (start, end) = (start as usize, (start + length) as usize);
        heads.push([
            PyBytes::new(py, &value[start..end]).into_any(),
            PyString::new(py, source).into_any(),
            PyString::new(py, id).into_any(),
            PyString::new(py, kind).into_any(),
            to_python(py, rank)?,
            time?,
        ]);
    }
    let out = PyList::empty(py);
    let minus_one = (-1i64).into_pyobject(py)?.into_any();
    let none = py.None().into_bound(py);
    for rec in recs {
        let Value::Array(rec) = rec else {
            return Ok(None);
        };
        let (key, index, counted) = match rec.as_slice() {
            [Value::Str(key), Value::Int(index)] => (key, *index, None),
            [Value::Str(key), Value::Int(index), counted] => (key, *index, Some(counted)),
            _ => return Ok(None),
        };
        let Some(head) = usize::try_from(index).ok().and_then(|i| heads.get(i)) else {
            return Ok(None);
        };
        let counted = match counted {
            Some(v) => to_python(py, v)?,
            None => missing.clone(),
        };
        let [raw, source, id, kind, rank, time] = head;
        let event = window_event.call1((
            time, &minus_one, source, id, kind, rank, counted, &none, raw,
        ))?;
        out.append(PyTuple::new(
            py,
            [PyString::new(py, key).into_any(), event],
        )?)?;
    }
    Ok(Some((out, progress)))
}

/// (the header's bytes, where the events' bytes start), or None for a bad frame.
fn split(value: &[u8]) -> Option<(&[u8], usize)> {
    if value.len() < 8 || &value[..4] != MAGIC {
        return None;
    }
    let size = u32::from_be_bytes(value[4..8].try_into().ok()?) as usize;
    let end = 8usize.checked_add(size)?;
    (end <= value.len()).then(|| (&value[8..end], end))
}
