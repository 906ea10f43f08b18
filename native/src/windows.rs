//! The correlation engine's window state and `feed`, compiled: one `Windows` per correlation
//! partition, in place of `correlation.capacity.GroupStore` and its `GroupState`s.
//!
//! Each function here follows the Python one it names (`correlation/engine.py`,
//! `correlation/window.py`, `correlation/capacity.py`, `correlation/change.py`) step for step,
//! floats included, so the incident changes and the changelog entries are the bytes the Python
//! engine writes (`tests/unit/test_native_windows.py` holds the two to that). Python keeps what
//! is rare or open-ended: resolving a group key it has not seen (`routed_by_key`), and a title
//! that is not literal text, group values and the count (the sandbox renders it).
//!
//! Stricter than the Python engine on purpose, for records only a forged message could hold:
//! an event whose severity is not a rank 0..4 (ValueError; a bool is not one), whose time is
//! not a number a float carries exactly (TypeError: a string, a bool, an integer beyond 2**53)
//! or whose source, id or type is not text (TypeError) is refused before the window changes,
//! where Python would fail later or carry it. Up to there a record goes as in Python (its key
//! resolved, its window made, a redelivery passed over), so a record Python would not feed (its
//! rule gone, its event seen) is not refused either. Times are carried as floats (a forged
//! integer time is written back as a float, the same number); a window restored with an
//! integer time beyond 2**53 is refused by `put` (TypeError: the restore dead-letters the
//! entry, where Python restores it).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use pyo3::exceptions::{
    PyException, PyOSError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use serde::Deserialize;

use crate::event::{civil_from_days, SEVERITIES};
use crate::json::{self, Value};
use crate::keyed::KeyedMap;
use crate::message::{self, to_python};
use crate::restore;

const ROUTED_MAX: usize = 200_000; // as engine._ROUTED_MAX
const EVICT_TO: f64 = 0.9; // as capacity.EVICT_TO
/// Event times a whole message is taken with: those a change can be written with (years 1 to
/// 9999, as `datetime` has them); a message with others is fed record by record.
const EARLIEST: f64 = -62_135_596_800.0; // 0001-01-01
const LATEST: f64 = 253_402_300_799.0; // 9999-12-31T23:59:59
const INCIDENT_NAMESPACE: uuid::Uuid = uuid::uuid!("6f1d2c3e-8a4b-4f5e-9c7d-1b2a3c4d5e6f");

// --- rules ------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ThresholdSpec {
    gte: Option<i64>,
    gt: Option<i64>,
    eq: Option<i64>,
}

/// What the engine reads of a rule (`streams/native_windows.py window_rule_spec`).
#[derive(Deserialize)]
struct RuleSpec {
    id: String,
    window_s: f64,
    suppress_s: f64,
    test: String, // any | count | distinct | every | ordered
    threshold: Option<ThresholdSpec>,
    types: Vec<String>,
    severity: Option<i64>,
    kind: String,
    reportable: Option<String>,
    parts: Option<Vec<(u8, String)>>, // the title's plain parts (titles.plain_parts)
    group_by: Vec<String>,
    value_field: Option<Vec<String>>, // the value_count field's path, split at dots
}

#[derive(Deserialize)]
struct Spec {
    rules: Vec<RuleSpec>,
    lateness: f64,
    cap: Option<usize>,
    plain_value: usize,
    max_output: usize,
    max_change: usize,
}

#[derive(Clone, Copy)]
enum Threshold {
    Gte(i64),
    Gt(i64),
    Eq(i64),
}

impl Threshold {
    fn met(self, count: usize) -> bool {
        let count = count as i64;
        match self {
            Threshold::Gte(n) => count >= n,
            Threshold::Gt(n) => count > n,
            Threshold::Eq(n) => count == n,
        }
    }
}

enum Test {
    Any,
    Count(Threshold),
    Distinct(Threshold),
    Every(Vec<String>),
    Ordered(Vec<String>),
}

struct Rule {
    id: String,
    window_s: f64,
    suppress_s: f64,
    test: Test,
    severity: Option<i64>,
    id_json: Vec<u8>,
    kind_json: Vec<u8>,
    reportable_json: Vec<u8>,
    parts: Option<Vec<(u8, String)>>,
    group_by: Vec<String>,
    value_field: Option<Vec<String>>,
}

fn json_str(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    json::write_str(&mut out, s);
    out
}

impl Rule {
    fn new(spec: RuleSpec) -> Result<Rule, String> {
        let threshold = spec.threshold.map(|t| match (t.gte, t.gt, t.eq) {
            (Some(n), _, _) => Threshold::Gte(n),
            (None, Some(n), _) => Threshold::Gt(n),
            (None, None, n) => Threshold::Eq(n.unwrap_or(0)),
        });
        let test = match (spec.test.as_str(), threshold) {
            ("any", _) => Test::Any,
            ("count", Some(t)) => Test::Count(t),
            ("distinct", Some(t)) => Test::Distinct(t),
            ("every", _) => Test::Every(spec.types),
            ("ordered", _) if !spec.types.is_empty() => Test::Ordered(spec.types),
            (other, _) => return Err(format!("rule {}: no test {other:?}", spec.id)),
        };
        Ok(Rule {
            id_json: json_str(&spec.id),
            kind_json: json_str(&spec.kind),
            reportable_json: match &spec.reportable {
                Some(r) => json_str(r),
                None => b"null".to_vec(),
            },
            id: spec.id,
            window_s: spec.window_s,
            suppress_s: spec.suppress_s,
            test,
            severity: spec.severity,
            parts: spec.parts,
            group_by: spec.group_by,
            value_field: spec.value_field,
        })
    }
}

// --- window state -----------------------------------------------------------------------------

type Key = (Arc<str>, Arc<str>); // (source, id)

struct Ev {
    time: f64,
    seq: i128, // (Python's int: a restored window's may be any orjson reads, then counts on)
    source: Arc<str>,
    id: Arc<str>,
    kind: Arc<str>,
    severity: i64,
    value: Option<Value>, // None: MISSING
    raw: Arc<[u8]>,       // shared by the records of one event
}

impl Ev {
    fn key(&self) -> Key {
        (self.source.clone(), self.id.clone())
    }
}

struct Incident {
    id: String,
    title: String,
    severity: i64,
    first_seen: f64,
    last_seen: f64,
    version: i128,
    event_keys: HashSet<Key>,
}

struct State {
    events: Vec<Ev>, // arrival order
    incident: Option<Incident>,
    max_time: f64,
    next_seq: i128,
    keys: HashSet<Key>,
    oldest: f64,
}

impl State {
    fn new() -> State {
        State {
            events: Vec::new(),
            incident: None,
            max_time: f64::NEG_INFINITY,
            next_seq: 0,
            keys: HashSet::new(),
            oldest: f64::INFINITY,
        }
    }

