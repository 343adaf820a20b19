//! The AuditEvents the gateway writes (`ehds_fhir::audit_event`) validate
//! against R4 core with no errors, for every action, outcome and shape. (The
//! one warning each carries is BALP's `XrequestId` entity type, outside R4's
//! extensible audit-entity-type value set, as BALP intends.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::Bytes;
use ehds_fhir::ReceivedResource;
use ehds_fhir::audit_event::{
    AccessRecord, AuditAction, AuditOutcome, AuditedEntity, EntityTarget, NcpParty, Organisation,
    PatientIdentifier, PeerNcp, PeerRole, Professional, PurposeOfUse, RequestingProfessional,
    RestInteraction, audit_event_json,
};
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::Validator;

fn record(action: AuditAction, subtype: RestInteraction) -> AccessRecord {
    AccessRecord {
        action,
        subtype,
        recorded: time::macros::datetime!(2026-11-24 19:30:00.123 +01:00),
        outcome: AuditOutcome::Success,
        outcome_description: None,
        requesting_professional: Some(RequestingProfessional {
            professional: Professional {
                id: "hp-4711".into(),
                name: "Dr Jan Peeters".into(),
                role: "2211".into(),
                organisation: Organisation {
                    id: "org-1".into(),
                    name: "AZ Example".into(),
                },
            },
            country: "BE".into(),
        }),
        purpose_of_use: Some(PurposeOfUse::Treatment),
        source_ncp: NcpParty {
            country: "BE".into(),
            ncp_id: "ncp-be".into(),
        },
        peer_ncp: Some(PeerNcp {
            country: "LU".into(),
            ncp_id: "ncp-lu".into(),
            cert_fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                .into(),
            role: PeerRole::Responder,
        }),
        patient: PatientIdentifier::new("urn:oid:1.3.182.4.4", "1998041799999"),
        entity: Some(AuditedEntity {
            resource_type: "DocumentReference".into(),
            target: EntityTarget::Query(
                "patient.identifier=urn:oid:1.3.182.4.4%7C1998041799999&type=http://loinc.org%7C60591-5"
                    .into(),
            ),
            service: Some("laboratory-report".into()),
        }),
        request_id: "5b0d3c1e-6f1f-4a3e-9d43-1c6f0e3a7b21".into(),
        correlation_id: Some("ncp-be-8c1f2a".into()),
    }
}

#[test]
fn generated_audit_events_validate_against_r4_core() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    assert!(validator.knows_profile("http://hl7.org/fhir/StructureDefinition/AuditEvent"));

    let mut records = Vec::new();
    for (action, subtype) in [
        (AuditAction::Search, RestInteraction::SearchType),
        (AuditAction::Read, RestInteraction::Read),
        (AuditAction::Create, RestInteraction::Create),
        (AuditAction::Update, RestInteraction::Update),
    ] {
        for role in [PeerRole::Requester, PeerRole::Responder] {
            let mut r = record(action, subtype);
            r.peer_ncp.as_mut().unwrap().role = role;
            if action != AuditAction::Search {
                r.entity = Some(AuditedEntity {
                    resource_type: "Bundle".into(),
                    target: EntityTarget::Id("doc-1".into()),
                    service: Some("laboratory-report".into()),
                });
            }
            records.push(r);
        }
    }
    for outcome in [
        AuditOutcome::MinorFailure,
        AuditOutcome::SeriousFailure,
        AuditOutcome::MajorFailure,
    ] {
        let mut r = record(AuditAction::Search, RestInteraction::SearchType);
        r.outcome = outcome;
        r.outcome_description = Some("refused: purpose of use not permitted".into());
        r.purpose_of_use = Some(PurposeOfUse::Emergency);
        records.push(r);
    }
    // The barest record: no professional, peer, patient or entity.
    let mut bare = record(AuditAction::Read, RestInteraction::Read);
    bare.requesting_professional = None;
    bare.purpose_of_use = None;
    bare.peer_ncp = None;
    bare.patient = None;
    bare.entity = None;
    records.push(bare);

    // The check has teeth: a wrong action code, an unknown element and a
    // missing agent.requestor are errors.
    let good = String::from_utf8(audit_event_json(&records[0]).unwrap()).unwrap();
    for broken in [
        good.replacen(r#""action":"E""#, r#""action":"X""#, 1),
        good.replacen(r#""outcome":"0""#, r#""outcome":"0","outcomeCode":"0""#, 1),
        good.replacen(r#","requestor":true"#, "", 1),
    ] {
        assert_ne!(broken, good);
        let resource = ReceivedResource::parse(Bytes::from(broken.clone())).unwrap();
        let report = validator.validate(&resource, &[]);
        assert!(report.error_count() > 0, "{broken}");
    }

    // The security alert of a refused connection (no patient, no request).
    for (fingerprint, suppressed_before) in [(None, 0), (Some("ab".repeat(32)), 12)] {
        let alert = ehds_fhir::audit_event::SecurityAlert {
            recorded: time::OffsetDateTime::UNIX_EPOCH,
            source_ncp: ehds_fhir::audit_event::NcpParty {
                country: "LU".into(),
                ncp_id: "ncp-lu".into(),
            },
            remote_address: "192.0.2.7".into(),
            reason: "unknown_issuer".into(),
            peer_fingerprint: fingerprint,
            suppressed_before,
        };
        let bytes = ehds_fhir::audit_event::security_alert_json(&alert).unwrap();
        let resource = ReceivedResource::parse(Bytes::from(bytes)).unwrap();
        let report = validator.validate(&resource, &[]);
        assert!(report.is_acceptable(), "{:#?}", report.issues);
    }

    for r in &records {
        let bytes = audit_event_json(r).unwrap();
        let resource = ReceivedResource::parse(Bytes::from(bytes)).unwrap();
        let report = validator.validate(&resource, &[]);
        let errors: Vec<_> = report
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .collect();
        assert!(
            errors.is_empty(),
            "{:?} {:?} {:?}: {errors:#?}",
            r.action,
            r.outcome,
            r.peer_ncp.as_ref().map(|p| p.role)
        );
    }
}
