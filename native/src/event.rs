//! SecurityEvent v1, the common case: a document this accepts is one that
//! `responder.events.fast.parse_event_doc` accepts without asking the model, normalized the same
//! way (the same dict, the same body bytes, the same epoch time). Whatever this is unsure of goes
//! back to Python, which decides and words any rejection: so every check here is either the
//! schema's own or stricter (whitespace at either end of a string, which the schema strips;
//! times outside 1700..2200, lowercase `t`/`z`, offsets of 24 hours or more).

use crate::json::{self, Value};

pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

pub struct Event {
    pub doc: Value,
    pub body: Vec<u8>,
    pub time: f64,
    pub rank: u8,
}

/// The event, or None: Python decides.
pub fn parse_event(raw: &[u8]) -> Option<Event> {
    if raw.len() > MAX_EVENT_BYTES || has(raw, b"\\u0000") || has(raw, b"\\u0022") {
        return None;
    }
    let Value::Object(fields, _) = json::parse(raw)? else {
        return None;
    };
    let mut id = None;
    let mut source = None;
    let mut kind = None;
    let mut time = None;
    let mut severity = None;
    let mut title = None;
    let mut resource = None;
    let mut actor = None;
    let mut attributes = None;
    let mut labels = None;
    let mut version = None;
    for (key, value) in fields {
        let slot = match key.as_str() {
            "id" => &mut id,
            "source" => &mut source,
            "type" => &mut kind,
            "time" => &mut time,
            "severity" => &mut severity,
            "title" => &mut title,
            "resource" => &mut resource,
            "actor" => &mut actor,
            "attributes" => &mut attributes,
            "labels" => &mut labels,
            "schema_version" => &mut version,
            _ => return None,
        };
        *slot = Some(value);
    }
    let id = text(id?, 512)?;
    let source = text(source?, 512)?;
    let kind = event_type(kind?)?;
    let (utc, epoch) = match time? {
        Value::Str(s) => utc_time(&s)?,
        _ => return None,
    };
    let rank = match &severity? {
        Value::Str(s) => SEVERITIES.iter().position(|n| n == s)? as u8,
        _ => return None,
    };
    let title = one_line(title?)?;
    let resource = resource_of(resource?)?;

    let mut out: Vec<(String, Value)> = Vec::with_capacity(11);
    out.push(("id".into(), id));
    out.push(("source".into(), source));
    out.push(("type".into(), kind));
    out.push(("time".into(), Value::Str(utc)));
    out.push((
        "severity".into(),
        Value::Str(SEVERITIES[rank as usize].into()),
    ));
    out.push(("title".into(), title));
    out.push(("resource".into(), resource));
    match actor {
        None | Some(Value::Null) => {}
        Some(value) => out.push(("actor".into(), actor_of(value)?)),
    }
    let had_attributes = attributes.is_some();
    if let Some(value) = attributes {
        out.push(("attributes".into(), attributes_of(value)?));
    }
    let had_labels = labels.is_some();
    if let Some(value) = labels {
        out.push(("labels".into(), labels_of(value)?));
    }
    let had_version = version.is_some();
    if let Some(value) = version {
        if value != Value::Str("1".into()) {
            return None;
        }
        out.push(("schema_version".into(), value));
    }
    if !had_attributes {
        out.push(("attributes".into(), Value::object(Vec::new())));
    }
    if !had_labels {
        out.push(("labels".into(), Value::object(Vec::new())));
    }
    if !had_version {
        out.push(("schema_version".into(), Value::Str("1".into())));
    }
    let doc = Value::object(out);
    let mut body = Vec::with_capacity(raw.len() + 64);
    json::write(&mut body, &doc);
    // Python's fast path asks the model about any `null` in the body (a non-finite number
    // would show as one there); so does this, for the same result.
    if body.len() > MAX_EVENT_BYTES || has(&body, b"null") {
        return None;
    }
    Some(Event {
        doc,
        body,
        time: epoch,
        rank,
    })
}

