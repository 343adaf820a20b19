//! FHIR R4 AuditEvent records of cross-border access, following the IHE
//! Basic Audit Log Patterns (BALP, <https://profiles.ihe.net/ITI/BALP/>).
//!
//! [`audit_event_json`] turns an [`AccessRecord`] into the JSON of an R4
//! AuditEvent (<http://hl7.org/fhir/R4/auditevent.html>):
//!
//! | element | value | source |
//! | --- | --- | --- |
//! | `type` | `audit-event-type#rest` "RESTful Operation" | BALP Read, Query, Create, Update profiles |
//! | `subtype` | `http://hl7.org/fhir/restful-interaction` (`read`, `search-type`, `create`, `update`, …) | idem |
//! | `action` | `R` read, `E` search (execute), `C` create, `U` update | idem; R4 audit-event-action (required) |
//! | `outcome` | `0` success, `4` minor, `8` serious, `12` major failure | R4 audit-event-outcome (required) |
//! | `agent` (user) | the requesting professional: `requestor = true`, type `v3-ParticipationType#IRCP` (read, search) or `#AUT` (create, update), role the ISCO-08 code, `purposeOfUse` `v3-ActReason#TREAT` / `#ETREAT` | BALP `agent[user]` |
//! | `agent` (client, server) | the two NCPs (or only the recording one), type DICOM `110153` Source Role ID / `110152` Destination Role ID | BALP `agent[client]`, `agent[server]` |
//! | `source` | the recording NCP: `observer`, `site` = its country, type `security-source-type#4` Application Server | BALP `source` |
//! | `entity` (patient) | `what` = Patient reference by identifier, type `audit-entity-type#1` Person, role `object-role#1` Patient | BALP `entity[patient]` |
//! | `entity` (data) | `what` = `Type/id`, type `#2` System Object, role `object-role#4` Domain Resource | BALP `entity[data]` |
//! | `entity` (query) | `query` = base64 of the query, `description` = the query, type `#2`, role `object-role#24` Query | BALP `entity[query]` |
//! | `entity` (transaction) | `what.identifier.value` = the request id, type BALP `BasicAuditEntityType#XrequestId` | BALP `entity[transaction]` |
//!
//! [`security_alert_json`] records a connection a listener refused before
//! any request (DICOM `110113` Security Alert, subtype `110126` Node
//! Authentication; the remote address in `agent.network`).
//!
//! BALP's client/server roles follow the DICOM direction of the request:
//! for a read the client is the Destination (110152) and the server the
//! Source (110153); for a search, create or update the client is the Source
//! and the server the Destination (BALP `IHE.BasicAudit.Read`, `.Query`,
//! `.Create`, `.Update`).
//!
//! The output makes no `meta.profile` claim: BALP fixes `outcome` to
//! success, and failures are recorded here with the same shape.
//!
//! An AuditEvent is a security record: it carries the patient identifier
//! and the professional on purpose, and is stored as protected data — never
//! written to logs. `outcome_description` must not carry patient data.

use base64::Engine as _;
pub use ehds_identifiers::{Organisation, PatientIdentifier, Professional, PurposeOfUse};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// BALP's entity type for the transport request id (`X-Request-Id`).
pub const BALP_ENTITY_TYPE_SYSTEM: &str =
    "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
/// The ISCO-08 code system as eHDSI names it (ValueSet
/// eHDSIHealthcareProfessionalRole).
pub const ISCO_08_SYSTEM: &str = "urn:oid:2.16.840.1.113883.2.9.6.2.7";

const AUDIT_EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL_INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const SECURITY_SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";

/// What was done (AuditEvent.action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Read (`R`).
    Read,
    /// Search (`E`, execute: BALP Query).
    Search,
    /// Create (`C`).
    Create,
    /// Update (`U`).
    Update,
}

impl AuditAction {
    /// The audit-event-action code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "R",
            Self::Search => "E",
            Self::Create => "C",
            Self::Update => "U",
        }
    }
}

/// The RESTful interaction (AuditEvent.subtype, restful-interaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestInteraction {
    /// `read`.
    Read,
    /// `vread`.
    Vread,
    /// `search` (the parent code).
    Search,
    /// `search-type`.
    SearchType,
    /// `search-system`.
    SearchSystem,
    /// `create`.
    Create,
    /// `update`.
    Update,
    /// `operation`.
    Operation,
}

