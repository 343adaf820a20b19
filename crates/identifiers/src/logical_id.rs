//! A resource's logical id (FHIR R4 datatypes.html#id: `[A-Za-z0-9\-\.]{1,64}`),
//! checked in one place for every id the gateway puts in a URL or takes
//! from one: stored documents', national servers' and references'.

/// Whether `id` is a FHIR logical id.
pub fn is_logical_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_1_to_64_of_the_id_alphabet() {
        assert!(is_logical_id("ps-lu.1"));
        assert!(is_logical_id(&"a".repeat(64)));
        assert!(!is_logical_id(&"a".repeat(65)));
        assert!(!is_logical_id(""));
        assert!(!is_logical_id("a/b"));
        assert!(!is_logical_id("a_b"));
    }
}