    fn seen(&self, key: &Key) -> bool {
        if let Some(inc) = &self.incident {
            if inc.event_keys.contains(key) {
                return true;
            }
        }
        self.keys.contains(key)
    }

    fn add(&mut self, mut event: Ev) {
        event.seq = self.next_seq;
        self.next_seq += 1;
        self.keys.insert(event.key());
        if event.time > self.max_time {
            self.max_time = event.time;
        }
        if event.time < self.oldest {
            self.oldest = event.time;
        }
        self.events.push(event);
    }

    /// Indexes (arrival order) of the events in [end - length, end].
    fn in_window(&self, end: f64, length: f64) -> Vec<usize> {
        let start = end - length;
        (0..self.events.len())
            .filter(|&i| {
                let t = self.events[i].time;
                start <= t && t <= end
            })
            .collect()
    }

    fn prune(&mut self, keep_after: f64, incident_after: f64) {
        if self.oldest < keep_after {
            self.events.retain(|e| e.time >= keep_after);
            self.keys = self.events.iter().map(Ev::key).collect();
            self.oldest = earliest(&self.events);
        }
        if let Some(inc) = &self.incident {
            if inc.last_seen < incident_after {
                self.incident = None;
            }
        }
    }

    /// The dedup keys and the earliest time of a window's events (`GroupState.__post_init__`).
    fn index(events: &[Ev]) -> (HashSet<Key>, f64) {
        (events.iter().map(Ev::key).collect(), earliest(events))
    }

    fn empty(&self) -> bool {
        self.events.is_empty() && self.incident.is_none()
    }
}

/// The earliest time of these events; infinity for none.
fn earliest<'a>(events: impl IntoIterator<Item = &'a Ev>) -> f64 {
    events
        .into_iter()
        .map(|e| e.time)
        .fold(f64::INFINITY, |a, b| if b < a { b } else { a })
}

/// A JSON value as `window._hashable` makes it for counting distinct values: `true` apart from
/// 1, 1 the same as 1.0, an object the same as the list of its [key, value] pairs by key.
#[derive(PartialEq, Eq, Hash)]
enum Distinct {
    Null,
    Bool(bool),
    Int(i128),
    Float(u64),
    Str(String),
    List(Vec<Distinct>),
}

fn distinct(value: &Value) -> Distinct {
    match value {
        Value::Null => Distinct::Null,
        Value::Bool(b) => Distinct::Bool(*b),
        Value::Int(i) => Distinct::Int(*i),
        Value::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e36 {
                Distinct::Int(*f as i128)
            } else {
                Distinct::Float(f.to_bits())
            }
        }
        Value::Str(s) => Distinct::Str(s.clone()),
        Value::Array(items) => Distinct::List(items.iter().map(distinct).collect()),
        Value::Object(items, _) => {
            let mut pairs: Vec<(&String, &Value)> = items.iter().map(|(k, v)| (k, v)).collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            Distinct::List(
                pairs
                    .into_iter()
                    .map(|(k, v)| Distinct::List(vec![Distinct::Str(k.clone()), distinct(v)]))
                    .collect(),
            )
        }
    }
}

fn distinct_values<'a>(events: impl Iterator<Item = &'a Ev>) -> usize {
    events
        .filter_map(|e| e.value.as_ref().map(distinct))
        .collect::<HashSet<_>>()
        .len()
}

/// `window.condition(rule)` over the events at `window` (indexes into `events`).
fn holds(rule: &Rule, events: &[Ev], window: &[usize]) -> bool {
    match &rule.test {
        Test::Any => !window.is_empty(),
        Test::Count(t) => t.met(window.len()),
        Test::Distinct(t) => t.met(distinct_values(window.iter().map(|&i| &events[i]))),
        Test::Every(wanted) => wanted
            .iter()
            .all(|w| window.iter().any(|&i| &*events[i].kind == w.as_str())),
        Test::Ordered(wanted) => {
            let mut sorted: Vec<&Ev> = window.iter().map(|&i| &events[i]).collect();
            sorted.sort_by(|a, b| by_time(a, b));
            let mut at = 0;
            for e in sorted {
                if *e.kind == *wanted[at] {
                    at += 1;
                    if at == wanted.len() {
                        return true;
                    }
                }
            }
            false
        }
    }
}

fn by_time(a: &Ev, b: &Ev) -> Ordering {
    a.time
        .partial_cmp(&b.time)
        .unwrap_or(Ordering::Equal)
        .then(a.seq.cmp(&b.seq))
}

fn bisect_left(xs: &[f64], x: f64) -> usize {
    xs.partition_point(|&v| v < x)
}

fn bisect_right(xs: &[f64], x: f64) -> usize {
    xs.partition_point(|&v| v <= x)
}

/// `window.first_firing_end`: the earliest window end among the group's event times in
/// [time, time + window] whose window meets the rule.
fn first_firing_end(rule: &Rule, events: &[Ev], time: f64) -> Option<f64> {
    let length = rule.window_s;
    let mut ordered: Vec<&Ev> = events.iter().collect();
    ordered.sort_by(|a, b| by_time(a, b));
    let times: Vec<f64> = ordered.iter().map(|e| e.time).collect();
    let mut ends: Vec<f64> = times
        .iter()
        .copied()
        .filter(|&t| time <= t && t <= time + length)
        .collect();
    ends.dedup(); // sorted already: `times` is
    if ends.is_empty() {
        return None;
    }
    match &rule.test {
        Test::Any => Some(ends[0]),
        Test::Count(t) => ends
            .into_iter()
            .find(|&end| t.met(bisect_right(&times, end) - bisect_left(&times, end - length))),
        Test::Ordered(wanted) => first_ordered_end(wanted, &ordered, &times, &ends, length),
        Test::Distinct(t) => first_distinct_end(
            &ordered,
            &times,
            &ends,
            length,
            |e| e.value.as_ref().map(distinct),
            |counts| t.met(counts.len() - usize::from(counts.contains_key(&None))),
        ),
        Test::Every(wanted) => first_distinct_end(
            &ordered,
            &times,
            &ends,
            length,
            |e| Some(Distinct::Str(e.kind.to_string())),
            |counts| {
                wanted
                    .iter()
                    .all(|w| counts.contains_key(&Some(Distinct::Str(w.clone()))))
            },
        ),
    }
}

fn first_distinct_end(
    ordered: &[&Ev],
    times: &[f64],
    ends: &[f64],
    length: f64,
    item: impl Fn(&Ev) -> Option<Distinct>,
    met: impl Fn(&HashMap<Option<Distinct>, usize>) -> bool,
) -> Option<f64> {
    let mut counts: HashMap<Option<Distinct>, usize> = HashMap::new();
    let (mut lo, mut hi) = (0, 0);
    for &end in ends {
        while hi < ordered.len() && times[hi] <= end {
            *counts.entry(item(ordered[hi])).or_insert(0) += 1;
            hi += 1;
        }
        while times[lo] < end - length {
            let key = item(ordered[lo]);
            if let Some(n) = counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&key);
                }
            }
            lo += 1;
        }
        if met(&counts) {
            return Some(end);
        }
    }
    None
}

