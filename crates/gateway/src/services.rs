//! The cross-border services this gateway carries, as data: the service
//! registry (`deploy/config/services.toml`, shipped defaults, plus the
//! gateway configuration's `[[services.service]]` entries). Per service its
//! name (what the patient opts out of or restricts), the LOINC document
//! types it answers to (eHDSI / MyHealth@EU document codes; the first is
//! the one its DocumentReference lists carry), the profiles a pushed
//! document must meet, the access policy's permission, whether a PDF
//! original is accepted, the categories its documents are listed under, and
//! its validation policy (`crate::validation_policy`). Opt-out, the document type → service mapping,
//! the access policy and audit read the registry; no per-service code
//! outside ePrescription's dispensing logic.

use ehds_access::Operation;
use ehds_fhir::Node;
use serde::Deserialize;

/// The shipped registry (`deploy/config/services.toml`), used when the
/// configuration names no other file.
pub const SHIPPED_SERVICES: &str = include_str!("../../../deploy/config/services.toml");

/// How a service's data is held and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// FHIR documents pushed to `POST /fhir/Bundle`, stored byte-exact,
    /// listed by DocumentReference and read as `Bundle/<country>.<id>`.
    #[default]
    Document,
    /// ePrescriptions: MedicationRequests with their dispensing state
    /// (`crate::eprescription`); listed as DocumentReferences too.
    Eprescription,
}

/// Where the patient's country takes a service's documents from when
/// another country asks (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The gateway's own store: documents pushed to `POST /fhir/Bundle`.
    #[default]
    Store,
    /// The national FHIR server of `[service.national_server]`, asked on
    /// demand; nothing it answers is stored
    /// (`crate::federation::national_source`).
    Fhir,
}

/// A document type a service answers to (`DocumentReference.type`,
/// `Composition.type`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentType {
    /// The code system (LOINC).
    pub system: String,
    /// The code.
    pub code: String,
    /// Its display, as lists show it.
    pub display: String,
}

/// One service of the registry, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The name patients opt out of or restrict (`[a-z0-9-]+`).
    pub name: String,
    /// What it is, for people (the patient page).
    pub title: String,
    /// How its data is held.
    #[serde(default)]
    pub kind: ServiceKind,
    /// The document types it answers to; the first is the one it lists.
    #[serde(rename = "document_type")]
    pub document_types: Vec<DocumentType>,
    /// Profiles (`url` or `url|version`) every pushed document of the
    /// service must meet, and every answer abroad.
    #[serde(default)]
    pub document_profiles: Vec<String>,
    /// The access policy's operation that reads it.
    pub permission: Operation,
    /// Whether a PDF original (OrCD) of the service is accepted.
    #[serde(default)]
    pub pdf_original: bool,
    /// The categories its documents are listed under
    /// (`DocumentReference.category`, the NCPeH search's `category`).
    #[serde(default, rename = "category")]
    pub categories: Vec<Category>,
    /// Where the patient's country answers from: `store` (the default) or
    /// `fhir` (the national server below).
    #[serde(default)]
    pub source: Source,
    /// The national FHIR server of `source = "fhir"`.
    #[serde(default)]
    pub national_server: Option<ehds_national_fhir::NationalServer>,
    /// What validation errors do to a document pushed for it
    /// (`[service.validation]`: `policy`, `downgraded_rules`; issue 15 §3).
    #[serde(default)]
    pub validation: crate::validation_policy::ServicePolicy,
}

/// A category of a service's documents (`DocumentReference.category`): the
/// EHDS priority category of the EU Health Data API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// The code system.
    pub system: String,
    /// The code.
    pub code: String,
    /// Its display.
    pub display: String,
}

impl Service {
    /// Whether `system|code` is one of its document types.
    pub(crate) fn answers_to(&self, system: &str, code: &str) -> bool {
        self.document_types
            .iter()
            .any(|t| t.system == system && t.code == code)
    }

