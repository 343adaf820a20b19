//! Validation of received FHIR resources.
//!
//! Owns: deciding whether a received resource is acceptable, as a
//! [`ValidationReport`] of OperationOutcome issues (invalid input is a value,
//! not an error): the Bundle rules of every Bundle type ([`bundle`]), the FHIR
//! document Bundle rules ([`document`]), structural
//! validation against the StructureDefinition snapshots of R4 core and the
//! profiles in the registry ([`structure`]: cardinality, types, formats,
//! slicing, fixed/pattern values, reference targets), required and
//! extensible bindings checked offline against the packages' ValueSets and
//! CodeSystems ([`terminology`]; codes of code systems not held, such as
//! SNOMED CT or LOINC, against a terminology server's recorded answers when
//! given them, [`terminology::recorded`]), and the narrative XHTML rules
//! ([`narrative`]), and every FHIRPath invariant of those definitions
//! (`ElementDefinition.constraint`, [`structure::invariants`]), evaluated with
//! `ehds-fhirpath` on every element instance during the same walk.
//!
//! How findings are reported is the operator's choice
//! ([`options::ValidationOptions`]: rules downgraded to warnings, the
//! unknown-extensions policy); what is checked is not.
//!
//! Must not know about: storage, HTTP, routing or transport. It reads the
//! lossless JSON view and never alters the received bytes. PDF originals
//! (OrCD) are checked on their bytes ([`pdf`]: header, trailer, no active
//! content it can see).
//!
//! A compiled [`Validator`] can be written as bytes and read back without
//! the registry ([`Validator::compiled`], [`Validator::from_compiled`]:
//! `compiled`), so the shipped packages are compiled once at build time.

pub mod bundle;
mod compiled;
pub mod document;
pub mod narrative;
pub mod options;
pub mod pdf;
mod report;
pub mod search_parameters;
mod sorted;
pub mod structure;
pub mod terminology;

pub use options::{
    UnknownExtensions, ValidationOptions, rule_of, unknown_extension_message, unknown_extension_url,
};
pub use report::ValidationReport;

/// The validator: compiled definitions from a profile registry, immutable
/// and shared by every request.
#[derive(Debug)]
pub struct Validator {
    structures: structure::StructureValidator,
    terminology: terminology::Terminology,
    load_problems: Vec<structure::LoadProblem>,
    options: ValidationOptions,
}

impl Validator {
    /// Compiles every definition in `registry`. Definitions that cannot be
    /// used are kept in [`Validator::load_problems`] for the operator.
    pub fn new(registry: &ehds_profiles::Registry) -> Self {
        Self::with_options(registry, ValidationOptions::default())
    }

    /// [`Validator::new`] with the operator's [`ValidationOptions`]
    /// (downgraded rules, unknown-extensions policy).
    pub fn with_options(registry: &ehds_profiles::Registry, options: ValidationOptions) -> Self {
        let (mut structures, load_problems) = structure::StructureValidator::new(registry);
        structures.set_unknown_extensions(options.unknown_extensions.clone());
        structures.set_narrative_links(options.narrative_links);
        structures.set_clock(options.now);
        Self {
            structures,
            terminology: terminology::Terminology::new(registry),
            load_problems,
            options,
        }
    }

    /// The validator's compiled form: bytes [`Validator::from_compiled`]
    /// reads back into an equal validator without the registry (the
    /// shipped packages are compiled at build time this way). The options
    /// are not part of it.
    pub fn compiled(&self) -> Result<Vec<u8>, structure::compile::CompileError> {
        compiled::write(&self.structures, &self.terminology, &self.load_problems)
    }

    /// Reads a validator from its [`Validator::compiled`] form, with the
    /// operator's `options`: no package is parsed and nothing compiled but
    /// the FHIRPath expressions and the primitive types' regexes.
    pub fn from_compiled(
        bytes: &[u8],
        options: ValidationOptions,
    ) -> Result<Self, structure::compile::CompileError> {
        let (mut structures, terminology, load_problems) = compiled::read(bytes)?;
        structures.set_unknown_extensions(options.unknown_extensions.clone());
        structures.set_narrative_links(options.narrative_links);
        structures.set_clock(options.now);
        Ok(Self {
            structures,
            terminology,
            load_problems,
            options,
        })
    }

    /// This validator, consulting a terminology server's recorded `answers`
    /// for the codes and displays of code systems it does not hold
    /// ([`terminology::recorded`]).
    pub fn with_recorded_answers(
        mut self,
        answers: std::sync::Arc<terminology::recorded::RecordedAnswers>,
    ) -> Self {
        self.terminology.set_recorded_answers(answers);
        self
    }

    /// The options this validator reports with.
    pub fn options(&self) -> &ValidationOptions {
        &self.options
    }

    /// Every FHIRPath invariant evaluation [`Validator::validate_pushed_document`]
    /// performs on `resource` (element, type, `%resource`, expression), in
    /// order: for benchmarks timing another engine on the same work.
    pub fn invariant_jobs(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        document_profiles: &[&str],
    ) -> Vec<structure::InvariantJob> {
        self.structures
            .invariant_jobs(resource.root(), document_profiles, &self.terminology)
    }

    /// Definitions in the registry that could not be compiled.
    pub fn load_problems(&self) -> &[structure::LoadProblem] {
        &self.load_problems
    }