fn first_ordered_end(
    wanted: &[String],
    ordered: &[&Ev],
    times: &[f64],
    ends: &[f64],
    length: f64,
) -> Option<f64> {
    let mut positions: HashMap<&str, Vec<usize>> =
        wanted.iter().map(|w| (w.as_str(), Vec::new())).collect();
    for (index, event) in ordered.iter().enumerate() {
        if let Some(found) = positions.get_mut(&*event.kind) {
            found.push(index);
        }
    }
    let mut candidate = 0;
    while candidate < ends.len() {
        let end = ends[candidate];
        let mut j = bisect_left(times, end - length);
        for w in wanted {
            let at = &positions[w.as_str()];
            let p = at.partition_point(|&v| v < j);
            if p == at.len() {
                return None;
            }
            j = at[p] + 1;
        }
        let completes = times[j - 1];
        if completes <= end {
            return Some(end);
        }
        candidate += 1 + ends[candidate + 1..].partition_point(|&v| v < completes);
    }
    None
}

// --- text -------------------------------------------------------------------------------------

fn round_half_even(x: f64) -> f64 {
    let rounded = x.round();
    if (x - rounded).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        rounded
    }
}

/// Why `datetime.fromtimestamp(t, UTC)` refuses a time, as CPython (on glibc) words it.
enum TimeError {
    /// Beyond time_t (OverflowError).
    Overflow,
    /// A year gmtime cannot hold in an int (OSError EOVERFLOW).
    Gmtime,
    /// A year datetime does not have (ValueError), as CPython computes it: in an int.
    Year(i32),
}

impl From<TimeError> for PyErr {
    fn from(error: TimeError) -> PyErr {
        match error {
            TimeError::Overflow => {
                PyOverflowError::new_err("timestamp out of range for platform time_t")
            }
            // Linux's EOVERFLOW and glibc's words for it (the worker's platform)
            TimeError::Gmtime => PyOSError::new_err((75, "Value too large for defined data type")),
            TimeError::Year(y) => PyValueError::new_err(format!("year {y} is out of range")),
        }
    }
}