    /// The document type its lists carry.
    pub(crate) fn listed_type(&self) -> Option<&DocumentType> {
        self.document_types.first()
    }

    /// The profiles as the validator takes them.
    pub(crate) fn profiles(&self) -> Vec<&str> {
        self.document_profiles.iter().map(String::as_str).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    service: Vec<Service>,
}

/// The services, checked: unique names and document types, one
/// ePrescription service at most. Services may share a permission (a
/// service added by configuration is read under an existing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRegistry {
    services: Vec<Service>,
}

/// The patient summary's name (the service a stored document without a
/// recorded type belongs to, and the one restrictions of parts apply to).
pub(crate) const PATIENT_SUMMARY: &str = "patient-summary";

impl ServiceRegistry {
    /// The shipped registry.
    pub fn shipped() -> Result<Self, String> {
        Self::from_toml_str(SHIPPED_SERVICES)
    }

    /// The services of a registry file's text, checked.
    pub fn from_toml_str(text: &str) -> Result<Self, String> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| e.to_string())?;
        Self::new(file.service)
    }

    /// `services` with `added` (one of the same name replaces it), checked.
    pub fn with(mut self, added: &[Service]) -> Result<Self, String> {
        for service in added {
            match self.services.iter_mut().find(|s| s.name == service.name) {
                Some(existing) => *existing = service.clone(),
                None => self.services.push(service.clone()),
            }
        }
        Self::new(self.services)
    }

    fn new(services: Vec<Service>) -> Result<Self, String> {
        for (index, service) in services.iter().enumerate() {
            let name = &service.name;
            let well_formed = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                return Err(format!("service name {name:?} is not [a-z0-9-]+"));
            }
            if service.document_types.is_empty() {
                return Err(format!("service {name}: no document_type"));
            }
            service
                .validation
                .check()
                .map_err(|e| format!("service {name}: validation: {e}"))?;
            if service.document_profiles.iter().any(String::is_empty) {
                return Err(format!("service {name}: an empty document profile"));
            }
            match (service.source, &service.national_server, service.kind) {
                (Source::Store, None, _) => {}
                (Source::Store, Some(_), _) => {
                    return Err(format!(
                        "service {name}: national_server is for source = \"fhir\""
                    ));
                }
                (Source::Fhir, None, _) => {
                    return Err(format!(
                        "service {name}: source = \"fhir\" needs [service.national_server]"
                    ));
                }
                // A prescription's status changes at the national service
                // (dispensed at home, cancelled) and a dispense abroad is
                // decided on it: a kept answer could let a prescription be
                // dispensed twice.
                (Source::Fhir, Some(server), ServiceKind::Eprescription)
                    if server.cache.is_some() =>
                {
                    return Err(format!(
                        "service {name}: national_server.cache is for document services; a \
                         dispense is decided on the prescription's status as the national \
                         service holds it now"
                    ));
                }
                (Source::Fhir, Some(server), _) => {
                    server
                        .check()
                        .map_err(|e| format!("service {name}: national_server: {e}"))?;
                }
            }
            for other in services.iter().skip(index + 1) {
                if other.name == *name {
                    return Err(format!("service {name} is listed twice"));
                }
                if let Some(shared) = other
                    .document_types
                    .iter()
                    .find(|t| service.answers_to(&t.system, &t.code))
                {
                    return Err(format!(
                        "services {name} and {} both answer to {}|{}",
                        other.name, shared.system, shared.code
                    ));
                }
                if other.kind == ServiceKind::Eprescription
                    && service.kind == ServiceKind::Eprescription
                {
                    return Err("more than one eprescription service".into());
                }
            }
        }
        Ok(Self { services })
    }

    /// Every service, in the registry's order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service named `name`.
    pub(crate) fn named(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The service answering to the document type `system|code`.
    pub(crate) fn for_type(&self, system: &str, code: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.answers_to(system, code))
    }

    /// The service of a stored document type (`system|code`); a document
    /// stored before types were recorded is a patient summary.
    pub(crate) fn for_stored_type(&self, document_type: Option<&str>) -> Option<&Service> {
        match document_type.and_then(|t| t.split_once('|')) {
            Some((system, code)) => self.for_type(system, code),
            None => self.named(PATIENT_SUMMARY),
        }
    }

    /// The service of the first of `codings` (`system`, `code`) that one
    /// answers to, with that document type.
    fn for_codings<'a>(
        &self,
        mut codings: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Option<(&Service, &DocumentType)> {
        codings.find_map(|(system, code)| {
            let service = self.for_type(system, code)?;
            let type_ = service
                .document_types
                .iter()
                .find(|t| t.system == system && t.code == code)?;
            Some((service, type_))
        })
    }

    /// The service of a document Bundle: the one its Composition's
    /// (first entry's) `type` names (FHIR R4 documents.html: the
    /// Composition is the first entry and its `type` says what the
    /// document is).
    pub(crate) fn of_document(&self, root: &Node) -> Option<(&Service, &DocumentType)> {
        let codings = root
            .get("entry")
            .and_then(|e| e.items().first())
            .and_then(|e| e.get("resource"))
            .filter(|r| r.get("resourceType").and_then(Node::as_str) == Some("Composition"))
            .and_then(|c| c.get("type"))
            .and_then(|t| t.get("coding"))
            .map(Node::items)
            .unwrap_or_default();
        self.for_codings(codings.iter().filter_map(|coding| {
            Some((
                coding.get("system")?.as_str()?,
                coding.get("code")?.as_str()?,
            ))
        }))
    }

    /// The services answered from a national FHIR server.
    pub(crate) fn national(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|s| s.source == Source::Fhir)
    }

    /// The ePrescription service.
    pub(crate) fn eprescription(&self) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.kind == ServiceKind::Eprescription)
    }

    /// The ePrescription service's name (`eprescription` when the registry
    /// has none: nothing is then listed, but an opt-out still refuses).
    pub(crate) fn eprescription_name(&self) -> &str {
        self.eprescription()
            .map_or("eprescription", |s| s.name.as_str())
    }

    /// The ePrescription service's name and validation policy (the default
    /// policy, `enforce`, when the registry has none), for whatever judges
    /// a prescription: a push or the national server's answer.
    pub(crate) fn eprescription_policy(&self) -> (&str, &crate::validation_policy::ServicePolicy) {
        static DEFAULT: crate::validation_policy::ServicePolicy =
            crate::validation_policy::ServicePolicy {
                policy: crate::validation_policy::Mode::Enforce,
                downgraded_rules: Vec::new(),
            };
        self.eprescription()
            .map_or((self.eprescription_name(), &DEFAULT), |service| {
                (service.name.as_str(), &service.validation)
            })
    }

    /// Whether `name` is a service of the registry.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.named(name).is_some()
    }

    /// The names, for messages (`a, b, c`).
    pub(crate) fn names(&self) -> String {
        self.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LOINC: &str = "http://loinc.org";

    #[test]
    fn the_shipped_registry_maps_each_document_type_to_its_service() {
        let registry = ServiceRegistry::shipped().unwrap();
        let of = |code| registry.for_type(LOINC, code).map(|s| s.name.as_str());
        assert_eq!(of("60591-5"), Some("patient-summary"));
        assert_eq!(of("57833-6"), Some("eprescription"));
        assert_eq!(of("11502-2"), Some("laboratory-report"));
        assert_eq!(of("34105-7"), Some("discharge-report"));
        assert_eq!(of("18842-5"), Some("discharge-report"));
        assert_eq!(of("18748-4"), Some("imaging-report"));
        assert_eq!(of("85430-7"), Some("imaging-report"));
        assert_eq!(of("0000-0"), None);
        assert_eq!(registry.eprescription_name(), "eprescription");
        assert_eq!(
            registry.named("laboratory-report").map(|s| s.permission),
            Some(Operation::ReadLaboratoryReport)
        );
        assert_eq!(
            registry.for_stored_type(None).map(|s| s.name.as_str()),
            Some("patient-summary")
        );
    }

    #[test]
    fn a_registry_that_is_ambiguous_is_refused() {
        let registry = ServiceRegistry::shipped().unwrap();
        let mut twin = registry.named("laboratory-report").unwrap().clone();
        twin.name = "lab-twin".into();
        let error = registry.clone().with(&[twin]).unwrap_err();
        assert!(
            error.contains("both answer to http://loinc.org|11502-2"),
            "{error}"
        );
        let mut bad = registry.named("laboratory-report").unwrap().clone();
        bad.name = "Lab Report".into();
        assert!(registry.clone().with(&[bad]).is_err());
        // Same name: replaces.
        let mut lab = registry.named("laboratory-report").unwrap().clone();
        lab.pdf_original = true;
        let replaced = registry.with(&[lab]).unwrap();
        assert!(replaced.named("laboratory-report").unwrap().pdf_original);
    }

    #[test]
    fn a_national_fhir_source_is_checked() {
        let registry = ServiceRegistry::shipped().unwrap();
        assert_eq!(registry.national().count(), 0);
        let summary = |extra: &str| {
            let text = format!(
                "[[service]]\nname = \"patient-summary\"\ntitle = \"PS\"\n\
                 permission = \"ReadPatientSummary\"\n{extra}\n\
                 [[service.document_type]]\nsystem = \"http://loinc.org\"\n\
                 code = \"60591-5\"\ndisplay = \"PS\"\n"
            );
            ServiceRegistry::from_toml_str(&text)
        };
        let fhir = summary(
            "source = \"fhir\"\n[service.national_server]\nbase_url = \"http://127.0.0.1:8090/fhir\"\n",
        )
        .unwrap();
        assert_eq!(fhir.national().count(), 1);
        assert!(
            summary("source = \"fhir\"\n")
                .unwrap_err()
                .contains("needs")
        );
        assert!(
            summary("[service.national_server]\nbase_url = \"http://127.0.0.1:1/\"\n")
                .unwrap_err()
                .contains("national_server is for")
        );
        let remote = summary(
            "source = \"fhir\"\n[service.national_server]\nbase_url = \"http://fhir.example.be/\"\n",
        )
        .unwrap_err();
        assert!(remote.contains("loopback"), "{remote}");
        // The operator's cache: off unless written, its bounds checked.
        let national = fhir.national().next().unwrap();
        assert!(national.national_server.as_ref().unwrap().cache.is_none());
        let cached = summary(
            "source = \"fhir\"\n[service.national_server]\nbase_url = \"http://127.0.0.1:8090/fhir\"\n\
             [service.national_server.cache]\nttl_secs = 60\nmax_entries = 100\nmax_bytes = 1000000\n",
        )
        .unwrap();
        let cache = cached
            .national()
            .next()
            .unwrap()
            .national_server
            .as_ref()
            .unwrap();
        assert_eq!(cache.cache.as_ref().unwrap().max_entries, 100);
        let unbounded = summary(
            "source = \"fhir\"\n[service.national_server]\nbase_url = \"http://127.0.0.1:8090/fhir\"\n\
             [service.national_server.cache]\nttl_secs = 0\n",
        )
        .unwrap_err();
        assert!(unbounded.contains("cache.ttl_secs"), "{unbounded}");
        let prescriptions = summary(
            "kind = \"eprescription\"\nsource = \"fhir\"\n[service.national_server]\n\
             base_url = \"http://127.0.0.1:8090/fhir\"\n[service.national_server.cache]\nttl_secs = 60\n",
        )
        .unwrap_err();
        assert!(
            prescriptions.contains("cache is for document services"),
            "{prescriptions}"
        );
    }
}