impl RestInteraction {
    /// The restful-interaction code (display equals the code).
    pub fn code(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Vread => "vread",
            Self::Search => "search",
            Self::SearchType => "search-type",
            Self::SearchSystem => "search-system",
            Self::Create => "create",
            Self::Update => "update",
            Self::Operation => "operation",
        }
    }
}

/// How it ended (AuditEvent.outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// `0`.
    Success,
    /// `4`: the action was not successful (a refused request).
    MinorFailure,
    /// `8`: the action was not started or was terminated (a server error).
    SeriousFailure,
    /// `12`: an error of such magnitude that the system is unavailable.
    MajorFailure,
}

impl AuditOutcome {
    /// The audit-event-outcome code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::MinorFailure => "4",
            Self::SeriousFailure => "8",
            Self::MajorFailure => "12",
        }
    }
}

/// The health professional who asked (the one model of
/// `ehds_identifiers`, shared with access control) and the country they
/// work in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestingProfessional {
    /// Who, for whom, in which role.
    pub professional: Professional,
    /// ISO 3166-1 alpha-2 code of the country they work in.
    pub country: String,
}

/// The `agent.purposeOfUse` coding of `purpose` (HL7 v3 ActReason).
fn purpose_coding(purpose: PurposeOfUse) -> Coding {
    Coding::new(ACT_REASON, purpose.hl7_code(), Some(purpose.hl7_display()))
}

/// A national contact point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NcpParty {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// NCP id (`ncp-be`).
    pub ncp_id: String,
}

/// Which side of the federation call the peer NCP was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer called the recording NCP (inbound): the peer is the client.
    Requester,
    /// The recording NCP called the peer (outbound relay): the peer is the
    /// server.
    Responder,
}

/// The other NCP of a federation call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNcp {
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// NCP id.
    pub ncp_id: String,
    /// SHA-256 fingerprint of its verified certificate (hex), recorded as
    /// the agent's `altId` (`sha256:<hex>`).
    pub cert_fingerprint: String,
    /// Which side it was.
    pub role: PeerRole,
}

/// The data acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedEntity {
    /// Resource type (`Bundle`, `DocumentReference`).
    pub resource_type: String,
    /// Which resource, or which search.
    pub target: EntityTarget,
    /// The cross-border service the data belongs to (`patient-summary`,
    /// `laboratory-report`, …, the gateway's service registry), once known:
    /// written as an `entity.detail` of type `service`.
    pub service: Option<String>,
}

/// One resource or one search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityTarget {
    /// A resource by logical id (read, create, update).
    Id(String),
    /// A search: the query string without `?` (the canonical relayed
    /// query for a cross-border search).
    Query(String),
}

/// One access to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// What was done.
    pub action: AuditAction,
    /// The RESTful interaction.
    pub subtype: RestInteraction,
    /// When it was recorded.
    pub recorded: OffsetDateTime,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why it failed, without patient data.
    pub outcome_description: Option<String>,
    /// The professional who asked, when the request carried an assertion.
    pub requesting_professional: Option<RequestingProfessional>,
    /// Purpose of use from the assertion.
    pub purpose_of_use: Option<PurposeOfUse>,
    /// The NCP recording the event (the source / observer).
    pub source_ncp: NcpParty,
    /// The other NCP of a federation call.
    pub peer_ncp: Option<PeerNcp>,
    /// The patient concerned.
    pub patient: Option<PatientIdentifier>,
    /// The data acted on.
    pub entity: Option<AuditedEntity>,
    /// The request id (`X-Request-Id`).
    pub request_id: String,
    /// The id that ties the records of one cross-border exchange together at
    /// both ends (`X-Correlation-ID`, as the caller sent it or as the country
    /// of treatment gave it, and carried to the peer); written as a
    /// `detail` of the request-id entity (AuditEvent.entity.detail).
    pub correlation_id: Option<String>,
}