    /// Whether a profile is known (canonical URLs are case-sensitive).
    pub fn knows_profile(&self, canonical: &str) -> bool {
        self.structures.structure(canonical).is_some()
    }

    /// Whether `key` is a rule whose findings carry it ([`rule_of`]): a
    /// constraint key of a loaded definition (`bdl-7`, `txt-1`,
    /// `ips-pat-1`) or the narrative parser's `xhtml`. For the operator's
    /// downgrade lists, checked at start (a linear scan).
    pub fn knows_rule(&self, key: &str) -> bool {
        key == "xhtml" || self.structures.has_constraint_key(key)
    }

    /// Whether a package is loaded (for [`Validator::validate_in_package`]).
    pub fn knows_package(&self, package: &ehds_profiles::PackageId) -> bool {
        self.structures.package_index(package).is_some()
    }

    /// Validates a resource against R4 core, the profiles it claims and
    /// `profiles`; a document Bundle also against the document rules.
    pub fn validate(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        profiles: &[&str],
    ) -> ValidationReport {
        self.validate_downgrading(resource, profiles, &self.options.downgraded_rules)
    }

    /// [`Validator::validate`] for a caller that will report the errors of
    /// `downgraded` rules as warnings (the gateway's per-service policy):
    /// the findings are the same, but errors of those rules do not decide
    /// slice membership by profile (an entry breaking only `per-1` still
    /// fills the IPS Bundle's `patient` slice), as if the rules were
    /// declared warnings.
    pub fn validate_downgrading(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        profiles: &[&str],
        downgraded: &[String],
    ) -> ValidationReport {
        let mut report = if is_document(resource) {
            document::check_document_bundle(resource)
        } else {
            ValidationReport::default()
        };
        if resource.resource_type() == "Bundle" {
            bundle::check_bundle(resource.root(), &mut report.issues);
        }
        self.structures.validate_downgrading(
            resource.root(),
            profiles,
            &self.terminology,
            &mut report.issues,
            downgraded,
        );
        self.options.apply(&mut report.issues);
        report
    }

    /// [`Validator::validate`] as the publisher of `package` would (the IG
    /// Publisher validating the IG's own examples): version-less profiles
    /// the resource claims, and those in `profiles`, resolve in the
    /// package's dependency scope before the registry's default
    /// ([`ehds_profiles::Registry::resolve_in`]), e.g. `Bundle-uv-ips` to
    /// IPS 1.1.0 for `hl7.fhir.uv.ips#1.1.0` or a package depending on it.
    /// A package that is not loaded adds no scope.
    pub fn validate_in_package(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        profiles: &[&str],
        package: &ehds_profiles::PackageId,
    ) -> ValidationReport {
        let Some(package) = self.structures.package_index(package) else {
            return self.validate(resource, profiles);
        };
        let mut report = if is_document(resource) {
            document::check_document_bundle(resource)
        } else {
            ValidationReport::default()
        };
        self.structures.validate_in_package(
            resource.root(),
            profiles,
            &self.terminology,
            &mut report.issues,
            package,
        );
        report
    }

    /// Validates a document pushed through the national API: the one call
    /// site every pushed document goes through. The document Bundle rules,
    /// then the resource against R4 core, its claimed profiles and
    /// `document_profiles` (the IPS Bundle profile for patient summaries).
    pub fn validate_pushed_document(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        document_profiles: &[&str],
    ) -> ValidationReport {
        self.validate_pushed_document_downgrading(
            resource,
            document_profiles,
            &self.options.downgraded_rules,
        )
    }

    /// [`Validator::validate_pushed_document`] for a caller that will
    /// report the errors of `downgraded` rules as warnings (see
    /// [`Validator::validate_downgrading`]).
    pub fn validate_pushed_document_downgrading(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        document_profiles: &[&str],
        downgraded: &[String],
    ) -> ValidationReport {
        let mut report = document::check_document_bundle(resource);
        if resource.resource_type() == "Bundle" {
            bundle::check_bundle(resource.root(), &mut report.issues);
            self.structures.validate_downgrading(
                resource.root(),
                document_profiles,
                &self.terminology,
                &mut report.issues,
                downgraded,
            );
        }
        self.options.apply(&mut report.issues);
        report
    }

    /// [`Validator::validate_pushed_document`] in a package's context (see
    /// [`Validator::validate_in_package`]): for a service whose documents
    /// follow one package, e.g. `myhealth.eu.fhir.laboratory#0.0.1`, whose
    /// scope makes a version-less IPS claim mean IPS 1.1.0. A package that
    /// is not loaded adds no scope.
    pub fn validate_pushed_document_in_package(
        &self,
        resource: &ehds_fhir::ReceivedResource,
        document_profiles: &[&str],
        package: &ehds_profiles::PackageId,
    ) -> ValidationReport {
        let Some(package) = self.structures.package_index(package) else {
            return self.validate_pushed_document(resource, document_profiles);
        };
        let mut report = document::check_document_bundle(resource);
        if resource.resource_type() == "Bundle" {
            self.structures.validate_in_package(
                resource.root(),
                document_profiles,
                &self.terminology,
                &mut report.issues,
                package,
            );
        }
        report
    }
}

/// A `Bundle` of type `document`.
fn is_document(resource: &ehds_fhir::ReceivedResource) -> bool {
    resource.resource_type() == "Bundle"
        && resource
            .root()
            .get("type")
            .and_then(ehds_fhir::Node::as_str)
            == Some("document")
}