fn has(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whitespace at either end (which the schema strips: Python decides), by the widest of the
/// definitions involved (Unicode White_Space, Python's `isspace`, the C0/C1 controls).
fn edged(s: &str) -> bool {
    let odd = |c: char| c.is_whitespace() || c.is_control();
    s.chars().next().is_some_and(odd) || s.chars().next_back().is_some_and(odd)
}

fn text(value: Value, max_chars: usize) -> Option<Value> {
    match &value {
        Value::Str(s) if !s.is_empty() && !edged(s) && s.chars().count() <= max_chars => {
            Some(value)
        }
        _ => None,
    }
}

fn optional_text(value: &Value) -> bool {
    matches!(value, Value::Str(s) if !edged(s))
}

fn event_type(value: Value) -> Option<Value> {
    let Value::Str(s) = &value else { return None };
    if s.len() > 128 {
        return None;
    }
    let mut parts = 0;
    for part in s.split('.') {
        if part.is_empty()
            || !part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return None;
        }
        parts += 1;
    }
    (parts >= 2).then_some(value)
}

fn one_line(value: Value) -> Option<Value> {
    let Value::Str(s) = &value else { return None };
    let bad =
        |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}');
    if s.is_empty() || edged(s) || s.chars().any(bad) || s.chars().count() > 1024 {
        return None;
    }
    Some(value)
}

fn resource_of(value: Value) -> Option<Value> {
    let Value::Object(items, _) = value else {
        return None;
    };
    let mut slots: [Option<Value>; 5] = Default::default();
    for (key, value) in items {
        let i = ["kind", "id", "name", "version", "uri"]
            .iter()
            .position(|k| *k == key)?;
        slots[i] = Some(value);
    }
    let [kind, id, name, version, uri] = slots;
    let mut out = vec![
        ("kind".to_string(), text(kind?, 512)?),
        ("id".to_string(), text(id?, 512)?),
    ];
    for (key, value) in [("name", name), ("version", version), ("uri", uri)] {
        match value {
            None | Some(Value::Null) => {}
            Some(v) if optional_text(&v) => out.push((key.to_string(), v)),
            Some(_) => return None,
        }
    }
    Some(Value::object(out))
}

fn actor_of(value: Value) -> Option<Value> {
    let Value::Object(items, _) = value else {
        return None;
    };
    let mut id = None;
    let mut ip = None;
    let mut extras = Vec::new();
    for (key, value) in items {
        match key.as_str() {
            "id" => id = Some(value),
            "ip" => ip = Some(value),
            _ => {
                if edged(&key) {
                    return None;
                }
                if value != Value::Null {
                    extras.push((key, value));
                }
            }
        }
    }
    let mut out = Vec::with_capacity(2 + extras.len());
    for (key, value) in [("id", id), ("ip", ip)] {
        match value {
            None | Some(Value::Null) => {}
            Some(v) if optional_text(&v) => out.push((key.to_string(), v)),
            Some(_) => return None,
        }
    }
    out.extend(extras);
    Some(Value::object(out))
}

fn attributes_of(value: Value) -> Option<Value> {
    match &value {
        Value::Object(items, _) if items.iter().all(|(k, _)| !edged(k)) => Some(value),
        _ => None,
    }
}

fn labels_of(value: Value) -> Option<Value> {
    match &value {
        Value::Object(items, _) if items.iter().all(|(k, v)| !edged(k) && optional_text(v)) => {
            Some(value)
        }
        _ => None,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |n, d| n * 10 + (d - b'0') as i64))
}

fn leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn month_days(y: i64, m: i64) -> i64 {
    match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → (the UTC text pydantic writes, epoch seconds).
/// The fraction is cut to microseconds, as pydantic reads it.
pub fn utc_time(s: &str) -> Option<(String, f64)> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut frac = rest[1..1 + n].to_vec();
        frac.resize(9, b'0');
        micros = digits(&frac[..6])?;
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let (oh, om) = (digits(&[*oh1, *oh2])?, digits(&[*om1, *om2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset * 60;
    let day = seconds.div_euclid(86_400);
    let (uy, um, ud) = civil_from_days(day);
    if !(1700..=2200).contains(&uy) {
        return None; // (the epoch's microseconds stay exact in a double)
    }
    let of_day = seconds.rem_euclid(86_400);
    let mut text = format!(
        "{uy:04}-{um:02}-{ud:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text.push('Z');
    let epoch = (seconds * 1_000_000 + micros) as f64 / 1e6;
    Some((text, epoch))
}