/// An AuditEvent that cannot be written (a bug in the caller, never caused
/// by a client).
#[derive(Debug, thiserror::Error)]
pub enum AuditEventError {
    /// `recorded` is not a FHIR instant (year before 0001).
    #[error("recorded time is not representable as a FHIR instant: {0}")]
    Recorded(#[from] time::error::Format),
    /// A required value is empty (FHIR strings are never empty).
    #[error("AuditEvent {0} is empty")]
    Empty(&'static str),
    /// Serialisation failed.
    #[error("AuditEvent serialisation: {0}")]
    Json(#[from] serde_json::Error),
}

/// The JSON bytes of the R4 AuditEvent for `record` (see the module
/// documentation for the mapping).
pub fn audit_event_json(record: &AccessRecord) -> Result<Vec<u8>, AuditEventError> {
    for (name, value) in [
        ("request id", &record.request_id),
        ("source NCP id", &record.source_ncp.ncp_id),
        ("source NCP country", &record.source_ncp.country),
    ] {
        if value.is_empty() {
            return Err(AuditEventError::Empty(name));
        }
    }
    let recorded = record
        .recorded
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)?;
    let event = AuditEvent {
        resource_type: "AuditEvent",
        type_: Coding::new(AUDIT_EVENT_TYPE, "rest", Some("RESTful Operation")),
        subtype: vec![Coding::new(
            RESTFUL_INTERACTION,
            record.subtype.code(),
            Some(record.subtype.code()),
        )],
        action: record.action.code(),
        recorded,
        outcome: record.outcome.code(),
        outcome_desc: non_empty(record.outcome_description.as_deref()),
        agent: agents(record),
        source: Source {
            site: record.source_ncp.country.clone(),
            observer: ncp_reference(&record.source_ncp.ncp_id, &record.source_ncp.country),
            type_: vec![Coding::new(
                SECURITY_SOURCE_TYPE,
                "4",
                Some("Application Server"),
            )],
        },
        entity: entities(record),
    };
    Ok(serde_json::to_vec(&event)?)
}

fn agents(record: &AccessRecord) -> Vec<Agent> {
    let mut agents = Vec::new();
    if let Some(requesting) = &record.requesting_professional {
        let professional = &requesting.professional;
        let (code, display) = match record.action {
            AuditAction::Read | AuditAction::Search => ("IRCP", "information recipient"),
            AuditAction::Create | AuditAction::Update => ("AUT", "author (originator)"),
        };
        agents.push(Agent {
            type_: Some(CodeableConcept::one(Coding::new(
                PARTICIPATION_TYPE,
                code,
                Some(display),
            ))),
            role: non_empty(Some(&professional.role))
                .map(|isco| CodeableConcept::one(Coding::new(ISCO_08_SYSTEM, &isco, None)))
                .into_iter()
                .collect(),
            who: Some(Reference {
                identifier: non_empty(Some(&professional.id)).map(|value| Identifier {
                    system: None,
                    value,
                }),
                display: non_empty(Some(&professional.name)),
                ..Reference::default()
            }),
            name: non_empty(Some(&professional.name)),
            requestor: true,
            location: non_empty(Some(&requesting.country)).map(|country| Reference {
                display: Some(country),
                ..Reference::default()
            }),
            purpose_of_use: record
                .purpose_of_use
                .map(|p| CodeableConcept::one(purpose_coding(p)))
                .into_iter()
                .collect(),
            ..Agent::default()
        });
        let organisation = &professional.organisation;
        if !(organisation.id.is_empty() && organisation.name.is_empty()) {
            agents.push(Agent {
                who: Some(Reference {
                    type_: Some("Organization"),
                    identifier: non_empty(Some(&organisation.id)).map(|value| Identifier {
                        system: None,
                        value,
                    }),
                    display: non_empty(Some(&organisation.name)),
                    ..Reference::default()
                }),
                requestor: false,
                ..Agent::default()
            });
        }
    }
    // BALP: for a read the client is the Destination, otherwise the Source.
    let (client_role, server_role) = match record.action {
        AuditAction::Read => (DESTINATION_ROLE, SOURCE_ROLE),
        AuditAction::Search | AuditAction::Create | AuditAction::Update => {
            (SOURCE_ROLE, DESTINATION_ROLE)
        }
    };
    let own = &record.source_ncp;
    match &record.peer_ncp {
        Some(peer) => {
            let (own_role, peer_role) = match peer.role {
                PeerRole::Requester => (server_role, client_role),
                PeerRole::Responder => (client_role, server_role),
            };
            agents.push(ncp_agent(own_role, &own.ncp_id, &own.country, None));
            agents.push(ncp_agent(
                peer_role,
                &peer.ncp_id,
                &peer.country,
                non_empty(Some(&peer.cert_fingerprint)).map(|fp| format!("sha256:{fp}")),
            ));
        }
        None => agents.push(ncp_agent(server_role, &own.ncp_id, &own.country, None)),
    }
    agents
}

const SOURCE_ROLE: (&str, &str) = ("110153", "Source Role ID");
const DESTINATION_ROLE: (&str, &str) = ("110152", "Destination Role ID");

fn ncp_agent(
    (code, display): (&'static str, &'static str),
    ncp_id: &str,
    country: &str,
    alt_id: Option<String>,
) -> Agent {
    Agent {
        type_: Some(CodeableConcept::one(Coding::new(
            DICOM,
            code,
            Some(display),
        ))),
        who: Some(ncp_reference(ncp_id, country)),
        alt_id,
        requestor: false,
        ..Agent::default()
    }
}

fn ncp_reference(ncp_id: &str, country: &str) -> Reference {
    Reference {
        type_: Some("Device"),
        identifier: non_empty(Some(ncp_id)).map(|value| Identifier {
            system: None,
            value,
        }),
        display: Some(format!("NCP {ncp_id} ({country})")),
        ..Reference::default()
    }
}

fn entities(record: &AccessRecord) -> Vec<Entity> {
    let mut entities = Vec::new();
    if let Some(patient) = &record.patient {
        entities.push(Entity {
            what: Some(Reference {
                type_: Some("Patient"),
                identifier: non_empty(Some(patient.value())).map(|value| Identifier {
                    system: non_empty(Some(patient.system())),
                    value,
                }),
                ..Reference::default()
            }),
            type_: Coding::new(ENTITY_TYPE, "1", Some("Person")),
            role: Some(Coding::new(OBJECT_ROLE, "1", Some("Patient"))),
            ..Entity::default()
        });
    }
    if let Some(entity) = &record.entity {
        let service: Vec<EntityDetail> = entity
            .service
            .iter()
            .filter(|name| !name.is_empty())
            .map(|name| EntityDetail {
                type_: SERVICE_DETAIL,
                value_string: name.clone(),
            })
            .collect();
        match &entity.target {
            EntityTarget::Id(id) => entities.push(Entity {
                what: Some(Reference {
                    reference: Some(format!("{}/{id}", entity.resource_type)),
                    ..Reference::default()
                }),
                type_: Coding::new(ENTITY_TYPE, "2", Some("System Object")),
                role: Some(Coding::new(OBJECT_ROLE, "4", Some("Domain Resource"))),
                detail: service,
                ..Entity::default()
            }),
            EntityTarget::Query(query) => {
                let text = if query.is_empty() {
                    entity.resource_type.clone()
                } else {
                    format!("{}?{query}", entity.resource_type)
                };
                entities.push(Entity {
                    type_: Coding::new(ENTITY_TYPE, "2", Some("System Object")),
                    role: Some(Coding::new(OBJECT_ROLE, "24", Some("Query"))),
                    query: Some(base64::engine::general_purpose::STANDARD.encode(&text)),
                    description: Some(text),
                    detail: service,
                    ..Entity::default()
                });
            }
        }
    }
    entities.push(Entity {
        what: Some(Reference {
            identifier: Some(Identifier {
                system: None,
                value: record.request_id.clone(),
            }),
            ..Reference::default()
        }),
        type_: Coding::new(BALP_ENTITY_TYPE_SYSTEM, "XrequestId", None),
        detail: record
            .correlation_id
            .iter()
            .filter(|id| !id.is_empty())
            .map(|id| EntityDetail {
                type_: CORRELATION_ID_DETAIL,
                value_string: id.clone(),
            })
            .collect(),
        ..Entity::default()
    });
    entities
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

// The R4 AuditEvent elements the gateway writes, in the order of the
// specification (serde writes fields in declaration order).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    resource_type: &'static str,
    #[serde(rename = "type")]
    type_: Coding,
    subtype: Vec<Coding>,
    action: &'static str,
    recorded: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_desc: Option<String>,
    agent: Vec<Agent>,
    source: Source,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entity: Vec<Entity>,
}

#[derive(Serialize)]
struct Coding {
    system: &'static str,
    code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'static str>,
}

impl Coding {
    fn new(system: &'static str, code: &str, display: Option<&'static str>) -> Self {
        Self {
            system,
            code: code.to_owned(),
            display,
        }
    }
}

#[derive(Serialize)]
struct CodeableConcept {
    coding: Vec<Coding>,
}

impl CodeableConcept {
    fn one(coding: Coding) -> Self {
        Self {
            coding: vec![coding],
        }
    }
}

#[derive(Serialize, Default)]
struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<String>,
}

#[derive(Serialize)]
struct Identifier {
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    value: String,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Agent {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    type_: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    role: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    who: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    requestor: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    purpose_of_use: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<Network>,
}

#[derive(Serialize)]
struct Network {
    address: String,
    /// R4 network-type: `2` IP address.
    #[serde(rename = "type")]
    type_: &'static str,
}

/// A connection a listener refused before any request (TLS handshake,
/// certificate identity or revocation): recorded as a DICOM Security Alert
/// (`110113`, subtype `110126` Node Authentication), outcome minor failure,
/// with the remote address and, where one was verified, the certificate's
/// fingerprint. No patient: nothing was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityAlert {
    /// When it happened.
    pub recorded: OffsetDateTime,
    /// The NCP whose listener refused it.
    pub source_ncp: NcpParty,
    /// The remote IP address.
    pub remote_address: String,
    /// Why, as a short label (e.g. `unknown_issuer`, `revoked`).
    pub reason: String,
    /// SHA-256 fingerprint (hex) of a certificate that was verified but
    /// refused (identity, OCSP).
    pub peer_fingerprint: Option<String>,
    /// How many alerts of the same source and reason the rate limit left
    /// unrecorded since the last one recorded: stated in the outcome
    /// description, so the trail says a flood happened and how large.
    pub suppressed_before: u64,
}

/// The JSON bytes of the R4 AuditEvent for `alert`.
pub fn security_alert_json(alert: &SecurityAlert) -> Result<Vec<u8>, AuditEventError> {
    if alert.source_ncp.ncp_id.is_empty() || alert.source_ncp.country.is_empty() {
        return Err(AuditEventError::Empty("source NCP"));
    }
    let recorded = alert
        .recorded
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)?;
    let own = &alert.source_ncp;
    let event = AuditEvent {
        resource_type: "AuditEvent",
        type_: Coding::new(DICOM, "110113", Some("Security Alert")),
        subtype: vec![Coding::new(DICOM, "110126", Some("Node Authentication"))],
        action: "E",
        recorded,
        outcome: AuditOutcome::MinorFailure.code(),
        outcome_desc: Some(match alert.suppressed_before {
            0 => format!("connection refused: {}", alert.reason),
            n => format!(
                "connection refused: {}; {n} earlier refusals of this source for this reason not recorded (rate limit)",
                alert.reason
            ),
        }),
        agent: vec![
            Agent {
                type_: Some(CodeableConcept::one(Coding::new(
                    DICOM,
                    SOURCE_ROLE.0,
                    Some(SOURCE_ROLE.1),
                ))),
                who: Some(Reference {
                    display: Some("unauthenticated client".to_owned()),
                    ..Reference::default()
                }),
                alt_id: alert
                    .peer_fingerprint
                    .as_ref()
                    .map(|fp| format!("sha256:{fp}")),
                requestor: true,
                network: non_empty(Some(&alert.remote_address)).map(|address| Network {
                    address,
                    type_: "2",
                }),
                ..Agent::default()
            },
            ncp_agent(DESTINATION_ROLE, &own.ncp_id, &own.country, None),
        ],
        source: Source {
            site: own.country.clone(),
            observer: ncp_reference(&own.ncp_id, &own.country),
            type_: vec![Coding::new(
                SECURITY_SOURCE_TYPE,
                "4",
                Some("Application Server"),
            )],
        },
        entity: Vec::new(),
    };
    Ok(serde_json::to_vec(&event)?)
}