/// The time as orjson writes `datetime.fromtimestamp(t, UTC)` with OPT_UTC_Z: microseconds
/// rounded half to even as CPython rounds them, written only when there are any; a time
/// datetime cannot hold fails as CPython fails it (`_PyTime_ObjectToTimeval`, then gmtime_r,
/// then the year's range).
fn write_time(out: &mut Vec<u8>, t: f64) -> Result<(), TimeError> {
    let mut whole = t.trunc();
    let mut micros = round_half_even((t - whole) * 1e6);
    if micros >= 1e6 {
        micros -= 1e6;
        whole += 1.0;
    } else if micros < 0.0 {
        micros += 1e6;
        whole -= 1.0;
    }
    const TIME_T: f64 = 9_223_372_036_854_775_808.0; // 2**63
    if !(-TIME_T..TIME_T).contains(&whole) {
        return Err(TimeError::Overflow);
    }
    let secs = whole as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let Ok(tm_year) = i32::try_from(y - 1900) else {
        return Err(TimeError::Gmtime);
    };
    let year = tm_year.wrapping_add(1900); // `tm_year + 1900` in a C int
    if !(1..=9999).contains(&year) {
        return Err(TimeError::Year(year));
    }
    let rest = secs.rem_euclid(86_400);
    let text = format!(
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    out.extend_from_slice(text.as_bytes());
    if micros != 0.0 {
        out.extend_from_slice(format!(".{:06}", micros as i64).as_bytes());
    }
    out.extend_from_slice(b"Z\"");
    Ok(())
}

// --- the store --------------------------------------------------------------------------------

struct Routed {
    rule: usize,
    group: Value, // an object: the group's values by group_by name
    group_json: Vec<u8>,
}

enum Fed {
    Skipped,              // the rule is not in the set (removed since the record was routed)
    Done(Option<Change>), // fed: the change, if any
}

struct Change {
    incident_id: String,
    json: Vec<u8>,
}

/// Changelog entries `restore_many` reads from Python's lists at a time.
const RESTORE_SLICE: usize = 256;

/// One correlation partition's window states and the engine that feeds them.
#[pyclass(module = "responder_native", subclass)]
pub struct Windows {
    rules: Vec<Rule>,
    by_id: HashMap<String, usize>,
    lateness: f64,
    cap: Option<usize>,
    plain_value: usize,
    max_output: usize,
    max_change: usize,
    states: KeyedMap<Box<State>>, // boxed: a million of them rehash as pointers
    counts: HashMap<usize, usize>, // rule → live groups
    evicted: Vec<String>,
    fed_keys: Vec<String>, // keys fed since `take_fed`
    routed: KeyedMap<Arc<Routed>>,
    resolve: PyObject, // key → (rule id, group JSON) | None, raising for a bad key
    title: PyObject,   // (rule id, key, event bytes, count) → title
    too_large: PyObject, // the exception class of a change over max_change
    classes: [PyObject; 4], // WindowEvent, OpenIncident, GroupState, MISSING
    strings: HashMap<String, Arc<str>>, // one copy of each source and type
    sweep_keys: Vec<String>, // the keys a sweep under way has still to look at
}

fn bad(message: &str) -> PyErr {
    PyValueError::new_err(message.to_string())
}

impl Windows {
    fn shared(&mut self, s: &str) -> Arc<str> {
        if let Some(found) = self.strings.get(s) {
            return found.clone();
        }
        let arc: Arc<str> = Arc::from(s);
        if self.strings.len() < 100_000 {
            self.strings.insert(s.to_string(), arc.clone());
        }
        arc
    }

    /// A Python WindowEvent's counted value (None: MISSING) and its bytes.
    fn value_and_raw(&self, event: &Bound<'_, PyAny>) -> PyResult<(Option<Value>, Arc<[u8]>)> {
        let value = event.getattr("value")?;
        let value = if value.is(&self.classes[3]) {
            None
        } else {
            Some(from_python(&value)?)
        };
        let raw = event.getattr("raw")?;
        let raw = raw
            .downcast_exact::<PyBytes>()
            .map_err(|_| bad("an event without its bytes"))?;
        Ok((value, Arc::from(raw.as_bytes())))
    }

    fn rule_of(&self, key: &str) -> Option<usize> {
        self.by_id
            .get(key.split('|').next().unwrap_or(key))
            .copied()
    }

    /// `engine.routed_by_key` for a key of the common shape: `rule|[values]`, a value per
    /// `group_by` name (names distinct). None: Python resolves it, or words why not.
    fn routed_here(&self, key: &str) -> Option<Routed> {
        let (rule_id, spelled) = key.split_once('|')?;
        let &rule = self.by_id.get(rule_id)?;
        let names = &self.rules[rule].group_by;
        let Value::Array(values) = json::parse(spelled.as_bytes())? else {
            return None;
        };
        let distinct = names.iter().collect::<HashSet<_>>().len() == names.len();
        if values.len() != names.len() || !distinct {
            return None;
        }
        let group = Value::object(names.iter().cloned().zip(values).collect());
        let mut group_json = Vec::with_capacity(spelled.len() + 16 * names.len());
        json::write(&mut group_json, &group);
        Some(Routed {
            rule,
            group,
            group_json,
        })
    }

    fn lookup(&mut self, py: Python<'_>, key: &str) -> PyResult<Option<Arc<Routed>>> {
        let hash = self.routed.hash(key);
        if let Some(found) = self.routed.get_hashed(hash, key) {
            return Ok(Some(found.clone()));
        }
        let routed = match self.routed_here(key) {
            Some(routed) => routed,
            None => {
                let answer = self.resolve.call1(py, (key,))?;
                if answer.is_none(py) {
                    return Ok(None);
                }
                let (rule_id, group_json): (String, Vec<u8>) = answer.extract(py)?;
                let Some(&rule) = self.by_id.get(&rule_id) else {
                    return Ok(None);
                };
                let group = json::parse(&group_json).unwrap_or(Value::Object(Vec::new(), None));
                Routed {
                    rule,
                    group,
                    group_json,
                }
            }
        };
        let routed = Arc::new(routed);
        if self.routed.len() > ROUTED_MAX {
            self.routed.clear();
        }
        self.routed.insert_hashed(hash, key, routed.clone());
        Ok(Some(routed))
    }

    /// `GroupStore.group`: the state, created (and the rule's cap enforced) if it has none.
    fn ensure(&mut self, rule: usize, key: &str) {
        let hash = self.states.hash(key);
        if self.states.get_hashed(hash, key).is_some() {
            return;
        }
        self.states.insert_hashed(hash, key, Box::new(State::new()));
        let count = self.counts.entry(rule).or_insert(0);
        *count += 1;
        if let Some(cap) = self.cap {
            if *count > cap {
                self.evict(rule, key, cap);
            }
        }
    }

    /// `GroupStore._evict`: the groups of the rule whose newest event is oldest (ties: by key)
    /// go until EVICT_TO of the cap remain.
    fn evict(&mut self, rule: usize, spare: &str, cap: usize) {
        let keep = ((cap as f64 * EVICT_TO) as usize).max(1);
        let prefix = format!("{}|", self.rules[rule].id);
        let mut candidates: Vec<(f64, &str)> = self
            .states
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && *k != spare)
            .map(|(k, s)| (s.max_time, k))
            .collect();
        candidates.sort_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.1.cmp(b.1))
        });
        let count = self.counts.get(&rule).copied().unwrap_or(0);
        let gone: Vec<String> = candidates
            .into_iter()
            .take(count.saturating_sub(keep))
            .map(|(_, k)| k.to_string())
            .collect();
        for key in gone {
            self.remove(&key);
            self.evicted.push(key);
        }
    }

    /// `GroupStore.put`: the state in place of the key's, the rule's cap enforced.
    fn place(&mut self, rule: usize, key: &str, state: State) {
        let fresh = self.states.insert(key, Box::new(state)).is_none();
        if fresh {
            let count = self.counts.entry(rule).or_insert(0);
            *count += 1;
            if let Some(cap) = self.cap {
                if *count > cap {
                    self.evict(rule, key, cap);
                }
            }
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        if self.states.remove(key).is_none() {
            return false;
        }
        if let Some(rule) = self.rule_of(key) {
            if let Some(n) = self.counts.get_mut(&rule) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&rule);
                }
            }
        }
        true
    }

    /// `CorrelateStage._feed` up to `Correlator.feed`: the key resolved (None: its rule is not
    /// in the set), its window made (the rule's cap enforced) and the key noted as fed.
    fn begin(&mut self, py: Python<'_>, key: &str) -> PyResult<Option<Arc<Routed>>> {
        let Some(routed) = self.lookup(py, key)? else {
            return Ok(None);
        };
        self.ensure(routed.rule, key);
        self.fed_keys.push(key.to_string());
        Ok(Some(routed))
    }

    /// Whether the key's window (made by `begin`) has the event already: a redelivery counts
    /// once.
    fn seen(&self, key: &str, event: &Key) -> bool {
        self.states.get(key).is_some_and(|state| state.seen(event))
    }

    /// `Correlator.feed` for one record (the handle loop's part before it included: the key
    /// resolved, the state created), and the change as `Change.to_json` writes it.
    fn feed_event(
        &mut self,
        py: Python<'_>,
        key: &str,
        event: Ev,
        watermark: Option<f64>,
    ) -> PyResult<Fed> {
        let Some(routed) = self.begin(py, key)? else {
            return Ok(Fed::Skipped);
        };
        if self.seen(key, &event.key()) {
            return Ok(Fed::Done(None));
        }
        self.feed_fresh(py, key, &routed, event, watermark)
            .map(Fed::Done)
    }

    /// `Correlator.feed` from the dedup on (`begin` made the window, `seen` said no).
    fn feed_fresh(
        &mut self,
        py: Python<'_>,
        key: &str,
        routed: &Routed,
        event: Ev,
        watermark: Option<f64>,
    ) -> PyResult<Option<Change>> {
        let r = routed.rule;
        let lateness = self.lateness;
        let (window_s, suppress_s) = (self.rules[r].window_s, self.rules[r].suppress_s);
        let state = self.states.get_mut(key).expect("made by begin");
        let ekey = event.key();
        let newest = event.time >= state.max_time;
        state.add(event);
        let last = state.events.len() - 1;
        let mut plan = None; // (kind, event indexes of the change)
        if let Some(inc) = state.incident.as_mut() {
            let event = &state.events[last];
            if event.time <= inc.last_seen + suppress_s {
                inc.event_keys.insert(ekey);
                if event.time < inc.first_seen {
                    inc.first_seen = event.time;
                }
                if event.time > inc.last_seen {
                    inc.last_seen = event.time;
                }
                inc.version += 1;
                let mut kind = "updated";
                if self.rules[r].severity.is_none() && event.severity > inc.severity {
                    inc.severity = event.severity;
                    kind = "escalated";
                }
                plan = Some((kind, vec![last]));
            }
        }
        if plan.is_none() {
            let time = state.events[last].time;
            let rule = &self.rules[r];
            let window = if newest {
                let own = state.in_window(time, window_s);
                holds(rule, &state.events, &own).then_some(own)
            } else {
                first_firing_end(rule, &state.events, time)
                    .map(|end| state.in_window(end, window_s))
            };
            if let Some(window) = window {
                plan = Some(("opened", window));
            }
        }
        let mut change = None;
        if let Some((kind, indexes)) = plan {
            if kind == "opened" {
                let incident = self.open(py, r, key, routed, &indexes)?;
                self.states.get_mut(key).expect("made by begin").incident = Some(incident);
            }
            change = Some(self.change_json(r, key, routed, kind, &indexes));
        }
        let state = self.states.get_mut(key).expect("made by begin");
        let horizon = watermark.unwrap_or(state.max_time);
        state.prune(
            horizon - window_s - lateness,
            horizon - suppress_s - lateness,
        );
        match change {
            None => Ok(None),
            Some(Err(error)) => Err(error),
            Some(Ok(change)) => {
                if change.json.len() > self.max_change {
                    let text = format!(
                        "incident change of {} bytes > {}",
                        change.json.len(),
                        self.max_change
                    );
                    return Err(PyErr::from_value(
                        self.too_large.call1(py, (text,))?.into_bound(py),
                    ));
                }
                Ok(Some(change))
            }
        }
    }

    /// `Correlator._open`'s incident (the window: indexes of the state's events).
    fn open(
        &self,
        py: Python<'_>,
        r: usize,
        key: &str,
        routed: &Routed,
        window: &[usize],
    ) -> PyResult<Incident> {
        let rule = &self.rules[r];
        let state = self.states.get(key).expect("made by begin");
        let events: Vec<&Ev> = window.iter().map(|&i| &state.events[i]).collect();
        let trigger = &state.events[state.events.len() - 1];
        let severity = match rule.severity {
            Some(s) => s,
            None => events.iter().map(|e| e.severity).max().unwrap_or(0),
        };
        let first_seen = earliest(events.iter().copied());
        let last_seen = events
            .iter()
            .map(|e| e.time)
            .fold(f64::NEG_INFINITY, |a, b| if b > a { b } else { a });
        let name = format!("{key}|{}|{}", trigger.source, trigger.id);
        let id = uuid::Uuid::new_v5(&INCIDENT_NAMESPACE, name.as_bytes())
            .hyphenated()
            .to_string();
        let title = match self.plain_title(rule, &routed.group, events.len()) {
            Some(title) => title,
            None => self
                .title
                .call1(
                    py,
                    (&rule.id, key, PyBytes::new(py, &trigger.raw), events.len()),
                )?
                .extract(py)?,
        };
        Ok(Incident {
            id,
            title,
            severity,
            first_seen,
            last_seen,
            version: 1,
            event_keys: events.iter().map(|e| e.key()).collect(),
        })
    }

    /// `titles.render_plain`: None where the sandbox must decide.
    fn plain_title(&self, rule: &Rule, group: &Value, count: usize) -> Option<String> {
        let parts = rule.parts.as_ref()?;
        let mut out = String::new();
        for (kind, text) in parts {
            match kind {
                0 => out.push_str(text),
                2 => out.push_str(&count.to_string()),
                _ => match group.get(text) {
                    Some(Value::Str(s)) if s.chars().count() <= self.plain_value => out.push_str(s),
                    _ => return None,
                },
            }
        }
        (out.chars().count() <= self.max_output).then_some(out)
    }

    /// `Change.to_json` of the state's incident with these events.
    fn change_json(
        &self,
        r: usize,
        key: &str,
        routed: &Routed,
        kind: &str,
        events: &[usize],
    ) -> PyResult<Change> {
        let rule = &self.rules[r];
        let state = self.states.get(key).expect("made by begin");
        let inc = state.incident.as_ref().expect("an incident");
        let severity = usize::try_from(inc.severity)
            .ok()
            .and_then(|s| SEVERITIES.get(s))
            .ok_or_else(|| bad(&format!("{} is not a valid Severity", inc.severity)))?;
        // the times first: `Change.to_json` makes them before orjson writes (and refuses) a
        // number
        let (mut first_seen, mut last_seen) = (Vec::with_capacity(32), Vec::with_capacity(32));
        write_time(&mut first_seen, inc.first_seen)?;
        write_time(&mut last_seen, inc.last_seen)?;
        let size: usize = events.iter().map(|&i| state.events[i].raw.len() + 1).sum();
        let mut out = Vec::with_capacity(400 + size + routed.group_json.len() + inc.title.len());
        out.extend_from_slice(b"{\"change\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        write_int(&mut out, inc.version)?;
        out.extend_from_slice(b",\"incident_id\":");
        json::write_str(&mut out, &inc.id);
        out.extend_from_slice(b",\"rule\":");
        out.extend_from_slice(&rule.id_json);
        out.extend_from_slice(b",\"kind\":");
        out.extend_from_slice(&rule.kind_json);
        out.extend_from_slice(b",\"title\":");
        json::write_str(&mut out, &inc.title);
        out.extend_from_slice(b",\"severity\":\"");
        out.extend_from_slice(severity.as_bytes());
        out.extend_from_slice(b"\",\"status\":\"open\",\"group\":");
        out.extend_from_slice(&routed.group_json);
        out.extend_from_slice(b",\"first_seen\":");
        out.extend_from_slice(&first_seen);
        out.extend_from_slice(b",\"last_seen\":");
        out.extend_from_slice(&last_seen);
        out.extend_from_slice(b",\"event_count\":");
        out.extend_from_slice(inc.event_keys.len().to_string().as_bytes());
        out.extend_from_slice(b",\"events\":[");
        for (n, &i) in events.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&state.events[i].raw);
        }
        out.extend_from_slice(b"],\"reportable\":");
        out.extend_from_slice(&rule.reportable_json);
        out.extend_from_slice(b",\"schema_version\":\"1\"}");
        Ok(Change {
            incident_id: inc.id.clone(),
            json: out,
        })
    }

    /// An event as the engine carries it, or a ValueError (see the module's doc).
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        time: f64,
        (source, id): Key,
        kind: &str,
        rank: i128,
        value: Option<Value>,
        raw: Arc<[u8]>,
    ) -> PyResult<Ev> {
        if !time.is_finite() {
            return Err(PyTypeError::new_err("an event time that is not a number"));
        }
        if !(0..5).contains(&rank) {
            return Err(bad("an event severity that is not a severity"));
        }
        Ok(Ev {
            time,
            seq: -1,
            source,
            id,
            kind: self.shared(kind),
            severity: rank as i64,
            value,
            raw,
        })
    }

    /// `state_to_dict` as orjson writes it (or refuses it: an integer beyond 64 bits).
    fn changelog_json(state: &State) -> Result<Vec<u8>, BeyondBits> {
        let size: usize = state.events.iter().map(|e| e.raw.len() + 40).sum();
        let mut out = Vec::with_capacity(96 + size);
        out.extend_from_slice(b"{\"events\":[");
        for (n, e) in state.events.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.push(b'[');
            json::write_float(&mut out, e.time);
            out.push(b',');
            write_int(&mut out, e.seq)?;
            out.push(b',');
            out.extend_from_slice(&e.raw);
            out.push(b']');
        }
        out.extend_from_slice(b"],\"incident\":");
        match &state.incident {
            None => out.extend_from_slice(b"null"),
            Some(inc) => {
                out.extend_from_slice(b"{\"id\":");
                json::write_str(&mut out, &inc.id);
                out.extend_from_slice(b",\"title\":");
                json::write_str(&mut out, &inc.title);
                out.extend_from_slice(b",\"severity\":");
                out.extend_from_slice(inc.severity.to_string().as_bytes());
                out.extend_from_slice(b",\"first_seen\":");
                write_number(&mut out, inc.first_seen);
                out.extend_from_slice(b",\"last_seen\":");
                write_number(&mut out, inc.last_seen);
                out.extend_from_slice(b",\"version\":");
                write_int(&mut out, inc.version)?;
                out.extend_from_slice(b",\"event_keys\":[");
                let mut keys: Vec<&Key> = inc.event_keys.iter().collect();
                keys.sort();
                for (n, (source, id)) in keys.into_iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    json::write_str(&mut out, source);
                    out.push(b',');
                    json::write_str(&mut out, id);
                    out.push(b']');
                }
                out.extend_from_slice(b"]}");
            }
        }
        out.extend_from_slice(b",\"max_time\":");
        write_number(&mut out, state.max_time);
        out.extend_from_slice(b",\"next_seq\":");
        write_int(&mut out, state.next_seq)?;
        out.push(b'}');
        Ok(out)
    }

    fn feed_message_here<'py>(
        &mut self,
        py: Python<'py>,
        value: &[u8],
        watermark: Option<f64>,
    ) -> PyResult<Option<Outcome<'py>>> {
        let Some(message) = message::parse(value) else {
            return Ok(None);
        };
        let mut times = Vec::with_capacity(message.heads.len());
        let raws: Vec<Arc<[u8]>> = message.heads.iter().map(|h| Arc::from(h.raw)).collect();
        for head in &message.heads {
            let time = match head.time {
                Value::Float(f) => f,
                _ => return Ok(None),
            };
            let in_range = matches!(head.rank, Value::Int(r) if (0..5).contains(&r));
            if !(EARLIEST..=LATEST).contains(&time) || !in_range {
                return Ok(None);
            }
            times.push(time);
        }
        let changes = PyList::empty(py);
        let failures = PyList::empty(py);
        let (mut fed, mut newest) = (0usize, f64::NEG_INFINITY);
        for rec in message.records {
            let head = &message.heads[rec.head];
            let Value::Int(rank) = head.rank else {
                unreachable!("checked above")
            };
            let time = times[rec.head];
            let ekey = (self.shared(&head.source), Arc::from(head.id.as_str()));
            let event = self.event(
                time,
                ekey,
                &head.kind,
                rank,
                rec.counted,
                raws[rec.head].clone(),
            )?;
            match self.feed_event(py, &rec.key, event, watermark) {
                Ok(Fed::Skipped) => {}
                Ok(Fed::Done(change)) => {
                    if let Some(change) = change {
                        changes.append((
                            PyString::new(py, &change.incident_id),
                            PyBytes::new(py, &change.json),
                        ))?;
                    }
                    if time > newest {
                        newest = time;
                    }
                    fed += 1;
                }
                Err(err) if !err.is_instance_of::<PyException>(py) => return Err(err),
                Err(err) => failures.append((
                    PyString::new(py, &rec.key),
                    PyString::new(py, &head.source),
                    PyString::new(py, &head.id),
                    err.into_value(py),
                ))?,
            }
        }
        let progress = message::progress_list(py, &message.progress)?;
        Ok(Some((changes, progress, fed, newest, failures)))
    }

    fn feed_here<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        event: &Bound<'py, PyAny>,
        watermark: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // In the Python engine's order: the key resolved (a key that is not a string: Python
        // words why), the window made, the dedup, then the event's fields.
        let key: String = match key.downcast_exact::<PyString>() {
            Ok(key) => key.to_str()?.to_string(),
            Err(_) => {
                self.resolve.call1(py, (key,))?; // raises (`routed_by_key`)
                return Err(bad("a group key is not a string"));
            }
        };
        let Some(routed) = self.begin(py, &key)? else {
            return Ok(false.into_pyobject(py)?.to_owned().into_any());
        };
        let source = event.getattr("source")?;
        let id = event.getattr("id")?;
        let ekey = (
            self.shared(source.extract::<&str>()?),
            Arc::from(id.extract::<&str>()?),
        );
        if self.seen(&key, &ekey) {
            return Ok(py.None().into_bound(py));
        }
        let time = float_of(&event.getattr("time")?)?;
        let rank = event
            .getattr("severity")?
            .downcast_exact::<pyo3::types::PyInt>() // (not a bool: Python would carry `true`)
            .ok()
            .and_then(|rank| rank.extract::<i64>().ok())
            .ok_or_else(|| bad("an event severity that is not a severity"))?;
        let (value, raw) = self.value_and_raw(event)?;
        let event = self.event(
            time,
            ekey,
            event.getattr("type")?.extract::<&str>()?,
            rank as i128,
            value,
            raw,
        )?;
        Ok(
            match self.feed_fresh(py, &key, &routed, event, watermark)? {
                None => py.None().into_bound(py),
                Some(change) => PyTuple::new(
                    py,
                    [
                        PyString::new(py, &change.incident_id).into_any(),
                        PyBytes::new(py, &change.json).into_any(),
                    ],
                )?
                .into_any(),
            },
        )
    }

    fn restore_here(&mut self, key: &str, value: &[u8], rule_id: &str) -> Option<f64> {
        let &rule = self.by_id.get(rule_id)?;
        let window = restore::parse(value, self.rules[rule].value_field.as_deref())?;
        let mut events = Vec::with_capacity(window.events.len());
        for e in window.events {
            events.push(Ev {
                time: e.time,
                seq: e.seq.into(),
                source: self.shared(&e.source),
                id: Arc::from(e.id),
                kind: self.shared(&e.kind),
                severity: e.severity,
                value: e.value,
                raw: e.raw,
            });
        }
        let incident = window.incident.map(|inc| Incident {
            id: inc.id,
            title: inc.title,
            severity: inc.severity,
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            version: inc.version.into(),
            event_keys: inc
                .event_keys
                .into_iter()
                .map(|(s, i)| (Arc::from(s), Arc::from(i)))
                .collect(),
        });
        let (keys, oldest) = State::index(&events);
        let max_time = window.max_time;
        let state = State {
            events,
            incident,
            max_time,
            next_seq: window.next_seq.into(),
            keys,
            oldest,
        };
        self.place(rule, key, state);
        Some(max_time)
    }

    fn changelog_here<'py>(
        &mut self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(state) = self.states.get(key) else {
            return Ok(None);
        };
        if state.empty() {
            self.remove(key);
            return Ok(None);
        }
        let value = Windows::changelog_json(state).map_err(|_| beyond_bits(py))?;
        Ok(Some(PyBytes::new(py, &value)))
    }
}

