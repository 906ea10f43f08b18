//! Records copied with every value under a secret-looking key masked, and their texts gathered
//! (`security.redact._copy_masking_keys`, which stays the reference): the first half of
//! `scrub_each`, which masks the sink's thousands of audit records a batch. Whether a key is a
//! secret's stays Python's decision (`is_secret_key`, asked once per distinct key and call), and
//! so does the search of the gathered texts. Anything it cannot take the same way (a key that
//! is not an exact str, a dict, list or tuple of a subclass, a lone surrogate, deeper data)
//! answers None and Python copies the records.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::pyjson::exact_str;

const MAX_DEPTH: usize = 200; // deeper data is left to Python (and its recursion limit)

pub struct Masker<'py> {
    is_secret_key: Bound<'py, PyAny>,
    secret_type: Bound<'py, PyAny>, // values of this type are masked under any key (SecretStr)
    redacted: Bound<'py, PyAny>,
    secret: HashMap<String, bool>, // is_secret_key's answers in this call
    texts: String,                 // every text met, joined by "\n" (`redact._JOIN`)
    first: bool,
}

impl<'py> Masker<'py> {
    pub fn new(
        is_secret_key: Bound<'py, PyAny>,
        secret_type: Bound<'py, PyAny>,
        redacted: Bound<'py, PyAny>,
    ) -> Masker<'py> {
        Masker {
            is_secret_key,
            secret_type,
            redacted,
            secret: HashMap::new(),
            texts: String::new(),
            first: true,
        }
    }

    /// `records` copied, and the texts of all of them joined; None: left to Python.
    pub fn copy_all(
        mut self,
        py: Python<'py>,
        records: &Bound<'py, PyList>,
    ) -> PyResult<Option<(Bound<'py, PyList>, String)>> {
        let copies = PyList::empty(py);
        for record in records.iter() {
            match self.copy(py, "", &record, 0)? {
                Some(copied) => copies.append(copied)?,
                None => return Ok(None),
            }
        }
        Ok(Some((copies, self.texts)))
    }

    fn is_secret(&mut self, key: &str) -> PyResult<bool> {
        if let Some(&answer) = self.secret.get(key) {
            return Ok(answer);
        }
        let answer = self.is_secret_key.call1((key,))?.is_truthy()?;
        self.secret.insert(key.to_owned(), answer);
        Ok(answer)
    }

    fn text(&mut self, text: &str) {
        if !self.first {
            self.texts.push('\n');
        }
        self.first = false;
        self.texts.push_str(text);
    }

    /// `value`, held under `key`, as `_copy_masking_keys` copies it.
    fn copy(
        &mut self,
        py: Python<'py>,
        key: &str,
        value: &Bound<'py, PyAny>,
        depth: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if depth > MAX_DEPTH {
            return Ok(None);
        }
        if value.is_none() {
            return Ok(Some(value.clone()));
        }
        // the plain JSON scalars first (an exact type is no SecretStr): most values are these
        if value.is_exact_instance_of::<PyString>() {
            if self.is_secret(key)? {
                return Ok(Some(self.redacted.clone()));
            }
            let Some(text) = exact_str(value) else {
                return Ok(None); // a lone surrogate: UTF-8 cannot carry it
            };
            self.text(text);
            return Ok(Some(value.clone()));
        }
        if value.is_exact_instance_of::<PyInt>()
            || value.is_exact_instance_of::<PyBool>()
            || value.is_exact_instance_of::<PyFloat>()
        {
            let masked = self.is_secret(key)?;
            return Ok(Some(if masked {
                self.redacted.clone()
            } else {
                value.clone()
            }));
        }
        if value.is_instance(&self.secret_type)? || (!value.is_none() && self.is_secret(key)?) {
            return Ok(Some(self.redacted.clone()));
        }
        if value.is_instance_of::<PyDict>() {
            let Ok(dict) = value.downcast_exact::<PyDict>() else {
                return Ok(None); // a subclass may answer items() its own way
            };
            let copied = PyDict::new(py);
            for (k, v) in dict.iter() {
                let Some(name) = exact_str(&k) else {
                    return Ok(None); // str(k) is Python's to call (and may not be UTF-8)
                };
                self.text(name);
                match self.copy(py, name, &v, depth + 1)? {
                    Some(child) => copied.set_item(&k, child)?,
                    None => return Ok(None),
                }
            }
            return Ok(Some(copied.into_any()));
        }
        if value.is_instance_of::<PyString>() {
            let Ok(text) = value.downcast::<PyString>()?.to_str() else {
                return Ok(None); // a lone surrogate: UTF-8 cannot carry it
            };
            self.text(text);
            return Ok(Some(value.clone()));
        }
        if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            if !(value.is_exact_instance_of::<PyList>() || value.is_exact_instance_of::<PyTuple>())
            {
                return Ok(None);
            }
            let copied = PyList::empty(py);
            for item in value.try_iter()? {
                match self.copy(py, key, &item?, depth + 1)? {
                    Some(child) => copied.append(child)?,
                    None => return Ok(None),
                }
            }
            return Ok(Some(copied.into_any()));
        }
        Ok(Some(value.clone()))
    }
}
