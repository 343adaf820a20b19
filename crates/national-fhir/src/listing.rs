//! What the national server's DocumentReferences list (FHIR R4
//! documentreference.html): each attachment that is a FHIR document Bundle
//! (`Bundle/{id}`, read as the document), and the PDF original
//! (`contentType: application/pdf`, inline or in a `Binary`, read by the
//! DocumentReference's id: `crate::originals`). Reads answers only; asks
//! the server nothing.

use ehds_fhir::Node;

/// The media type of a PDF original.
pub const PDF: &str = "application/pdf";

/// What a listed document is, and so how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedContent {
    /// A FHIR document Bundle, read by `NationalFhir::document`.
    FhirDocument,
    /// A PDF original (MyHealth@EU OrCD), read by
    /// `NationalFhir::pdf_original`.
    PdfOriginal,
}

/// A document the national server lists for the patient
/// (`DocumentReference`), as the gateway lists it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDocument {
    /// What it is.
    pub content: ListedContent,
    /// The id it is read by on the national server: `Bundle/{id}`, or
    /// `SUMMARY_PREFIX``{patient id}` for a summary made on demand, of a
    /// FHIR document; the DocumentReference's id of a PDF original.
    pub id: String,
    /// `DocumentReference.masterIdentifier` (system, value), if given.
    pub identifier: Option<(String, String)>,
    /// `DocumentReference.type.coding` (system, code) pairs.
    pub types: Vec<(String, String)>,
    /// `DocumentReference.date`, as written.
    pub date: Option<String>,
    /// `content.attachment.size`, if given.
    pub size: Option<u64>,
}

