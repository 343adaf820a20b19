//! PDF originals held by the national server (MyHealth@EU Original
//! Clinical Documents, OrCD; issue 19): a `DocumentReference` whose
//! `content.attachment` has `contentType: application/pdf` (FHIR R4
//! documentreference.html), the PDF either inline (`attachment.data`,
//! base64) or in a `Binary` the attachment's `url` names on this server
//! (`Binary/{id}`, relative or absolute; binary.html). A PDF original is
//! listed and read by its DocumentReference's id: a plain read every FHIR
//! server answers (no search by `location`, which servers need not
//! support), and the DocumentReference gives what the gateway must know
//! before anything leaves (the subject, the masterIdentifier a patient's
//! restriction names, the type that names the service).

use base64::Engine as _;
use bytes::Bytes;
use ehds_fhir::{Node, ReceivedResource};

use crate::listing::{is_pdf, pdf_attachment};
use crate::{NationalError, NationalFhir};

/// A PDF original as the national server holds it: its DocumentReference
/// (bytes as sent) and the PDF, decoded.
#[derive(Debug, Clone)]
pub struct NationalOriginal {
    /// The DocumentReference, as the server sent it.
    pub reference: ReceivedResource,
    /// The PDF's bytes (decoded from base64, never otherwise changed).
    pub pdf: Bytes,
}

/// The bytes of a base64Binary (FHIR R4 datatypes.html#base64Binary, which
/// allows whitespace between the groups).
fn decoded(data: &str, what: &str) -> Result<Bytes, NationalError> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map(Bytes::from)
        .map_err(|_| NationalError::Unexpected(format!("{what} is not base64")))
}

impl NationalFhir {
    /// The PDF original listed under the DocumentReference `id`, if the
    /// server has it: `GET DocumentReference/{id}`, then the PDF inline or
    /// `GET Binary/{id}` of its attachment's `url`. A DocumentReference
    /// without a PDF is no PDF original (`None`); one whose Binary is
    /// missing, elsewhere, or not a PDF is the server's inconsistency
    /// ([`NationalError::Unexpected`]).
    pub async fn pdf_original(&self, id: &str) -> Result<Option<NationalOriginal>, NationalError> {
        if !ehds_identifiers::is_logical_id(id) {
            return Ok(None);
        }
        let Some(reference) = self.get(&format!("DocumentReference/{id}"), &[]).await? else {
            return Ok(None);
        };
        if reference.resource_type() != "DocumentReference" {
            return Err(NationalError::Unexpected(
                "a DocumentReference read answered with another resource".into(),
            ));
        }
        let Some(attachment) = pdf_attachment(reference.root()) else {
            return Ok(None);
        };
        if let Some(data) = attachment.get("data").and_then(Node::as_str) {
            let pdf = decoded(data, "the PDF in the DocumentReference")?;
            return Ok(Some(NationalOriginal { reference, pdf }));
        }
        let url = attachment
            .get("url")
            .and_then(Node::as_str)
            .unwrap_or_default();
        let binary_id = self.binary_on_this_server(url)?;
        let binary = self
            .get(&format!("Binary/{binary_id}"), &[])
            .await?
            .ok_or_else(|| {
                NationalError::Unexpected(
                    "the Binary a PDF original's DocumentReference names is not on the server"
                        .into(),
                )
            })?;
        let root = binary.root();
        if binary.resource_type() != "Binary"
            || !root
                .get("contentType")
                .and_then(Node::as_str)
                .is_some_and(is_pdf)
        {
            return Err(NationalError::Unexpected(
                "a PDF original's Binary is not a PDF".into(),
            ));
        }
        let data = root.get("data").and_then(Node::as_str).ok_or_else(|| {
            NationalError::Unexpected("a PDF original's Binary holds no data".into())
        })?;
        let pdf = decoded(data, "the PDF in the Binary")?;
        Ok(Some(NationalOriginal { reference, pdf }))
    }

    /// The id of `Binary/{id}` named by `url` (relative to the base, or
    /// absolute under it, without `_history`), refused when it names
    /// anything else: the gateway fetches nothing from another host.
    fn binary_on_this_server(&self, url: &str) -> Result<String, NationalError> {
        let elsewhere = || {
            NationalError::Unexpected(
                "a PDF original's attachment url is not a Binary on the national server".into(),
            )
        };
        let url = url.split_once("/_history/").map_or(url, |(u, _)| u);
        let id = match url.strip_prefix("Binary/") {
            Some(id) => id,
            None => {
                let absolute = self.url("Binary/", &[])?;
                url.strip_prefix(absolute.as_str()).ok_or_else(elsewhere)?
            }
        };
        if !ehds_identifiers::is_logical_id(id) {
            return Err(elsewhere());
        }
        Ok(id.to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_whitespace_is_decoded_and_garbage_is_the_servers_error() {
        assert_eq!(
            decoded("JVBE\n Ri0x", "x").unwrap(),
            Bytes::from_static(b"%PDF-1")
        );
        assert!(matches!(
            decoded("not base64!", "x"),
            Err(NationalError::Unexpected(_))
        ));
    }
}
