//! Which version of a canonical a compiled structure means, when the
//! registry holds several (IPS 1.1.0 beside 2.0.0-ballot, HL7 Europe
//! Laboratory 0.1.0 beside 0.2.0-ci).
//!
//! A profile refers to other definitions by version-less canonicals: its
//! elements' type profiles (`type.profile`, `type.targetProfile`), its
//! bindings' value sets, and the extensions its instances carry. The Java
//! validator resolves those in the dependency scope of the package the
//! profile came from (`BaseWorkerContext.fetchResourceWithExceptionByVersion`
//! with the profile as `sourceForReference`, `populatePVList`,
//! `CanonicalResourceManager.getByPackage`); the registry does the same in
//! [`Registry::resolve_in`]. Here that is decided once, at load: every
//! version-less canonical a structure names that its package's scope
//! resolves to another version than the default is **pinned** to
//! `url|version`, so the walk looks up exactly that version and pays
//! nothing per document. Canonicals whose scoped and default versions agree
//! (every one, while each URL has one version) are left as written.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use ehds_profiles::Registry;

use super::compile::Structure;

/// The resource types whose canonicals a structure names and pins.
const PINNED_TYPES: [&str; 2] = ["StructureDefinition", "ValueSet"];

/// By package index (the registry's load order): version-less URL →
/// `url|version` its dependency scope resolves to, where that differs from
/// the default.
pub(super) fn pins(registry: &Registry) -> Vec<HashMap<String, String>> {
    // Only URLs held in more than one version can resolve differently.
    let mut counts: HashMap<(&str, &str), usize> = HashMap::default();
    for loaded in registry.iter() {
        if PINNED_TYPES.contains(&loaded.resource_type.as_str()) {
            *counts
                .entry((loaded.resource_type.as_str(), loaded.url.as_str()))
                .or_default() += 1;
        }
    }
    let several: Vec<(&str, &str)> = counts
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .map(|(key, _)| key)
        .collect();
    registry
        .packages()
        .iter()
        .map(|package| {
            let scope = registry.dependency_scope(package);
            let mut pins = HashMap::default();
            for &(resource_type, url) in &several {
                let scoped = registry.resolve_in(Some(resource_type), url, &scope);
                let default = registry.resolve_typed(resource_type, url);
                if let Some(scoped) = scoped
                    && !default.is_some_and(|d| std::ptr::eq(d, scoped))
                {
                    pins.insert(url.to_owned(), scoped.canonical());
                }
            }
            pins
        })
        .collect()
}

/// Rewrites the version-less canonicals `structure` names (type profiles,
/// target profiles, binding value sets) that `pins` holds to their pinned
/// `url|version`.
pub(super) fn pin(structure: &mut Structure, pins: &HashMap<String, String>) {
    if pins.is_empty() {
        return;
    }
    let pinned = |canonical: &mut String| {
        if let Some(to) = pins.get(canonical.as_str()) {
            canonical.clone_from(to);
        }
    };
    for element in &mut structure.elements {
        for type_ref in &mut element.types {
            type_ref.profiles.iter_mut().for_each(pinned);
            type_ref.target_profiles.iter_mut().for_each(pinned);
        }
        if let Some(value_set) = element.binding.as_mut().and_then(|b| b.value_set.as_mut()) {
            pinned(value_set);
        }
    }
}

/// Adds `url|major.minor` for the highest held version of each major.minor
/// (`…|1.1` → 1.1.0), as the Java validator indexes them
/// (`CanonicalResourceManager`), where no version is literally that.
pub(super) fn index_major_minor(
    registry: &Registry,
    by_canonical: &mut HashMap<String, Arc<Structure>>,
) {
    for loaded in registry.of_type("StructureDefinition") {
        let Some((major, minor)) = loaded
            .version
            .as_deref()
            .and_then(ehds_profiles::major_minor_of_any)
        else {
            continue;
        };
        let key = format!("{}|{major}.{minor}", loaded.url);
        if by_canonical.contains_key(&key) {
            continue;
        }
        let highest = registry
            .resolve_typed("StructureDefinition", &key)
            .and_then(|r| by_canonical.get(&r.canonical()))
            .cloned();
        if let Some(structure) = highest {
            by_canonical.insert(key, structure);
        }
    }
}

