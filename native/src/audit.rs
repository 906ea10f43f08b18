//! The audit chain's rows, compiled (`responder.audit.native` wraps it).
//!
//! `chain` does for a batch of records what `audit.store.append` does in Python once they are
//! masked: each record's canonical text (`audit.chain.canonical`: JSON with sorted keys, no
//! spaces, non-ASCII as it is), its hash (HMAC-SHA256 with the chain key, or SHA-256 without
//! one) linked to the one before, and, for PostgreSQL, the rows as COPY's text format carries
//! them. It takes plain JSON data only (exact str, int, bool, None, finite float, list, dict
//! with str keys); anything else (a tuple, a subclass, a lone surrogate, a NaN, a NUL in a text
//! column) makes it answer None and Python appends the batch. A property test holds the two
//! paths to the same hashes and rows.

use hmac::{Hmac, KeyInit, Mac};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use sha2::{Digest, Sha256};

use crate::copy::{copy_json, copy_text};
use crate::json::write_str;
use crate::pyjson::{exact_str, write_value, Style};

fn hex(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(digest.len() * 2);
    for &b in digest {
        text.push(HEX[(b >> 4) as usize] as char);
        text.push(HEX[(b & 0xf) as usize] as char);
    }
    text
}

/// The record's link: HMAC-SHA256 under the chain key (keyed once a batch: `keyed`), else
/// SHA-256, of the previous hash and the record's canonical text.
fn link(prev: &str, canonical: &[u8], keyed: Option<&Hmac<Sha256>>) -> String {
    match keyed {
        Some(keyed) => {
            let mut mac = keyed.clone();
            mac.update(prev.as_bytes());
            mac.update(canonical);
            hex(&mac.finalize().into_bytes())
        }
        None => {
            let mut sha = Sha256::new();
            sha.update(prev.as_bytes());
            sha.update(canonical);
            hex(&sha.finalize())
        }
    }
}

struct Record<'py> {
    actor: String,
    action: String,
    subject: String,
    data: Bound<'py, PyAny>,
}

fn record<'py>(item: &Bound<'py, PyAny>) -> Option<Record<'py>> {
    let tuple = item.downcast::<PyTuple>().ok()?;
    if tuple.len() != 4 {
        return None;
    }
    let text = |i: usize| -> Option<String> {
        let value = tuple.get_item(i).ok()?;
        Some(exact_str(&value)?.to_owned())
    };
    Some(Record {
        actor: text(0)?,
        action: text(1)?,
        subject: text(2)?,
        data: tuple.get_item(3).ok()?,
    })
}

/// Where a batch joins the chain: its first sequence number, the hash before it, the hashed
/// text of its time (`chain.utc_text`) and the key (with its id) that hashes it.
pub struct Head<'a> {
    pub first: i64,
    pub prev: &'a str,
    pub at: &'a str,
    pub key: Option<&'a [u8]>,
    pub key_id: Option<&'a str>,
}

/// Chains `records` ((actor, action, subject, data) tuples, data masked) after `head`.
/// Answers each record's hash and, with `copy_at` (the time as the `at` column's text), the
/// rows (seq, at, actor, action, subject, data, prev_hash, hash, key_id) in COPY's text
/// format, data in its own key order; None where a record is not plain JSON data.
pub fn chain<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    head: &Head<'_>,
    copy_at: Option<&str>,
) -> Option<(Vec<String>, Option<Bound<'py, PyBytes>>)> {
    let mut hashes = Vec::with_capacity(records.len());
    let mut rows: Vec<u8> = Vec::new();
    let mut canonical: Vec<u8> = Vec::with_capacity(1024);
    let mut data: Vec<u8> = Vec::with_capacity(1024);
    let mut at_json = Vec::with_capacity(40);
    write_str(&mut at_json, head.at);
    let mut prev = head.prev.to_owned();
    let keyed = head.key.map(|secret| {
        let Ok(mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac
    });
    for (i, item) in records.iter().enumerate() {
        let rec = record(&item)?;
        let seq = head.first + i as i64;
        canonical.clear();
        canonical.extend_from_slice(b"{\"action\":");
        write_str(&mut canonical, &rec.action);
        canonical.extend_from_slice(b",\"actor\":");
        write_str(&mut canonical, &rec.actor);
        canonical.extend_from_slice(b",\"at\":");
        canonical.extend_from_slice(&at_json);
        canonical.extend_from_slice(b",\"data\":");
        if !write_value(&mut canonical, &rec.data, Style::Canonical, 0) {
            return None;
        }
        canonical.extend_from_slice(b",\"seq\":");
        canonical.extend_from_slice(seq.to_string().as_bytes());
        canonical.extend_from_slice(b",\"subject\":");
        write_str(&mut canonical, &rec.subject);
        canonical.push(b'}');
        let digest = link(&prev, &canonical, keyed.as_ref());
        if let Some(at_column) = copy_at {
            data.clear();
            if !write_value(&mut data, &rec.data, Style::Column, 0) {
                return None;
            }
            rows.extend_from_slice(seq.to_string().as_bytes());
            rows.push(b'\t');
            if !copy_text(&mut rows, at_column) {
                return None;
            }
            for text in [&rec.actor, &rec.action, &rec.subject] {
                rows.push(b'\t');
                if !copy_text(&mut rows, text) {
                    return None;
                }
            }
            rows.push(b'\t');
            copy_json(&mut rows, &data); // (JSON text: only its backslashes are escaped)
            rows.push(b'\t');
            // the head's hash comes from the database: escaped like any other text
            if !copy_text(&mut rows, &prev) {
                return None;
            }
            rows.push(b'\t');
            rows.extend_from_slice(digest.as_bytes()); // (hex)
            rows.push(b'\t');
            match head.key_id {
                Some(id) => {
                    if !copy_text(&mut rows, id) {
                        return None;
                    }
                }
                None => rows.extend_from_slice(b"\\N"),
            }
            rows.push(b'\n');
        }
        prev.clone_from(&digest);
        hashes.push(digest);
    }
    let copied = copy_at.map(|_| PyBytes::new(py, &rows));
    Some((hashes, copied))
}