/// An integer orjson cannot write (beyond 64 bits, signed or not): a window's sequence or an
/// incident's version counted on past the largest a restored entry may hold.
struct BeyondBits;

impl From<BeyondBits> for PyErr {
    fn from(_: BeyondBits) -> PyErr {
        Python::with_gil(beyond_bits)
    }
}

/// orjson's refusal of such an integer: its JSONEncodeError (a TypeError), in its words.
fn beyond_bits(py: Python<'_>) -> PyErr {
    const WORDS: &str = "Integer exceeds 64-bit range";
    match py
        .import("orjson")
        .and_then(|m| m.getattr("JSONEncodeError"))
    {
        Ok(class) => match class.downcast_into::<pyo3::types::PyType>() {
            Ok(class) => PyErr::from_type(class, WORDS),
            Err(_) => PyTypeError::new_err(WORDS),
        },
        Err(err) => err,
    }
}

/// An integer as orjson writes it (or refuses it).
fn write_int(out: &mut Vec<u8>, i: i128) -> Result<(), BeyondBits> {
    if !(i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&i) {
        return Err(BeyondBits);
    }
    out.extend_from_slice(i.to_string().as_bytes());
    Ok(())
}

/// A panic in the compiled store (a bug) as an ordinary exception: the record, message or
/// entry fails and goes to the dead-letter topic, rather than PanicException (a BaseException)
/// stopping the stage.
fn guarded<T>(work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(PyRuntimeError::new_err(
            "the compiled window store failed (a panic); see the worker's stderr",
        ))
    })
}

