//! FHIR package registry.
//!
//! Will own (validator issue): loading the FHIR packages under `profiles/`
//! (hl7.fhir.r4.core, hl7.fhir.uv.ips, hl7.fhir.eu.mpd, ihe.pharm.mpd.r4,
//! hl7.eu.terminology.ehdsi) and operator-supplied packages into an immutable,
//! shareable registry of StructureDefinitions, ValueSets and CodeSystems keyed
//! by canonical URL and version.
//!
//! Must not know about: how resources are validated against them, HTTP,
//! storage or routing.