/// A DocumentReference as listed: the FHIR document Bundle each of its
/// attachments points to (`Bundle/{id}`, relative or absolute), and its PDF
/// original if it has one (`crate::originals`: read by the
/// DocumentReference's id); nothing for attachments of anything else.
pub(crate) fn listed_documents(reference: &Node) -> Vec<ListedDocument> {
    let identifier = reference.get("masterIdentifier").and_then(|m| {
        Some((
            m.get("system")?.as_str()?.to_owned(),
            m.get("value")?.as_str()?.to_owned(),
        ))
    });
    let types: Vec<(String, String)> = reference
        .get("type")
        .and_then(|t| t.get("coding"))
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            Some((
                c.get("system")?.as_str()?.to_owned(),
                c.get("code")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let date = reference
        .get("date")
        .and_then(Node::as_str)
        .map(str::to_owned);
    let listed = |content, id: &str, attachment: &Node| ListedDocument {
        content,
        id: id.to_owned(),
        identifier: identifier.clone(),
        types: types.clone(),
        date: date.clone(),
        size: attachment
            .get("size")
            .and_then(Node::as_number_text)
            .and_then(|s| s.parse().ok()),
    };
    let attachments = reference
        .get("content")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|content| content.get("attachment"));
    let mut documents: Vec<ListedDocument> = attachments
        .filter_map(|attachment| {
            let id = bundle_id(attachment.get("url")?.as_str()?)?;
            Some(listed(ListedContent::FhirDocument, id, attachment))
        })
        .collect();
    if let (Some(attachment), Some(id)) = (
        pdf_attachment(reference),
        reference
            .get("id")
            .and_then(Node::as_str)
            .filter(|id| ehds_identifiers::is_logical_id(id)),
    ) {
        documents.push(listed(ListedContent::PdfOriginal, id, attachment));
    }
    documents
}

/// The id of the `Bundle/{id}` an attachment url names (relative or
/// absolute, without `_history`).
fn bundle_id(url: &str) -> Option<&str> {
    let url = url.split_once("/_history/").map_or(url, |(u, _)| u);
    let mut segments = url.rsplit('/');
    let id = segments.next()?;
    (segments.next()? == "Bundle" && ehds_identifiers::is_logical_id(id)).then_some(id)
}

/// The PDF attachment of a DocumentReference: the first
/// `content.attachment` whose `contentType` is `application/pdf` (media
/// type parameters ignored, RFC 9110 §8.3.1), if it has data or a url.
pub(crate) fn pdf_attachment(reference: &Node) -> Option<&Node> {
    reference
        .get("content")?
        .items()
        .iter()
        .filter_map(|content| content.get("attachment"))
        .find(|attachment| {
            attachment
                .get("contentType")
                .and_then(Node::as_str)
                .is_some_and(is_pdf)
                && (attachment.get("data").is_some() || attachment.get("url").is_some())
        })
}

/// Whether a media type is `application/pdf`.
pub(crate) fn is_pdf(media_type: &str) -> bool {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case(PDF)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> ehds_fhir::ReceivedResource {
        ehds_fhir::ReceivedResource::parse(bytes::Bytes::copy_from_slice(json.as_bytes())).unwrap()
    }

    #[test]
    fn the_pdf_attachment_is_the_first_with_a_pdf_and_data_or_url() {
        let reference = parsed(
            r#"{"resourceType":"DocumentReference","content":[
                {"attachment":{"contentType":"application/fhir+json","url":"Bundle/b1"}},
                {"attachment":{"contentType":"application/pdf"}},
                {"attachment":{"contentType":"Application/PDF; charset=binary","url":"Binary/p1"}}]}"#,
        );
        let attachment = pdf_attachment(reference.root()).unwrap();
        assert_eq!(
            attachment.get("url").and_then(Node::as_str),
            Some("Binary/p1")
        );
        let none = parsed(
            r#"{"resourceType":"DocumentReference","content":[
                {"attachment":{"contentType":"text/plain","data":"aGk="}}]}"#,
        );
        assert!(pdf_attachment(none.root()).is_none());
    }

    #[test]
    fn bundle_attachments_are_read_relative_or_absolute() {
        let reference = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","type":{"coding":[{"system":"http://loinc.org","code":"60591-5"}]},
               "content":[{"attachment":{"url":"http://127.0.0.1:1/Bundle/ps-1","size":12}}]}"#,
        )
        .unwrap();
        let listed = listed_documents(&reference);
        let [listed] = listed.as_slice() else {
            panic!("{listed:?}")
        };
        assert_eq!(listed.content, ListedContent::FhirDocument);
        assert_eq!(listed.id, "ps-1");
        assert_eq!(listed.size, Some(12));
        assert_eq!(
            listed.types,
            vec![("http://loinc.org".into(), "60591-5".into())]
        );
        // A Binary that is not a PDF original is not listed.
        let elsewhere = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","id":"d1","content":[{"attachment":{"url":"Binary/1"}}]}"#,
        )
        .unwrap();
        assert_eq!(listed_documents(&elsewhere), []);
    }

    #[test]
    fn a_pdf_original_is_listed_by_its_document_reference_beside_its_fhir_form() {
        let reference = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","id":"lab-7",
               "masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"urn:oid:1.2.3"},
               "content":[{"attachment":{"contentType":"application/fhir+json","url":"Bundle/lab-b"}},
                          {"attachment":{"contentType":"application/pdf","url":"Binary/pdf-1","size":9}}]}"#,
        )
        .unwrap();
        let listed = listed_documents(&reference);
        let [fhir, pdf] = listed.as_slice() else {
            panic!("{listed:?}")
        };
        assert_eq!(
            (fhir.content, fhir.id.as_str()),
            (ListedContent::FhirDocument, "lab-b")
        );
        assert_eq!(
            (pdf.content, pdf.id.as_str()),
            (ListedContent::PdfOriginal, "lab-7")
        );
        assert_eq!(pdf.size, Some(9));
        assert_eq!(
            pdf.identifier,
            Some(("urn:ietf:rfc:3986".into(), "urn:oid:1.2.3".into()))
        );
        // Without an id it cannot be read back: not listed.
        let anonymous = ehds_fhir::json::parse(
            br#"{"resourceType":"DocumentReference","content":[{"attachment":{"contentType":"application/pdf","data":"JVBE"}}]}"#,
        )
        .unwrap();
        assert_eq!(listed_documents(&anonymous), []);
    }
}