/// A float as orjson writes it, infinities and NaN as null.
fn write_number(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        json::write_float(out, f);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A Python value (as a JSON document holds it) as a Value; an int beyond 128 bits or any
/// other type is an error.
fn from_python(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.downcast_exact::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = value.downcast_exact::<pyo3::types::PyInt>() {
        // (orjson reads integers up to 64 bits, signed or not: 2**64 - 1 is a value too)
        return Ok(Value::Int(i.extract::<i128>()?));
    }
    if let Ok(f) = value.downcast_exact::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = value.downcast_exact::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_string()));
    }
    if let Ok(list) = value.downcast_exact::<PyList>() {
        return list
            .iter()
            .map(|item| from_python(&item))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(dict) = value.downcast_exact::<PyDict>() {
        let mut items = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            items.push((k.extract::<String>()?, from_python(&v)?));
        }
        return Ok(Value::object(items));
    }
    Err(bad("a value that is not JSON"))
}

fn float_of(value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let not_a_number = || PyTypeError::new_err("a time that is not a number");
    if let Ok(i) = value.downcast_exact::<pyo3::types::PyInt>() {
        let i: i64 = i.extract().map_err(|_| not_a_number())?;
        if i.unsigned_abs() > 1 << 53 {
            return Err(not_a_number());
        }
        return Ok(i as f64);
    }
    value
        .downcast_exact::<PyFloat>()
        .map(|f| f.value())
        .map_err(|_| not_a_number())
}

