//! A patient's national identifier ([`PatientIdentifier`]): the FHIR
//! Identifier's `system` and `value`
//! (<https://hl7.org/fhir/R4/datatypes.html#Identifier>), and the
//! `system|value` key the store, the audit trail and the access log index
//! the patient by. The key is written as FHIR token search writes an
//! identifier (<https://hl7.org/fhir/R4/search.html#token>), unescaped: a
//! system is a URI and has no `|`, so the first `|` separates the two.

use std::fmt;

/// A patient's identifier, both parts present.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatientIdentifier {
    system: String,
    value: String,
}

impl PatientIdentifier {
    /// `system` and `value`; `None` when either is empty or the system
    /// holds a `|`.
    pub fn new(system: &str, value: &str) -> Option<Self> {
        (!system.is_empty() && !value.is_empty() && !system.contains('|')).then(|| Self {
            system: system.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Reads a key written by [`PatientIdentifier::key`].
    pub fn from_key(key: &str) -> Option<Self> {
        let (system, value) = key.split_once('|')?;
        Self::new(system, value)
    }

    /// The identifier system (a URI, e.g. an OID as `urn:oid:…`).
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The value within that system.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `system|value`: how the store and the audit trail index the patient.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PatientIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_system_bar_value_and_reads_back() {
        let patient = PatientIdentifier::new("urn:oid:1.3.182.4.4", "BE-1|2").unwrap();
        assert_eq!(patient.key(), "urn:oid:1.3.182.4.4|BE-1|2");
        assert_eq!(PatientIdentifier::from_key(&patient.key()), Some(patient));
    }

    #[test]
    fn both_parts_are_required() {
        assert_eq!(PatientIdentifier::new("", "v"), None);
        assert_eq!(PatientIdentifier::new("s", ""), None);
        assert_eq!(PatientIdentifier::new("a|b", "v"), None);
        assert_eq!(PatientIdentifier::from_key("novalue"), None);
    }
}
