//! Routing, as `responder.correlation.engine.route` does it: the rules that can match an event's
//! type (by the same index), their conditions (`correlation.match`), their group keys.
//!
//! The rule set arrives as JSON from `responder.streams.native` (the rules' residual
//! conditions, group paths, value_count field). A rule this cannot evaluate exactly (`re`,
//! grouping on lineage, a value JSON cannot carry) is marked Python-only: every event of a type
//! it could match goes back to Python.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Deserialize;

use crate::json::{self, Value};

#[derive(Deserialize)]
pub struct RuleSpec {
    pub id: String,
    pub types: Option<Vec<String>>,
    pub conditions: Vec<ConditionSpec>,
    pub group: Vec<Vec<String>>,
    pub value_field: Option<Vec<String>>,
    pub reads_lineage: bool,
    pub python_only: bool,
}

#[derive(Deserialize)]
pub struct ConditionSpec {
    pub parts: Vec<String>,
    pub op: String,
    pub values: Vec<serde_json::Value>,
}

enum Op {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

struct Condition {
    parts: Vec<String>,
    op: Op,
    values: Vec<Value>,
}

pub struct Rule {
    pub id: String,
    conditions: Vec<Condition>,
    group: Vec<Vec<String>>,
    pub value_field: Option<Vec<String>>,
    reads_lineage: bool,
    python_only: bool,
}

pub struct Plan {
    pub rules: Vec<usize>,
    pub python_only: bool,
    pub reads_lineage: bool,
}

pub struct RuleSet {
    pub rules: Vec<Rule>,
    by_type: HashMap<String, Plan>,
    any_type: Plan,
}

fn convert(value: &serde_json::Value) -> Option<Value> {
    Some(match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i as i128)
            } else if let Some(u) = n.as_u64() {
                Value::Int(u as i128)
            } else {
                Value::Float(n.as_f64()?)
            }
        }
        serde_json::Value::String(s) => Value::Str(s.clone()),
        _ => return None, // a rule's values are scalars (`match._check_value`)
    })
}

fn condition(spec: &ConditionSpec) -> Option<Condition> {
    let op = match spec.op.as_str() {
        "eq" => Op::Eq,
        "contains" => Op::Contains,
        "startswith" => Op::StartsWith,
        "endswith" => Op::EndsWith,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "exists" => Op::Exists,
        _ => return None, // `re`: RE2 stays in Python
    };
    let values = spec
        .values
        .iter()
        .map(convert)
        .collect::<Option<Vec<_>>>()?;
    Some(Condition {
        parts: spec.parts.clone(),
        op,
        values,
    })
}

impl RuleSet {
    pub fn new(specs: Vec<RuleSpec>) -> RuleSet {
        let mut rules = Vec::with_capacity(specs.len());
        let mut indexed: Vec<(String, usize)> = Vec::new();
        let mut any: Vec<usize> = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let conditions: Option<Vec<Condition>> =
                spec.conditions.iter().map(condition).collect();
            let python_only = spec.python_only || conditions.is_none();
            match &spec.types {
                None => any.push(i),
                Some(types) => indexed.extend(types.iter().map(|t| (t.clone(), i))),
            }
            rules.push(Rule {
                id: spec.id,
                conditions: conditions.unwrap_or_default(),
                group: spec.group,
                value_field: spec.value_field,
                reads_lineage: spec.reads_lineage,
                python_only,
            });
        }
        let plan = |ids: Vec<usize>| Plan {
            python_only: ids.iter().any(|&i| rules[i].python_only),
            reads_lineage: ids.iter().any(|&i| rules[i].reads_lineage),
            rules: ids,
        };
        let mut specific: HashMap<String, Vec<usize>> = HashMap::new();
        for (t, i) in indexed {
            specific.entry(t).or_default().push(i);
        }
        let by_type = specific
            .into_iter()
            .map(|(t, mut ids)| {
                ids.extend(any.iter().copied());
                (t, plan(ids))
            })
            .collect();
        let any_type = plan(any);
        RuleSet {
            rules,
            by_type,
            any_type,
        }
    }

    pub fn plan(&self, event_type: &str) -> &Plan {
        self.by_type.get(event_type).unwrap_or(&self.any_type)
    }
}