#[derive(Serialize)]
struct Source {
    site: String,
    observer: Reference,
    #[serde(rename = "type")]
    type_: Vec<Coding>,
}

#[derive(Serialize, Default)]
struct Entity {
    #[serde(skip_serializing_if = "Option::is_none")]
    what: Option<Reference>,
    #[serde(rename = "type")]
    type_: Coding,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    detail: Vec<EntityDetail>,
}

/// `AuditEvent.entity.detail` (type 1..1 string, value[x] 1..1).
#[derive(Debug, Clone, Serialize)]
struct EntityDetail {
    #[serde(rename = "type")]
    type_: &'static str,
    #[serde(rename = "valueString")]
    value_string: String,
}

/// The `entity.detail.type` of the correlation id.
const CORRELATION_ID_DETAIL: &str = "X-Correlation-ID";
/// The `entity.detail.type` of the service the data belongs to.
const SERVICE_DETAIL: &str = "service";

impl Default for Coding {
    fn default() -> Self {
        Self::new(ENTITY_TYPE, "4", Some("Other"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Json, Node, parse};
    use time::macros::datetime;

    fn record() -> AccessRecord {
        AccessRecord {
            action: AuditAction::Search,
            subtype: RestInteraction::SearchType,
            recorded: datetime!(2026-11-24 19:30:00.250 +01:00),
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
                cert_fingerprint: "ab12".into(),
                role: PeerRole::Responder,
            }),
            patient: PatientIdentifier::new("urn:oid:1.3.182.4.4", "1998041799999"),
            entity: Some(AuditedEntity {
                resource_type: "DocumentReference".into(),
                target: EntityTarget::Query(
                    "patient.identifier=urn:oid:1.3.182.4.4%7C1998041799999".into(),
                ),
                service: Some("patient-summary".into()),
            }),
            request_id: "req-1".into(),
            correlation_id: Some("corr-1".into()),
        }
    }