/// By package index: the StructureDefinitions among `pins`, compiled.
pub(super) fn scoped(
    pins: &[HashMap<String, String>],
    by_canonical: &HashMap<String, Arc<Structure>>,
) -> Vec<HashMap<String, Arc<Structure>>> {
    pins.iter()
        .map(|pins| {
            pins.iter()
                .filter_map(|(url, canonical)| {
                    Some((url.clone(), Arc::clone(by_canonical.get(canonical)?)))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::StructureValidator;
    use ehds_profiles::Registry;

    const IPS: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/";
    const LAB: &str = "http://hl7.eu/fhir/laboratory/StructureDefinition/";

    fn named(validator: &StructureValidator, canonical: &str) -> Vec<String> {
        let structure = validator.structure(canonical).unwrap();
        let mut named: Vec<String> = structure
            .elements
            .iter()
            .flat_map(|e| {
                e.types
                    .iter()
                    .flat_map(|t| t.profiles.iter().chain(&t.target_profiles))
                    .chain(e.binding.iter().flat_map(|b| b.value_set.iter()))
            })
            .cloned()
            .collect();
        named.sort();
        named.dedup();
        named
    }

    /// HL7 Europe Laboratory 0.1.0 depends on IPS 1.1.0, 0.2.0-ci on IPS
    /// `current` (here 2.0.0-ballot, the default): only the former's
    /// references to IPS are pinned.
    #[test]
    fn a_profile_names_its_dependencies_versions() {
        let registry =
            Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
        let (validator, _) = StructureValidator::new(&registry);
        let old = named(
            &validator,
            &format!("{LAB}Observation-resultslab-eu-lab|0.1.0"),
        );
        assert!(
            old.contains(&format!("{IPS}CodeableConcept-uv-ips|1.1.0")),
            "{old:#?}"
        );
        // Its own value sets, held in 0.2.0-ci too, and the IPS 1.1.0 ones
        // held in no other version (left as written).
        assert!(
            old.contains(
                &"http://hl7.eu/fhir/laboratory/ValueSet/lab-obsCode-eu-lab|0.1.0".to_owned()
            ),
            "{old:#?}"
        );
        assert!(
            old.contains(
                &"http://hl7.org/fhir/uv/ips/ValueSet/results-coded-values-laboratory-uv-ips"
                    .to_owned()
            ),
            "{old:#?}"
        );
        assert!(
            !old.contains(&format!("{IPS}CodeableConcept-uv-ips")),
            "{old:#?}"
        );
        let new = named(
            &validator,
            &format!("{LAB}Observation-resultslab-eu-lab|0.2.0-ci"),
        );
        assert!(
            new.contains(&format!("{IPS}CodeableConcept-uv-ips")),
            "{new:#?}"
        );
        assert!(!new.iter().any(|c| c.contains("|1.1.0")), "{new:#?}");

        // Version-less: the default (highest) version, whatever the load order.
        let default = validator.structure(&format!("{IPS}Bundle-uv-ips")).unwrap();
        let ballot = validator
            .structure(&format!("{IPS}Bundle-uv-ips|2.0.0-ballot"))
            .unwrap();
        let old = validator
            .structure(&format!("{IPS}Bundle-uv-ips|1.1.0"))
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(default, ballot));
        assert!(!std::sync::Arc::ptr_eq(default, old));
        assert!(std::sync::Arc::ptr_eq(
            validator
                .structure(&format!("{IPS}Bundle-uv-ips|1.1"))
                .unwrap(),
            old
        ));
    }
}
