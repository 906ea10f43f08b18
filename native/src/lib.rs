//! The ingest stage's compiled path (`responder.streams.native` wraps it).
//!
//! `Router` is `responder.streams.records.Router` with the event's validation
//! (`events.fast.parse_event_doc`) and routing (`correlation.engine.route`) done here: it packs
//! events into the correlation topic's messages byte for byte as the Python router would. An
//! event it cannot take with certainty (`add_raw` answers -1) is parsed and routed by Python,
//! which hands the result to `add_routed`, so the messages keep the events' order.
//!
//! `Windows` (windows.rs) is the correlation stage's window state and engine, compiled.

mod audit;
mod copy;
mod event;
mod json;
mod keyed;
mod mask;
mod message;
mod pyjson;
mod restore;
mod rules;
mod windows;

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use rules::{RuleSet, RuleSpec};

/// Window state is many small allocations (a million windows restored at once): mimalloc
/// makes and frees them at about a third of the system allocator's cost here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHUNK_BYTES: usize = 512 * 1024;
const RECORD_BYTES: usize = 8;
const MAGIC: &[u8] = b"RSP3";

#[derive(Default)]
struct Chunk {
    heads: Vec<u8>, // `[offset,size,source,id,type,rank,time]` entries, comma-separated
    blobs: Vec<u8>,
    recs: Vec<u8>, // `[key,index(,value)]` entries, comma-separated
    count: usize,  // events in `heads`
    offset: usize,
    size: usize,
    last: i64,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            last: -1,
            ..Default::default()
        }
    }

    fn message(&self, progress: Option<&[u8]>) -> Vec<u8> {
        let mut header = Vec::with_capacity(self.heads.len() + self.recs.len() + 32);
        header.extend_from_slice(b"{\"docs\":[");
        header.extend_from_slice(&self.heads);
        header.extend_from_slice(b"],\"recs\":[");
        header.extend_from_slice(&self.recs);
        header.push(b']');
        if let Some(wm) = progress {
            header.extend_from_slice(b",\"wm\":");
            header.extend_from_slice(wm);
        }
        header.push(b'}');
        let mut out = Vec::with_capacity(8 + header.len() + self.blobs.len());
        out.extend_from_slice(MAGIC);
        // (a header beyond 4 GiB cannot be framed; far beyond any message the topic takes)
        let size = u32::try_from(header.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.blobs);
        out
    }
}

/// A routed event: its head entry (`source,id,type,rank,time`), body, epoch time, records.
type Routed = (Vec<u8>, Vec<u8>, f64, Vec<Record>);

/// One event's record: its group key and, for a value_count rule, the value's JSON.
struct Record {
    key: String,
    value: Option<Vec<u8>>,
}

#[pyclass(module = "responder_native")]
struct Router {
    rules: RuleSet,
    partitions: u32,
    chunks: Vec<(u32, Vec<Chunk>)>, // per partition, in the order partitions were first used
    slot: Vec<Option<usize>>,       // partition → its index in `chunks`
    #[pyo3(get)]
    events: i64,
    #[pyo3(get)]
    records: usize,
    progress: BTreeMap<i64, Option<f64>>,
}

fn partition_for(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions
}

impl Router {
    fn note_progress(&mut self, input_partition: Option<i64>, time: f64) {
        if let Some(p) = input_partition {
            let newest = self.progress.entry(p).or_insert(None);
            if newest.is_none_or(|t| time > t) {
                *newest = Some(time);
            }
        }
    }

    /// Packs one routed event (`Router.add` from its records on).
    fn pack(&mut self, head: &[u8], body: &[u8], records: Vec<Record>) -> usize {
        let index = self.events;
        self.events += 1;
        let n = records.len();
        for record in records {
            let partition = partition_for(&record.key, self.partitions);
            let at = match self.slot[partition as usize] {
                Some(at) => at,
                None => {
                    self.chunks.push((partition, vec![Chunk::new()]));
                    self.slot[partition as usize] = Some(self.chunks.len() - 1);
                    self.chunks.len() - 1
                }
            };
            let cut = &mut self.chunks[at].1;
            if cut
                .last()
                .is_some_and(|c| c.last != index && c.size > CHUNK_BYTES)
            {
                cut.push(Chunk::new());
            }
            let chunk = cut
                .last_mut()
                .expect("a partition's list always holds a chunk");
            if chunk.last != index {
                if chunk.count > 0 {
                    chunk.heads.push(b',');
                }
                chunk.heads.push(b'[');
                chunk
                    .heads
                    .extend_from_slice(chunk.offset.to_string().as_bytes());
                chunk.heads.push(b',');
                chunk
                    .heads
                    .extend_from_slice(body.len().to_string().as_bytes());
                chunk.heads.push(b',');
                chunk.heads.extend_from_slice(head);
                chunk.heads.push(b']');
                chunk.blobs.extend_from_slice(body);
                chunk.offset += body.len();
                chunk.size += body.len();
                chunk.count += 1;
                chunk.last = index;
            }
            if !chunk.recs.is_empty() {
                chunk.recs.push(b',');
            }
            chunk.recs.push(b'[');
            json::write_str(&mut chunk.recs, &record.key);
            chunk.recs.push(b',');
            chunk
                .recs
                .extend_from_slice((chunk.count - 1).to_string().as_bytes());
            if let Some(value) = &record.value {
                chunk.recs.push(b',');
                chunk.recs.extend_from_slice(value);
            }
            chunk.recs.push(b']');
            chunk.size += record.key.chars().count() + RECORD_BYTES; // Python counts characters
        }
        self.records += n;
        n
    }

