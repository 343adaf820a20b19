//! The ePrescription interactions with a national server (issue 19): the
//! patient's prescriptions (`MedicationRequest?patient.identifier=…&status=…`,
//! or by the patient's id where the server has no chained search), one
//! prescription read by id (`MedicationRequest/{id}`) or found by its
//! business identifier (`MedicationRequest?identifier=`), whom a
//! prescription is about (`subject.identifier`, or the `Patient/{id}` it
//! references), and a dispense written back (`MedicationDispense` create,
//! conditional on its identifier: FHIR R4 http.html#ccreate, so that a
//! dispense sent again is not written twice).

use bytes::Bytes;
use ehds_fhir::{Node, ReceivedResource};
use ehds_identifiers::PatientIdentifier;

use crate::about::{escape, identifiers, matches};
use crate::client::{Listing, parse, span_of};
use crate::http::Request;
use crate::{NationalError, NationalFhir};

/// A resource the national server created (`POST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `false` when the server found one with the same identifier and
    /// created nothing (200 to a conditional create).
    pub created: bool,
    /// Its id on the server (`Location` or the returned resource), if told.
    pub id: Option<String>,
}

impl NationalFhir {
    /// The patient's MedicationRequests of `statuses` (all when empty),
    /// each as the server sent it (its bytes within the search set). Every
    /// one must be about the patient (its subject's identifier, or a
    /// reference to one of the patient's ids), else nothing is listed.
    pub async fn prescriptions(
        &self,
        patient: &PatientIdentifier,
        statuses: &[&str],
    ) -> Result<Listing<ReceivedResource>, NationalError> {
        let status = statuses.join(",");
        let query: Vec<(&str, &str)> = if status.is_empty() {
            Vec::new()
        } else {
            vec![("status", status.as_str())]
        };
        let (pages, mut patient_ids) = self
            .of_patient("MedicationRequest", patient, &query)
            .await?;
        let mut listing = Listing {
            items: Vec::new(),
            incomplete: pages.incomplete,
        };
        for answer in &pages.answers {
            for request in matches(answer.root()) {
                if !self
                    .subject_is(patient, request.get("subject"), &mut patient_ids)
                    .await?
                {
                    self.forget_answers();
                    return Err(NationalError::OtherPatient);
                }
                listing.items.push(resource_of(answer, request)?);
            }
        }
        Ok(listing)
    }

    /// `GET MedicationRequest/{id}`, if the server has it.
    pub async fn prescription(&self, id: &str) -> Result<Option<ReceivedResource>, NationalError> {
        if !ehds_identifiers::is_logical_id(id) {
            return Ok(None);
        }
        let Some(answer) = self.get(&format!("MedicationRequest/{id}"), &[]).await? else {
            return Ok(None);
        };
        if answer.resource_type() != "MedicationRequest" {
            return Err(NationalError::Unexpected(
                "a MedicationRequest read answered with another resource".into(),
            ));
        }
        Ok(Some(answer))
    }

    /// The patient's MedicationRequest whose business identifier is
    /// `system|value` (`MedicationRequest?identifier=`); `None` when the
    /// server has none, or none of this patient's (a dispense naming
    /// another patient's prescription names no prescription of this one).
    pub async fn prescription_by_identifier(
        &self,
        patient: &PatientIdentifier,
        (system, value): (&str, &str),
    ) -> Result<Option<ReceivedResource>, NationalError> {
        let token = format!("{}|{}", escape(system), escape(value));
        let pages = self
            .search("MedicationRequest", &[("identifier", &token)])
            .await?;
        let mut found = None;
        let mut patient_ids = None;
        for answer in &pages.answers {
            for request in matches(answer.root()) {
                let named = identifiers(request).any(|(s, v)| s == system && v == value);
                if !named
                    || !self
                        .subject_is(patient, request.get("subject"), &mut patient_ids)
                        .await?
                {
                    continue;
                }
                if found.is_some() {
                    return Err(NationalError::Unexpected(
                        "two prescriptions with one identifier".into(),
                    ));
                }
                found = Some(resource_of(answer, request)?);
            }
        }
        Ok(found)
    }

    /// Whether the server holds a `resource_type` with the business
    /// identifier `system|value` (`{resource_type}?identifier=`).
    pub async fn holds(
        &self,
        resource_type: &str,
        (system, value): (&str, &str),
    ) -> Result<bool, NationalError> {
        let token = format!("{}|{}", escape(system), escape(value));
        let pages = self
            .search(resource_type, &[("identifier", &token)])
            .await?;
        Ok(pages.answers.iter().any(|answer| {
            matches(answer.root())
                .any(|resource| identifiers(resource).any(|(s, v)| s == system && v == value))
        }))
    }

