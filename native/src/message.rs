//! Reading a correlation message (`responder.streams.records.read`) in one pass: the header is
//! parsed here and each record becomes its `(key, WindowEvent)` directly, without the header's
//! lists as Python objects in between. Only the shape ingest writes is taken (string keys,
//! source, id and type; an integer rank; a number for the time); anything else, valid or not,
//! is left to the Python reader (None), which decides and words any error. The compiled
//! correlation engine (`windows.rs`) reads messages with the same `parse`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::json::{self, Value};

const MAGIC: &[u8] = b"RSP3";

/// One event of a message as its records share it.
pub struct Head<'a> {
    pub raw: &'a [u8],
    pub source: String,
    pub id: String,
    pub kind: String,
    pub rank: Value, // an integer
    pub time: Value, // a number
}

/// One record: its group key, its event's index in `heads`, its counted value (if any).
pub struct Record {
    pub key: String,
    pub head: usize,
    pub counted: Option<Value>,
}

/// A message of the shape ingest writes.
pub struct Message<'a> {
    pub progress: Vec<(i128, Option<Value>)>, // None: the partition's newest time is null
    pub heads: Vec<Head<'a>>,
    pub records: Vec<Record>,
}

/// A JSON value as orjson.loads gives it.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
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

fn is_number(value: &Value) -> bool {
    matches!(value, Value::Int(_) | Value::Float(_))
}

/// The message, or None: not the shape ingest writes (the Python reader decides).
pub fn parse(value: &[u8]) -> Option<Message<'_>> {
    let (header, base) = split(value)?;
    let Some(Value::Object(fields, _)) = json::parse(header) else {
        return None;
    };
    let (mut wm, mut docs, mut recs) = (None, None, None);
    for (name, field) in fields {
        match name.as_str() {
            "wm" => wm = Some(field),
            "docs" => docs = Some(field),
            "recs" => recs = Some(field),
            _ => return None,
        }
    }
    let mut progress = Vec::new();
    match wm {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Array(pair) = item else {
                    return None;
                };
                let [Value::Int(p), newest] = <[Value; 2]>::try_from(pair).ok()? else {
                    return None;
                };
                let newest = match newest {
                    Value::Null => None,
                    other if is_number(&other) => Some(other),
                    _ => return None,
                };
                progress.push((p, newest));
            }
        }
        Some(_) => return None,
    }
    let (Some(Value::Array(docs)), Some(Value::Array(recs))) = (docs, recs) else {
        return None;
    };
    let mut heads = Vec::with_capacity(docs.len());
    for head in docs {
        let Value::Array(head) = head else {
            return None;
        };
        let [Value::Int(offset), Value::Int(length), source, id, kind, rank, time] =
            <[Value; 7]>::try_from(head).ok()?
        else {
            return None;
        };
        let start = base as i128 + offset;
        if offset < 0 || length < 0 || start + length > value.len() as i128 {
            return None;
        }
        let (Some(source), Some(id), Some(kind)) =
            (source.into_text(), id.into_text(), kind.into_text())
        else {
            return None;
        };
        if !matches!(rank, Value::Int(_)) || !is_number(&time) {
            return None;
        }
        let (start, end) = (start as usize, (start + length) as usize);
        heads.push(Head {
            raw: &value[start..end],
            source,
            id,
            kind,
            rank,
            time,
        });
    }
    let mut records = Vec::with_capacity(recs.len());
    for rec in recs {
        let Value::Array(rec) = rec else {
            return None;
        };
        let mut items = rec.into_iter();
        let (Some(Value::Str(key)), Some(Value::Int(index))) = (items.next(), items.next()) else {
            return None;
        };
        let counted = items.next();
        if items.next().is_some() {
            return None;
        }
        let head = usize::try_from(index).ok().filter(|&i| i < heads.len())?;
        records.push(Record { key, head, counted });
    }
    Some(Message {
        progress,
        heads,
        records,
    })
}

/// (records, progress) as `records.read` returns them, or None: Python reads it.
pub fn read<'py>(
    py: Python<'py>,
    value: &[u8],
    window_event: &Bound<'py, PyAny>,
    missing: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyList>, Bound<'py, PyList>)>> {
    let Some(message) = parse(value) else {
        return Ok(None);
    };
    let progress = progress_list(py, &message.progress)?;
    // each event once: (raw, source, id, type, rank, time) as the records share them
    let mut heads: Vec<[Bound<'py, PyAny>; 6]> = Vec::with_capacity(message.heads.len());
    for head in &message.heads {
        heads.push([
            PyBytes::new(py, head.raw).into_any(),
            PyString::new(py, &head.source).into_any(),
            PyString::new(py, &head.id).into_any(),
            PyString::new(py, &head.kind).into_any(),
            to_python(py, &head.rank)?,
            to_python(py, &head.time)?,
        ]);
    }
    let out = PyList::empty(py);
    let minus_one = (-1i64).into_pyobject(py)?.into_any();
    let none = py.None().into_bound(py);
    for rec in &message.records {
        let counted = match &rec.counted {
            Some(v) => to_python(py, v)?,
            None => missing.clone(),
        };
        let [raw, source, id, kind, rank, time] = &heads[rec.head];
        let event = window_event.call1((
            time, &minus_one, source, id, kind, rank, counted, &none, raw,
        ))?;
        out.append(PyTuple::new(
            py,
            [PyString::new(py, &rec.key).into_any(), event],
        )?)?;
    }
    Ok(Some((out, progress)))
}

/// The input progress as `records.read` returns it: (partition, newest time or None) pairs.
pub fn progress_list<'py>(
    py: Python<'py>,
    progress: &[(i128, Option<Value>)],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for (p, newest) in progress {
        let newest = match newest {
            None => py.None().into_bound(py),
            Some(n) => to_python(py, n)?,
        };
        out.append(PyTuple::new(py, [p.into_pyobject(py)?.into_any(), newest])?)?;
    }
    Ok(out)
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