type Outcome<'py> = (
    Bound<'py, PyList>, // (incident id, change JSON) of each change
    Bound<'py, PyList>, // (input partition, newest time | None)
    usize,              // records fed
    f64,                // the newest event time fed (-inf: none)
    Bound<'py, PyList>, // (key, source, id, exception) of each record that failed
);

#[pymethods]
impl Windows {
    #[new]
    #[pyo3(signature = (spec, resolve, title, too_large, classes))]
    fn new(
        spec: &[u8],
        resolve: PyObject,
        title: PyObject,
        too_large: PyObject,
        classes: (PyObject, PyObject, PyObject, PyObject),
    ) -> PyResult<Windows> {
        let spec: Spec = serde_json::from_slice(spec)
            .map_err(|e| PyValueError::new_err(format!("bad window spec: {e}")))?;
        let mut rules = Vec::with_capacity(spec.rules.len());
        for rule in spec.rules {
            rules.push(Rule::new(rule).map_err(PyValueError::new_err)?);
        }
        let by_id = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ok(Windows {
            rules,
            by_id,
            lateness: spec.lateness,
            cap: spec.cap,
            plain_value: spec.plain_value,
            max_output: spec.max_output,
            max_change: spec.max_change,
            states: KeyedMap::default(),
            counts: HashMap::new(),
            evicted: Vec::new(),
            fed_keys: Vec::new(),
            routed: KeyedMap::default(),
            resolve,
            title,
            too_large,
            classes: [classes.0, classes.1, classes.2, classes.3],
            strings: HashMap::new(),
            sweep_keys: Vec::new(),
        })
    }