    /// The one `resource_type` whose business identifier is `system|value`
    /// (`{resource_type}?identifier=`), as the server sent it; `None` when
    /// the server has none; two are the server's error.
    pub async fn by_identifier(
        &self,
        resource_type: &str,
        (system, value): (&str, &str),
    ) -> Result<Option<ReceivedResource>, NationalError> {
        let token = format!("{}|{}", escape(system), escape(value));
        let pages = self
            .search(resource_type, &[("identifier", &token)])
            .await?;
        let mut found = None;
        for answer in &pages.answers {
            for resource in matches(answer.root()) {
                if !identifiers(resource).any(|(s, v)| s == system && v == value) {
                    continue;
                }
                if found.is_some() {
                    return Err(NationalError::Unexpected(format!(
                        "two {resource_type} with one identifier"
                    )));
                }
                found = Some(resource_of(answer, resource)?);
            }
        }
        Ok(found)
    }

    /// `PUT {resource_type}?identifier=system|value` of `body` (a FHIR JSON
    /// resource, sent as received): the conditional update of the one
    /// resource with that identifier (FHIR R4 http.html#cond-update; the
    /// body carries no id of the server's, which the match supplies). A
    /// refusal is [`NationalError::Status`] with the server's status.
    pub async fn update_by_identifier(
        &self,
        resource_type: &str,
        body: Bytes,
        (system, value): (&str, &str),
    ) -> Result<(), NationalError> {
        let token = format!("{}|{}", escape(system), escape(value));
        let url = self.url(resource_type, &[("identifier", &token)])?;
        let answer = self.exchange(url, Request::Put(body)).await?;
        match answer.status {
            200 | 201 => Ok(()),
            status => Err(NationalError::Status(status)),
        }
    }

    /// The identifiers (system, value) of the patient a resource of this
    /// server is about: its `subject.identifier`, or those of the Patient
    /// its `subject.reference` names on this server (read). None for a
    /// subject elsewhere.
    pub async fn subject_identifiers(
        &self,
        resource: &Node,
    ) -> Result<Vec<(String, String)>, NationalError> {
        let subject = resource.get("subject");
        if let Some(identifier) = subject.and_then(|s| s.get("identifier")) {
            return Ok(identifier
                .get("system")
                .and_then(Node::as_str)
                .zip(identifier.get("value").and_then(Node::as_str))
                .map(|(s, v)| vec![(s.to_owned(), v.to_owned())])
                .unwrap_or_default());
        }
        let Some(reference) = subject
            .and_then(|s| s.get("reference"))
            .and_then(Node::as_str)
        else {
            return Ok(Vec::new());
        };
        let reference = reference
            .split_once("/_history/")
            .map_or(reference, |(r, _)| r);
        let Some(id) = reference
            .rsplit('/')
            .next()
            .filter(|id| ehds_identifiers::is_logical_id(id))
        else {
            return Ok(Vec::new());
        };
        let relative = format!("Patient/{id}");
        let here = self.url(&relative, &[])?;
        if reference != relative && reference != here.as_str() {
            return Ok(Vec::new());
        }
        let Some(patient) = self.get(&relative, &[]).await? else {
            return Ok(Vec::new());
        };
        if patient.resource_type() != "Patient" {
            return Err(NationalError::Unexpected(
                "a Patient read answered with another resource".into(),
            ));
        }
        Ok(identifiers(patient.root())
            .map(|(s, v)| (s.to_owned(), v.to_owned()))
            .collect())
    }

    /// `POST {resource_type}` of `body` (a FHIR JSON resource, sent as
    /// received), created only if none with `identifier` exists
    /// (`If-None-Exist: identifier=system|value`, http.html#ccreate: 201
    /// created, 200 found). A refusal is [`NationalError::Status`] with
    /// the server's status.
    pub async fn create(
        &self,
        resource_type: &str,
        body: Bytes,
        (system, value): (&str, &str),
    ) -> Result<Created, NationalError> {
        let url = self.url(resource_type, &[])?;
        let condition = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "identifier",
                &format!("{}|{}", escape(system), escape(value)),
            )
            .finish();
        let answer = self
            .exchange(
                url,
                Request::Post {
                    body,
                    if_none_exist: Some(condition),
                },
            )
            .await?;
        let created = match answer.status {
            201 => true,
            200 => false,
            status => return Err(NationalError::Status(status)),
        };
        let from_location = answer.location.as_deref().and_then(|location| {
            let location = location
                .split_once("/_history/")
                .map_or(location, |(l, _)| l);
            let (path, id) = location.rsplit_once('/')?;
            (path.ends_with(resource_type) && ehds_identifiers::is_logical_id(id))
                .then(|| id.to_owned())
        });
        let id = match from_location {
            Some(id) => Some(id),
            // No Location: the returned resource's id, if one came back.
            None if !answer.body.is_empty() => parse(answer).ok().and_then(|r| {
                (r.resource_type() == resource_type)
                    .then(|| r.root().get("id").and_then(Node::as_str).map(str::to_owned))
                    .flatten()
            }),
            None => None,
        };
        Ok(Created { created, id })
    }
}

/// A search result as its own resource: its bytes within the search set.
fn resource_of(
    answer: &ReceivedResource,
    resource: &Node,
) -> Result<ReceivedResource, NationalError> {
    let bytes = span_of(answer, resource)
        .ok_or_else(|| NationalError::Unexpected("a search result out of its answer".into()))?;
    ReceivedResource::parse(bytes)
        .map_err(|rejection| NationalError::NotFhir(rejection.to_string()))
}
