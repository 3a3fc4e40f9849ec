//! STIX 2.1 in and out: a bundle becomes advisory drafts (`import`), a stored advisory revision
//! becomes STIX objects (`export`). The mapping rules and decisions are written down in
//! `docs/interop.md` ("STIX 2.1").
//!
//! Owns: the structural checks of incoming STIX (`check`), the 2.0 → 2.1 upgrade (`upgrade`),
//! the STIX patterning parser and its mapping to our indicator kinds (`pattern`), TLP 1.0/2.0
//! marking definitions and the Tanoa signature extension (`markings`), and the deterministic ids
//! of the objects we generate.
//! Must never: do I/O, read a clock, sign, or change an object it keeps: every imported object
//! is stored verbatim in `extras.stix` (ids, `modified`, key order, numbers and custom
//! properties untouched) and given back unchanged on export.

mod check;
mod export;
mod import;
pub mod markings;
pub mod pattern;
mod upgrade;

#[cfg(test)]
mod tests;

pub use export::{
    advisory_objects, bundle, format_timestamp, kept_objects, stix_pattern, tanoa_uuid,
};
pub use import::{
    ImportOptions, ImportSummary, Imported, ObjectNote, PartSummary, TlpSource, import_bundle,
    import_bundle_report,
};
pub use upgrade::upgrade_to_21;

/// One reason an object (or the bundle) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError {
    /// The object's STIX id, or its position (`objects[3]`) when it has no usable id.
    pub id: String,
    /// What is wrong, naming the property and quoting the value.
    pub reason: String,
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.id, self.reason)
    }
}

/// Why a STIX document was not imported. Nothing is imported when any error is found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StixError {
    /// The bytes are not JSON.
    #[error("not valid JSON: {detail}")]
    Json {
        /// The parser's message with line and column.
        detail: String,
    },
    /// Valid JSON but not a STIX bundle or object.
    #[error("not a STIX bundle or object: {detail}")]
    NotStix {
        /// What is missing.
        detail: String,
    },
    /// One or more objects break the STIX rules we check.
    #[error("{} invalid: {}", plural(errors.len() + omitted, "problem", "problems"), join(errors, *omitted))]
    Invalid {
        /// The first errors (at most [`MAX_REPORTED`]).
        errors: Vec<ObjectError>,
        /// How many more were found but not listed.
        omitted: usize,
    },
    /// The bundle carries no TLP marking and no TLP was given.
    #[error(
        "{bundle}: no TLP marking (TLP 2.0 or TLP 1.0 marking-definition) is referenced by any \
         object; pass --tlp to say which TLP applies"
    )]
    NoTlp {
        /// Bundle (or object) id.
        bundle: String,
    },
    /// The options are unusable (bad --id, audience without an AMBER/RED TLP…).
    #[error("{0}")]
    Options(String),
    /// The bundle cannot be cut into advisories within the limits.
    #[error("{0}")]
    TooLarge(String),
}

/// How many object errors are listed in full.
pub const MAX_REPORTED: usize = 50;

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn join(errors: &[ObjectError], omitted: usize) -> String {
    let mut out = String::new();
    for (n, e) in errors.iter().enumerate() {
        if n > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    if omitted > 0 {
        out.push_str(&format!("; and {omitted} more"));
    }
    out
}

/// Collects object errors, keeping the first [`MAX_REPORTED`].
#[derive(Debug, Default)]
pub(crate) struct Problems {
    errors: Vec<ObjectError>,
    omitted: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, id: impl Into<String>, reason: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(ObjectError {
                id: id.into(),
                reason: reason.into(),
            });
        } else {
            self.omitted += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn into_result(self) -> Result<(), StixError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(StixError::Invalid {
                errors: self.errors,
                omitted: self.omitted,
            })
        }
    }
}