    /// (head, body, epoch time, records) of a raw event this path takes, else None.
    fn route(&self, raw: &[u8], lineage: bool) -> Option<Routed> {
        let event = event::parse_event(raw)?;
        let text = |k: &str| match event.doc.get(k) {
            Some(json::Value::Str(s)) => Some(s.as_str()),
            _ => None,
        };
        let kind = text("type")?;
        let plan = self.rules.plan(kind);
        if plan.python_only || (lineage && plan.reads_lineage) {
            return None;
        }
        let mut records = Vec::new();
        for &i in &plan.rules {
            let rule = &self.rules.rules[i];
            if let Some(key) = rule.key(&event.doc) {
                let value = rule.value_field.as_ref().and_then(|field| {
                    rules::get_path(&event.doc, field).map(|v| {
                        let mut out = Vec::new();
                        json::write(&mut out, v);
                        out
                    })
                });
                records.push(Record { key, value });
            }
        }
        let head = head_of(text("source")?, text("id")?, kind, event.rank, event.time);
        Some((head, event.body, event.time, records))
    }

    fn progress_json(&self) -> Option<Vec<u8>> {
        if self.progress.is_empty() {
            return None;
        }
        let mut out = vec![b'['];
        for (i, (p, t)) in self.progress.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            out.extend_from_slice(p.to_string().as_bytes());
            out.push(b',');
            match t {
                Some(t) => json::write_float(&mut out, *t),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b']');
        }
        out.push(b']');
        Some(out)
    }
}

fn head_of(source: &str, id: &str, kind: &str, rank: u8, time: f64) -> Vec<u8> {
    let mut head = Vec::with_capacity(source.len() + id.len() + kind.len() + 40);
    json::write_str(&mut head, source);
    head.push(b',');
    json::write_str(&mut head, id);
    head.push(b',');
    json::write_str(&mut head, kind);
    head.push(b',');
    head.extend_from_slice(rank.to_string().as_bytes());
    head.push(b',');
    json::write_float(&mut head, time);
    head
}

#[pymethods]
impl Router {
    #[new]
    fn new(rules: &[u8], partitions: u32) -> PyResult<Router> {
        let specs: Vec<RuleSpec> =
            serde_json::from_slice(rules).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if partitions == 0 {
            return Err(PyValueError::new_err("partitions must be at least 1"));
        }
        Ok(Router {
            rules: RuleSet::new(specs),
            partitions,
            chunks: Vec::new(),
            slot: vec![None; partitions as usize],
            events: 0,
            records: 0,
            progress: BTreeMap::new(),
        })
    }

    fn reset(&mut self) {
        self.events = 0;
        self.records = 0;
        self.chunks.clear();
        self.slot.fill(None);
        self.progress.clear();
    }

    fn hold(&mut self, input_partitions: Vec<i64>) {
        for p in input_partitions {
            self.progress.entry(p).or_insert(None);
        }
    }

    /// Validates and routes one raw event: the records it became, or -1 (Python's to take:
    /// not certainly valid here, or its type needs what only Python evaluates). A panic in
    /// that pure part (a bug here, whatever the input) leaves the event to Python too.
    #[pyo3(signature = (raw, input_partition, lineage))]
    fn add_raw(&mut self, raw: &[u8], input_partition: Option<i64>, lineage: bool) -> i64 {
        let routed = panic::catch_unwind(AssertUnwindSafe(|| self.route(raw, lineage)));
        let Ok(Some((head, body, time, records))) = routed else {
            return -1;
        };
        self.note_progress(input_partition, time);
        if records.is_empty() {
            self.events += 1;
            return 0;
        }
        self.pack(&head, &body, records) as i64
    }

    /// An event Python validated and routed: (group key, value_count value as JSON or None).
    #[pyo3(signature = (source, id, kind, rank, time, body, records, input_partition))]
    #[allow(clippy::too_many_arguments)]
    fn add_routed(
        &mut self,
        source: &str,
        id: &str,
        kind: &str,
        rank: u8,
        time: f64,
        body: &[u8],
        records: Vec<(String, Option<Bound<'_, PyBytes>>)>,
        input_partition: Option<i64>,
    ) -> usize {
        self.note_progress(input_partition, time);
        if records.is_empty() {
            self.events += 1;
            return 0;
        }
        let head = head_of(source, id, kind, rank, time);
        let records = records
            .into_iter()
            .map(|(key, value)| Record {
                key,
                value: value.map(|v| v.as_bytes().to_vec()),
            })
            .collect();
        self.pack(&head, body, records)
    }

    /// {input partition: newest event time or None}
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (p, t) in &self.progress {
            out.set_item(p, t)?;
        }
        Ok(out)
    }