    /// Every record of a message fed: (changes, progress, fed, newest, failures); None when
    /// the message is not the shape ingest writes, or one of its events is not one the engine
    /// carries (the caller reads it with `records.read` and feeds its records one by one).
    #[pyo3(signature = (value, watermark = None))]
    fn feed_message<'py>(
        &mut self,
        py: Python<'py>,
        value: &[u8],
        watermark: Option<f64>,
    ) -> PyResult<Option<Outcome<'py>>> {
        guarded(|| self.feed_message_here(py, value, watermark))
    }

    /// One record fed (`records.read`'s WindowEvent): the change as (incident id, JSON), None
    /// for no change; raises as the Python engine's record would fail. False: not fed (its rule
    /// is not in the set).
    #[pyo3(signature = (key, event, watermark = None))]
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        event: &Bound<'py, PyAny>,
        watermark: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guarded(|| self.feed_here(py, key, event, watermark))
    }

    /// The keys fed since the last call (each once per feed), for the flush to write.
    fn take_fed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fed_keys)
    }

    fn take_evicted(&mut self) -> Vec<String> {
        std::mem::take(&mut self.evicted)
    }

    /// The changelog value of a key: its state as `orjson.dumps(state_to_dict(state))`, or
    /// None for a tombstone (no state, or an empty one, which is dropped).
    fn changelog<'py>(
        &mut self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guarded(|| self.changelog_here(py, key))
    }

    /// A sweep begins: the keys held now are the ones `sweep` looks at; how many.
    fn begin_sweep(&mut self) -> usize {
        self.sweep_keys = self.states.keys().map(str::to_string).collect();
        self.sweep_keys.len()
    }

    /// Up to `limit` more of the sweep's keys looked at; those still held whose newest event
    /// is older than `horizon` dropped: (the keys dropped, how many were looked at, how many
    /// are left to look at).
    fn sweep(&mut self, horizon: f64, limit: usize) -> (Vec<String>, usize, usize) {
        let mut dropped = Vec::new();
        let mut looked = 0;
        while looked < limit {
            let Some(key) = self.sweep_keys.pop() else {
                break;
            };
            looked += 1;
            if self.states.get(&key).is_some_and(|s| s.max_time < horizon) {
                self.remove(&key);
                dropped.push(key);
            }
        }
        if self.sweep_keys.is_empty() {
            self.sweep_keys = Vec::new(); // its memory back
        }
        (dropped, looked, self.sweep_keys.len())
    }

    fn drop(&mut self, key: &str) {
        self.remove(key);
    }

    /// A restored (or any) GroupState put in place, as `GroupStore.put` (the cap enforced).
    #[pyo3(signature = (key, state, rule_id = None))]
    fn put(&mut self, key: &str, state: &Bound<'_, PyAny>, rule_id: Option<&str>) -> PyResult<()> {
        let rule = match rule_id {
            Some(id) => self.by_id.get(id).copied(),
            None => self.rule_of(key),
        };
        let Some(rule) = rule else {
            return Err(bad("a state of a rule that is not in the set"));
        };
        let mut events = Vec::new();
        for e in state.getattr("events")?.try_iter()? {
            let e = e?;
            let (value, raw) = self.value_and_raw(&e)?;
            events.push(Ev {
                time: float_of(&e.getattr("time")?)?,
                seq: e.getattr("seq")?.extract()?,
                source: self.shared(e.getattr("source")?.extract::<&str>()?),
                id: Arc::from(e.getattr("id")?.extract::<&str>()?),
                kind: self.shared(e.getattr("type")?.extract::<&str>()?),
                severity: e.getattr("severity")?.extract()?,
                value,
                raw,
            });
        }
        let inc = state.getattr("incident")?;
        let incident = if inc.is_none() {
            None
        } else {
            let mut event_keys = HashSet::new();
            for pair in inc.getattr("event_keys")?.try_iter()? {
                let (s, i): (String, String) = pair?.extract()?;
                event_keys.insert((Arc::from(s.as_str()), Arc::from(i.as_str())));
            }
            Some(Incident {
                id: inc.getattr("id")?.extract()?,
                title: inc.getattr("title")?.extract()?,
                severity: inc.getattr("severity")?.extract()?,
                first_seen: float_of(&inc.getattr("first_seen")?)?,
                last_seen: float_of(&inc.getattr("last_seen")?)?,
                version: inc.getattr("version")?.extract()?,
                event_keys,
            })
        };
        let max_time = float_of(&state.getattr("max_time")?)?;
        let (keys, oldest) = State::index(&events);
        let state = State {
            events,
            incident,
            max_time,
            next_seq: state.getattr("next_seq")?.extract()?,
            keys,
            oldest,
        };
        self.place(rule, key, state);
        Ok(())
    }

    /// Changelog values restored in place (as `state_from_dict`, then `put`), in order from
    /// position `start`, without the GIL (the stage reads the next partition meanwhile), until
    /// one is left to Python: a value not the shape a flush writes (Python restores or refuses
    /// it; nothing is put), or of an unknown rule. Returns the newest event time of those
    /// restored (None if none was), the position of the entry left to Python (None: none was;
    /// Python puts it, then calls again from the next, so windows are placed, and a cap evicts,
    /// in the entries' order), and the positions of those whose restore panicked (a bug:
    /// nothing is put; Python refuses them). A key's rule is what precedes its first `|`.
    fn restore_many(
        &mut self,
        py: Python<'_>,
        keys: &Bound<'_, PyList>,
        values: &Bound<'_, PyList>,
        start: usize,
    ) -> PyResult<(Option<f64>, Option<usize>, Vec<usize>)> {
        if keys.len() != values.len() {
            return Err(PyValueError::new_err("as many keys as values"));
        }
        let (mut newest, mut panicked): (Option<f64>, Vec<usize>) = (None, Vec::new());
        let mut at = start;
        while at < keys.len() {
            // a slice at a time: an entry left to Python costs the next call at most a slice
            let end = keys.len().min(at + RESTORE_SLICE);
            let mut held = Vec::with_capacity(end - at);
            for i in at..end {
                let key = keys.get_item(i)?.downcast_into::<PyString>()?;
                held.push((key, values.get_item(i)?.downcast_into::<PyBytes>()?));
            }
            let mut entries = Vec::with_capacity(held.len());
            for (key, value) in &held {
                entries.push((key.to_str()?, value.as_bytes()));
            }
            let left = py.allow_threads(|| {
                for (offset, &(key, value)) in entries.iter().enumerate() {
                    let rule_id = key.split('|').next().unwrap_or(key);
                    let restored = panic::catch_unwind(AssertUnwindSafe(|| {
                        self.restore_here(key, value, rule_id)
                    }));
                    match restored {
                        Ok(Some(time)) => newest = Some(newest.map_or(time, |n| n.max(time))),
                        Ok(None) => return Some(at + offset),
                        Err(_) => panicked.push(at + offset),
                    }
                }
                None
            });
            if left.is_some() {
                return Ok((newest, left, panicked));
            }
            at = end;
        }
        Ok((newest, None, panicked))
    }

    /// The key's state as a Python GroupState (a copy: changing it changes nothing here).
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(state) = self.states.get(key) else {
            return Ok(None);
        };
        let [window_event, open_incident, group_state, missing] = &self.classes;
        let events = PyList::empty(py);
        let none = py.None();
        for e in &state.events {
            let value = match &e.value {
                None => missing.clone_ref(py).into_bound(py),
                Some(v) => to_python(py, v)?,
            };
            events.append(window_event.call1(
                py,
                (
                    e.time,
                    e.seq,
                    &*e.source,
                    &*e.id,
                    &*e.kind,
                    e.severity,
                    value,
                    &none,
                    PyBytes::new(py, &e.raw),
                ),
            )?)?;
        }
        let incident = match &state.incident {
            None => py.None().into_bound(py),
            Some(inc) => {
                let keys = pyo3::types::PySet::empty(py)?;
                for (s, i) in &inc.event_keys {
                    keys.add((&**s, &**i))?;
                }
                open_incident
                    .call1(
                        py,
                        (
                            &inc.id,
                            &inc.title,
                            inc.severity,
                            inc.first_seen,
                            inc.last_seen,
                            inc.version,
                            keys,
                        ),
                    )?
                    .into_bound(py)
            }
        };
        Ok(Some(
            group_state
                .call1(py, (events, incident, state.max_time, state.next_seq))?
                .into_bound(py),
        ))
    }

    /// Live groups of each rule (`GroupStore.counts`).
    fn counts(&self) -> HashMap<String, usize> {
        self.counts
            .iter()
            .map(|(&r, &n)| (self.rules[r].id.clone(), n))
            .collect()
    }

    fn keys(&self) -> Vec<String> {
        self.states.keys().map(str::to_string).collect()
    }

    fn __len__(&self) -> usize {
        self.states.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.states.contains_key(key)
    }
}