/// `match.get_path`: nested keys first; where that fails, keys that contain dots, longest first.
pub fn get_path<'a>(doc: &'a Value, parts: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for part in parts {
        match current.get(part) {
            Some(next) => current = next,
            None => return get_dotted(doc, parts),
        }
    }
    Some(current)
}

fn get_dotted<'a>(doc: &'a Value, parts: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    let mut i = 0;
    while i < parts.len() {
        if !matches!(current, Value::Object(..)) {
            return None;
        }
        let mut found = false;
        for j in (i + 1..=parts.len()).rev() {
            let candidate = parts[i..j].join(".");
            if let Some(next) = current.get(&candidate) {
                current = next;
                i = j;
                found = true;
                break;
            }
        }
        if !found {
            return None;
        }
    }
    Some(current)
}

/// Python's comparison of an int or float with another, exactly (no rounding of either).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => int_float(*x, *y),
        (Value::Float(x), Value::Int(y)) => int_float(*y, *x).map(Ordering::reverse),
        _ => None,
    }
}

fn int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= 1.7e38 {
        return Some(Ordering::Less);
    }
    if f <= -1.7e38 {
        return Some(Ordering::Greater);
    }
    let floor = f.floor();
    let whole = floor as i128; // exact: |floor| < 2^127
    if floor == f {
        return Some(i.cmp(&whole));
    }
    // f lies strictly between `whole` and `whole + 1`
    Some(if i <= whole {
        Ordering::Less
    } else {
        Ordering::Greater
    })
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(_))
}

/// `match._eq`: numbers by value (1 == 1.0), anything else of the same type and equal.
fn eq(actual: &Value, expected: &Value) -> bool {
    if is_number(actual) && is_number(expected) {
        return compare(actual, expected) == Some(Ordering::Equal);
    }
    match (actual, expected) {
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

impl Condition {
    fn holds(&self, doc: &Value) -> bool {
        let actual = get_path(doc, &self.parts);
        if let Op::Exists = self.op {
            let present = matches!(actual, Some(v) if *v != Value::Null);
            return self.values.contains(&Value::Bool(present));
        }
        let Some(actual) = actual else { return false };
        self.values.iter().any(|expected| match self.op {
            Op::Eq => eq(actual, expected),
            Op::Contains => match (actual, expected) {
                (Value::Str(a), Value::Str(b)) => a.contains(b.as_str()),
                (Value::Array(items), _) => items.iter().any(|item| eq(item, expected)),
                _ => false,
            },
            Op::StartsWith => matches!((actual, expected), (Value::Str(a), Value::Str(b)) if a.starts_with(b.as_str())),
            Op::EndsWith => matches!((actual, expected), (Value::Str(a), Value::Str(b)) if a.ends_with(b.as_str())),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                if !(is_number(actual) && is_number(expected)) {
                    return false;
                }
                match (compare(actual, expected), &self.op) {
                    (Some(o), Op::Gt) => o == Ordering::Greater,
                    (Some(o), Op::Gte) => o != Ordering::Less,
                    (Some(o), Op::Lt) => o == Ordering::Less,
                    (Some(o), Op::Lte) => o != Ordering::Greater,
                    _ => false,
                }
            }
            Op::Exists => unreachable!(),
        })
    }
}

impl Rule {
    /// The group key (`rule|[values]`, as `engine.route` spells it) if the event matches.
    pub fn key(&self, doc: &Value) -> Option<String> {
        if !self.conditions.iter().all(|c| c.holds(doc)) {
            return None;
        }
        let mut out = Vec::with_capacity(self.id.len() + 32);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(b"|[");
        for (i, parts) in self.group.iter().enumerate() {
            let value = get_path(doc, parts)?;
            if *value == Value::Null {
                return None;
            }
            if i > 0 {
                out.push(b',');
            }
            json::write(&mut out, value);
        }
        out.push(b']');
        String::from_utf8(out).ok()
    }
}