    fn render(record: &AccessRecord) -> Node {
        parse(&audit_event_json(record).unwrap()).unwrap()
    }

    fn at<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
        path.iter()
            .fold(node, |n, step| match step.parse::<usize>() {
                Ok(i) => n.items().get(i).unwrap_or_else(|| panic!("{path:?}")),
                Err(_) => n.get(step).unwrap_or_else(|| panic!("{path:?}")),
            })
    }

    fn s<'a>(node: &'a Node, path: &[&str]) -> &'a str {
        at(node, path).as_str().unwrap()
    }

    #[test]
    fn search_relayed_to_a_peer() {
        let e = render(&record());
        assert_eq!(s(&e, &["resourceType"]), "AuditEvent");
        assert_eq!(s(&e, &["type", "code"]), "rest");
        assert_eq!(s(&e, &["subtype", "0", "system"]), RESTFUL_INTERACTION);
        assert_eq!(s(&e, &["subtype", "0", "code"]), "search-type");
        assert_eq!(s(&e, &["action"]), "E");
        assert_eq!(s(&e, &["recorded"]), "2026-11-24T18:30:00.25Z");
        assert_eq!(s(&e, &["outcome"]), "0");
        assert!(e.get("outcomeDesc").is_none());
        // The professional.
        assert_eq!(
            s(&e, &["agent", "0", "type", "coding", "0", "code"]),
            "IRCP"
        );
        assert_eq!(at(&e, &["agent", "0", "requestor"]).value, Json::Bool(true));
        assert_eq!(
            at(&e, &["agent", "2", "requestor"]).value,
            Json::Bool(false)
        );
        assert_eq!(
            s(&e, &["agent", "0", "role", "0", "coding", "0", "system"]),
            ISCO_08_SYSTEM
        );
        assert_eq!(
            s(&e, &["agent", "0", "role", "0", "coding", "0", "code"]),
            "2211"
        );
        assert_eq!(
            s(&e, &["agent", "0", "who", "identifier", "value"]),
            "hp-4711"
        );
        assert_eq!(s(&e, &["agent", "0", "name"]), "Dr Jan Peeters");
        assert_eq!(s(&e, &["agent", "0", "location", "display"]), "BE");
        assert_eq!(
            s(
                &e,
                &["agent", "0", "purposeOfUse", "0", "coding", "0", "system"]
            ),
            ACT_REASON
        );
        assert_eq!(
            s(
                &e,
                &["agent", "0", "purposeOfUse", "0", "coding", "0", "code"]
            ),
            "TREAT"
        );
        assert_eq!(s(&e, &["agent", "1", "who", "type"]), "Organization");
        assert_eq!(s(&e, &["agent", "1", "who", "display"]), "AZ Example");
        // Outbound search: we are the client (Source), the peer the server.
        assert_eq!(
            s(&e, &["agent", "2", "type", "coding", "0", "code"]),
            "110153"
        );
        assert_eq!(
            s(&e, &["agent", "2", "who", "identifier", "value"]),
            "ncp-be"
        );
        assert_eq!(
            s(&e, &["agent", "3", "type", "coding", "0", "code"]),
            "110152"
        );
        assert_eq!(
            s(&e, &["agent", "3", "who", "identifier", "value"]),
            "ncp-lu"
        );
        assert_eq!(s(&e, &["agent", "3", "altId"]), "sha256:ab12");
        assert_eq!(at(&e, &["agent"]).items().len(), 4);
        // Source.
        assert_eq!(s(&e, &["source", "site"]), "BE");
        assert_eq!(
            s(&e, &["source", "observer", "identifier", "value"]),
            "ncp-be"
        );
        assert_eq!(s(&e, &["source", "type", "0", "code"]), "4");
        // Entities: patient, query, transaction.
        assert_eq!(s(&e, &["entity", "0", "what", "type"]), "Patient");
        assert_eq!(
            s(&e, &["entity", "0", "what", "identifier", "system"]),
            "urn:oid:1.3.182.4.4"
        );
        assert_eq!(
            s(&e, &["entity", "0", "what", "identifier", "value"]),
            "1998041799999"
        );
        assert_eq!(s(&e, &["entity", "0", "type", "code"]), "1");
        assert_eq!(s(&e, &["entity", "0", "role", "system"]), OBJECT_ROLE);
        assert_eq!(s(&e, &["entity", "0", "role", "code"]), "1");
        assert_eq!(s(&e, &["entity", "1", "role", "code"]), "24");
        let query = "DocumentReference?patient.identifier=urn:oid:1.3.182.4.4%7C1998041799999";
        assert_eq!(s(&e, &["entity", "1", "description"]), query);
        assert_eq!(s(&e, &["entity", "1", "detail", "0", "type"]), "service");
        assert_eq!(
            s(&e, &["entity", "1", "detail", "0", "valueString"]),
            "patient-summary"
        );
        assert_eq!(
            s(&e, &["entity", "1", "query"]),
            base64::engine::general_purpose::STANDARD.encode(query)
        );
        assert!(e.get("entity").unwrap().items()[1].get("what").is_none());
        assert_eq!(
            s(&e, &["entity", "2", "type", "system"]),
            BALP_ENTITY_TYPE_SYSTEM
        );
        assert_eq!(s(&e, &["entity", "2", "type", "code"]), "XrequestId");
        assert_eq!(
            s(&e, &["entity", "2", "what", "identifier", "value"]),
            "req-1"
        );
        assert_eq!(
            s(&e, &["entity", "2", "detail", "0", "type"]),
            "X-Correlation-ID"
        );
        assert_eq!(
            s(&e, &["entity", "2", "detail", "0", "valueString"]),
            "corr-1"
        );
    }

    #[test]
    fn actions_and_roles_follow_balp() {
        // (action, subtype, peer role, own agent code, peer agent code, user type)
        let cases = [
            (
                AuditAction::Read,
                RestInteraction::Read,
                PeerRole::Requester,
                "R",
                "110153",
                "110152",
                "IRCP",
            ),
            (
                AuditAction::Read,
                RestInteraction::Read,
                PeerRole::Responder,
                "R",
                "110152",
                "110153",
                "IRCP",
            ),
            (
                AuditAction::Search,
                RestInteraction::SearchType,
                PeerRole::Requester,
                "E",
                "110152",
                "110153",
                "IRCP",
            ),
            (
                AuditAction::Create,
                RestInteraction::Create,
                PeerRole::Requester,
                "C",
                "110152",
                "110153",
                "AUT",
            ),
            (
                AuditAction::Update,
                RestInteraction::Update,
                PeerRole::Responder,
                "U",
                "110153",
                "110152",
                "AUT",
            ),
        ];
        for (action, subtype, role, code, own, peer, user) in cases {
            let mut r = record();
            r.action = action;
            r.subtype = subtype;
            r.peer_ncp.as_mut().unwrap().role = role;
            r.entity = Some(AuditedEntity {
                resource_type: "Bundle".into(),
                target: EntityTarget::Id("doc-1".into()),
                service: None,
            });
            let e = render(&r);
            assert_eq!(s(&e, &["action"]), code);
            assert_eq!(s(&e, &["subtype", "0", "code"]), subtype.code());
            assert_eq!(s(&e, &["agent", "0", "type", "coding", "0", "code"]), user);
            assert_eq!(
                s(&e, &["agent", "2", "type", "coding", "0", "code"]),
                own,
                "{action:?} {role:?}"
            );
            assert_eq!(
                s(&e, &["agent", "3", "type", "coding", "0", "code"]),
                peer,
                "{action:?} {role:?}"
            );
            assert_eq!(s(&e, &["entity", "1", "what", "reference"]), "Bundle/doc-1");
            assert_eq!(s(&e, &["entity", "1", "role", "code"]), "4");
        }
    }

    #[test]
    fn failures_and_minimal_records() {
        for (outcome, code) in [
            (AuditOutcome::MinorFailure, "4"),
            (AuditOutcome::SeriousFailure, "8"),
            (AuditOutcome::MajorFailure, "12"),
        ] {
            let mut r = record();
            r.outcome = outcome;
            r.outcome_description = Some("peer NCP unreachable".into());
            r.purpose_of_use = Some(PurposeOfUse::Emergency);
            let e = render(&r);
            assert_eq!(s(&e, &["outcome"]), code);
            assert_eq!(s(&e, &["outcomeDesc"]), "peer NCP unreachable");
            assert_eq!(
                s(
                    &e,
                    &["agent", "0", "purposeOfUse", "0", "coding", "0", "code"]
                ),
                "ETREAT"
            );
        }
        // No professional, no peer, no patient, no entity: the recording NCP
        // as server and the request id remain.
        let r = AccessRecord {
            requesting_professional: None,
            purpose_of_use: None,
            peer_ncp: None,
            patient: None,
            entity: None,
            outcome_description: Some(String::new()),
            ..record()
        };
        let e = render(&r);
        assert!(e.get("outcomeDesc").is_none());
        assert_eq!(at(&e, &["agent"]).items().len(), 1);
        assert_eq!(
            s(&e, &["agent", "0", "type", "coding", "0", "code"]),
            "110152"
        );
        assert_eq!(at(&e, &["entity"]).items().len(), 1);
        assert_eq!(s(&e, &["entity", "0", "type", "code"]), "XrequestId");
    }

    #[test]
    fn refuses_what_cannot_be_fhir() {
        let mut r = record();
        r.request_id = String::new();
        assert!(matches!(
            audit_event_json(&r),
            Err(AuditEventError::Empty(_))
        ));
        let mut r = record();
        r.recorded = datetime!(-0001-01-01 0:00 UTC);
        assert!(matches!(
            audit_event_json(&r),
            Err(AuditEventError::Recorded(_))
        ));
        // Empty optional strings are left out rather than written as "".
        let mut r = record();
        let p = r.requesting_professional.as_mut().unwrap();
        p.professional.name = String::new();
        p.professional.role = String::new();
        let e = render(&r);
        assert!(at(&e, &["agent", "0"]).get("name").is_none());
        assert!(at(&e, &["agent", "0"]).get("role").is_none());
        let bytes = audit_event_json(&r).unwrap();
        assert!(!String::from_utf8(bytes).unwrap().contains("\"\""));
    }
}
