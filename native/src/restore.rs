//! A changelog entry read back into a window (`window.state_from_dict`), for the shape the flush
//! writes only: anything else, sound or not, is left to Python (None), which restores it or
//! words why not (the entry then goes to the dead-letter topic).
//!
//! What `state_from_dict` accepts and this takes: an object of exactly `events`, `incident`,
//! `max_time` and `next_seq`; each event `[time, seq, body]` with a finite number, an integer
//! and an object whose `source`, `id` and `type` are strings and `severity` a severity's name;
//! the incident null or an object of exactly the fields the flush writes, of their types;
//! `max_time` a finite number (null only for a window without events). Each body is written
//! back as orjson writes the parsed body, as `state_from_dict` does. Integer times (up to 2**53)
//! are carried as the same floats, and sequences and versions beyond 64 signed bits go to Python,
//! as does anything `json.rs` reads strictly (duplicate keys, -0, integers beyond 64 bits).

use crate::json::{self, Value};
use crate::rules::get_path;

use std::sync::Arc;

use crate::event::SEVERITIES;
const EXACT: i128 = 1 << 53; // integers a float carries exactly

pub struct Event {
    pub time: f64,
    pub seq: i64,
    pub source: String,
    pub id: String,
    pub kind: String,
    pub severity: i64,
    pub value: Option<Value>, // None: MISSING
    pub raw: Arc<[u8]>,
}

pub struct Incident {
    pub id: String,
    pub title: String,
    pub severity: i64,
    pub first_seen: f64,
    pub last_seen: f64,
    pub version: i64,
    pub event_keys: Vec<(String, String)>,
}

pub struct Window {
    pub events: Vec<Event>,
    pub incident: Option<Incident>,
    pub max_time: f64,
    pub next_seq: i64,
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Float(f) if f.is_finite() => Some(*f),
        Value::Int(i) if i.abs() <= EXACT => Some(*i as f64),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => i64::try_from(*i).ok(),
        _ => None,
    }
}

/// `scratch`: one buffer each body is written into, then copied out at its exact size.
fn event(entry: Value, value_field: Option<&[String]>, scratch: &mut Vec<u8>) -> Option<Event> {
    let Value::Array(entry) = entry else {
        return None;
    };
    let [time, seq, body] = <[Value; 3]>::try_from(entry).ok()?;
    let (time, seq) = (number(&time)?, int(&seq)?);
    if !matches!(body, Value::Object(..)) {
        return None;
    }
    let field = |name: &str| match body.get(name) {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let (source, id, kind) = (field("source")?, field("id")?, field("type")?);
    let Some(Value::Str(named)) = body.get("severity") else {
        return None;
    };
    let severity = SEVERITIES.iter().position(|&n| n == named)? as i64;
    let value = value_field.and_then(|parts| get_path(&body, parts).cloned());
    scratch.clear();
    json::write(scratch, &body);
    let raw = Arc::from(&scratch[..]);
    Some(Event {
        time,
        seq,
        source,
        id,
        kind,
        severity,
        value,
        raw,
    })
}

fn incident(value: Value) -> Option<Option<Incident>> {
    let fields = match value {
        Value::Null => return Some(None),
        Value::Object(fields, _) => fields,
        _ => return None,
    };
    let (mut id, mut title, mut severity, mut first, mut last, mut version, mut keys) =
        (None, None, None, None, None, None, None);
    for (name, value) in fields {
        match name.as_str() {
            "id" => id = value.into_text(),
            "title" => title = value.into_text(),
            "severity" => severity = int(&value).filter(|s| (0..5).contains(s)),
            "first_seen" => first = number(&value),
            "last_seen" => last = number(&value),
            "version" => version = int(&value),
            "event_keys" => {
                let Value::Array(items) = value else {
                    return None;
                };
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Array(pair) = item else {
                        return None;
                    };
                    let [source, id] = <[Value; 2]>::try_from(pair).ok()?;
                    pairs.push((source.into_text()?, id.into_text()?));
                }
                keys = Some(pairs);
            }
            _ => return None,
        }
    }
    Some(Some(Incident {
        id: id?,
        title: title?,
        severity: severity?,
        first_seen: first?,
        last_seen: last?,
        version: version?,
        event_keys: keys?,
    }))
}

/// The window a changelog value holds, or None: Python restores it (or refuses it).
pub fn parse(value: &[u8], value_field: Option<&[String]>) -> Option<Window> {
    let mut scratch = Vec::new();
    let Value::Object(fields, _) = json::parse(value)? else {
        return None;
    };
    let (mut events, mut inc, mut max_time, mut next_seq) = (None, None, None, None);
    for (name, value) in fields {
        match name.as_str() {
            "events" => {
                let Value::Array(items) = value else {
                    return None;
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(event(item, value_field, &mut scratch)?);
                }
                events = Some(out);
            }
            "incident" => inc = Some(incident(value)?),
            "max_time" => {
                max_time = Some(match value {
                    Value::Null => None,
                    other => Some(number(&other)?),
                })
            }
            "next_seq" => next_seq = Some(int(&value)?),
            _ => return None,
        }
    }
    let events = events?;
    let max_time = match max_time? {
        Some(t) => t,
        None if events.is_empty() => f64::NEG_INFINITY, // a window that never had an event
        None => return None,
    };
    Some(Window {
        events,
        incident: inc?,
        max_time,
        next_seq: next_seq?,
    })
}