    fn set_progress(&mut self, progress: BTreeMap<i64, Option<f64>>) {
        self.progress = progress;
    }

    /// Messages per correlation partition, as `records.Router.messages` builds them.
    #[pyo3(signature = (announce = false))]
    fn messages<'py>(&self, py: Python<'py>, announce: bool) -> PyResult<Bound<'py, PyDict>> {
        let progress = self.progress_json();
        let out = PyDict::new(py);
        for (p, cut) in &self.chunks {
            // (in first-use order, as Python's dict: a message too large is found first alike)
            let list = PyList::empty(py);
            for (i, chunk) in cut.iter().enumerate() {
                let wm = if i + 1 == cut.len() {
                    progress.as_deref()
                } else {
                    None
                };
                list.append(PyBytes::new(py, &chunk.message(wm)))?;
            }
            out.set_item(p, list)?;
        }
        if announce {
            if let Some(wm) = progress.as_deref() {
                for p in 0..self.partitions {
                    if self.slot[p as usize].is_none() {
                        let message = Chunk::new().message(Some(wm));
                        out.set_item(p, PyList::new(py, [PyBytes::new(py, &message)])?)?;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The JSON orjson writes for a float (tests compare the two).
#[pyfunction]
fn float_json<'py>(py: Python<'py>, value: f64) -> PyResult<Bound<'py, PyBytes>> {
    if !value.is_finite() {
        return Err(PyValueError::new_err("not a finite number"));
    }
    let mut out = Vec::new();
    json::write_float(&mut out, value);
    Ok(PyBytes::new(py, &out))
}

/// (body, epoch time) of a raw event as this path takes it, or None (tests compare with
/// `events.fast.parse_event_doc`).
#[pyfunction]
fn parse_event<'py>(py: Python<'py>, raw: &[u8]) -> Option<(Bound<'py, PyBytes>, f64)> {
    event::parse_event(raw).map(|e| (PyBytes::new(py, &e.body), e.time))
}

/// The records and input progress of one correlation message, as `records.read` returns them
/// (`window_event` the class, `missing` the sentinel); None: `records.read` must read it.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_message<'py>(
    py: Python<'py>,
    value: &[u8],
    window_event: &Bound<'py, PyAny>,
    missing: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyList>, Bound<'py, PyList>)>> {
    match panic::catch_unwind(AssertUnwindSafe(|| {
        message::read(py, value, window_event, missing)
    })) {
        Ok(result) => result,
        Err(_) => Ok(None), // a bug here: the Python reader decides
    }
}

/// The audit chain's hashes and COPY rows of a batch of masked records (audit.rs); None: the
/// Python path appends them (data that is not plain JSON, or a bug here).
#[pyfunction]
#[pyo3(signature = (records, first, prev, at, key, key_id, copy_at))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn audit_chain<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    first: i64,
    prev: &str,
    at: &str,
    key: Option<&[u8]>,
    key_id: Option<&str>,
    copy_at: Option<&str>,
) -> Option<(Vec<String>, Option<Bound<'py, PyBytes>>)> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        let head = audit::Head {
            first,
            prev,
            at,
            key,
            key_id,
        };
        audit::chain(py, records, &head, copy_at)
    }))
    .unwrap_or(None)
}

/// `rows` (dicts) in COPY's text format, the columns `names` (`json`: which hold JSON); None:
/// the driver writes them (a value it does not take, or a bug here). copy.rs.
#[pyfunction]
fn copy_rows<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    names: Vec<String>,
    json: Vec<bool>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    panic::catch_unwind(AssertUnwindSafe(|| copy::rows(py, rows, &names, &json)))
        .unwrap_or(Ok(None))
}

/// `records` copied with the values under secret-looking keys masked (`is_secret_key`, or of
/// `secret_type`: `redacted` instead) and their texts joined by "\n", as
/// `security.redact._copy_masking_keys` gathers them; None: Python copies them. mask.rs.
#[pyfunction]
fn copy_masking_keys<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    is_secret_key: Bound<'py, PyAny>,
    secret_type: Bound<'py, PyAny>,
    redacted: Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyList>, String)>> {
    panic::catch_unwind(AssertUnwindSafe(|| {
        mask::Masker::new(is_secret_key, secret_type, redacted).copy_all(py, records)
    }))
    .unwrap_or(Ok(None))
}

#[pymodule]
fn responder_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Router>()?;
    m.add_class::<windows::Windows>()?;
    m.add_function(wrap_pyfunction!(read_message, m)?)?;
    m.add_function(wrap_pyfunction!(float_json, m)?)?;
    m.add_function(wrap_pyfunction!(parse_event, m)?)?;
    m.add_function(wrap_pyfunction!(audit_chain, m)?)?;
    m.add_function(wrap_pyfunction!(copy_rows, m)?)?;
    m.add_function(wrap_pyfunction!(copy_masking_keys, m)?)?;
    Ok(())
}
