//! PDF originals (MyHealth@EU Original Clinical Documents, OrCD: the
//! hospital's own PDF of a report): whether bytes said to be a PDF are one
//! this gateway may store and pass across a border, as a report located at
//! the element that carried them.
//!
//! What is checked, cheaply and on the bytes as received (nothing is
//! decompressed, rendered or rewritten):
//!
//! - **Size**: at most the limit the caller gives (413 at the HTTP edge:
//!   [`PdfCheck::TooLarge`]).
//! - **Header**: the file starts with `%PDF-1.` or `%PDF-2.` (ISO 32000-1
//!   §7.5.2 "File Header", ISO 32000-2 §7.5.2); a reader would look further
//!   into the file, this gateway does not, so a polyglot with other bytes
//!   first is refused.
//! - **Trailer**: an end-of-file marker `%%EOF` within the last 1024 bytes
//!   (ISO 32000-1 §7.5.5 "File Trailer"; 1024 is the window PDF readers
//!   search, e.g. pdf.js and Acrobat's implementation note 18).
//! - **No active content it can see**: no name object `/JavaScript`, `/JS`
//!   (JavaScript actions, ISO 32000-1 §12.6.4.16), `/Launch` (launch
//!   actions, §12.6.4.5), `/SubmitForm`, `/ImportData` (form actions that
//!   send or load data, §12.7.5.2, §12.7.5.4), `/RichMedia` (Adobe
//!   extension level 3 rich media, Flash), `/XFA` (XML forms with scripts,
//!   §12.7.8), anywhere in the file outside streams' compressed content.
//!   Names are compared after their `#xx` escapes are decoded (§7.3.5:
//!   `/J#61vaScript` is `/JavaScript`). A name inside a compressed object
//!   stream (PDF 1.5) is not seen: that is the limit of a cheap check, and
//!   why the document is served as `application/pdf` to be opened by the
//!   professional's reader under its own policy.

use ehds_fhir::outcome::{Issue, IssueType};

use crate::report::ValidationReport;

/// The largest PDF original accepted, once decoded (10 MiB: a scanned
/// multi-page report; its base64 in a DocumentReference stays under the
/// gateway's shipped 20 MiB body limit).
pub const MAX_PDF_ORIGINAL_BYTES: usize = 10 * 1024 * 1024;

/// Names whose presence makes a PDF active content (see the module
/// documentation for their ISO 32000 sections).
const ACTIVE_NAMES: &[&[u8]] = &[
    b"JavaScript",
    b"JS",
    b"Launch",
    b"SubmitForm",
    b"ImportData",
    b"RichMedia",
    b"XFA",
];

/// How far from the end the `%%EOF` marker may be.
const EOF_WINDOW: usize = 1024;

/// What checking a PDF found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdfCheck {
    /// A PDF this gateway accepts.
    Accepted,
    /// Larger than the limit (bytes).
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not an acceptable PDF: the report says why, located at the element.
    Refused(ValidationReport),
}

/// Checks `bytes`, carried at `expression` (e.g.
/// `DocumentReference.content[0].attachment.data`), against `limit` bytes.
pub fn check_pdf(bytes: &[u8], limit: usize, expression: &str) -> PdfCheck {
    if bytes.len() > limit {
        return PdfCheck::TooLarge { limit };
    }
    let mut report = ValidationReport::default();
    let refuse = |report: &mut ValidationReport, message: String| {
        report.push(Issue::error(IssueType::Invalid, message).at(expression));
    };
    if !(bytes.starts_with(b"%PDF-1.") || bytes.starts_with(b"%PDF-2.")) {
        refuse(
            &mut report,
            "the content is not a PDF: a PDF file starts with %PDF-1. or %PDF-2. \
             (ISO 32000 §7.5.2 File Header)"
                .into(),
        );
        return PdfCheck::Refused(report);
    }
    let tail = bytes
        .get(bytes.len().saturating_sub(EOF_WINDOW)..)
        .unwrap_or_default();
    if memchr::memmem::find(tail, b"%%EOF").is_none() {
        refuse(
            &mut report,
            format!(
                "the PDF has no end-of-file marker %%EOF in its last {EOF_WINDOW} bytes \
                 (ISO 32000 §7.5.5 File Trailer): truncated or not a PDF"
            ),
        );
    }
    let mut found: Vec<String> = Vec::new();
    for name in names(bytes) {
        if let Some(active) = ACTIVE_NAMES.iter().find(|a| **a == name.as_slice()) {
            let text = String::from_utf8_lossy(active).into_owned();
            if !found.contains(&text) {
                found.push(text);
            }
        }
    }
    if !found.is_empty() {
        refuse(
            &mut report,
            format!(
                "the PDF carries active content (/{}): JavaScript, launch, form-submission, \
                 rich-media or XFA actions are not accepted in an original clinical document",
                found.join(", /")
            ),
        );
    }
    if report.is_acceptable() {
        PdfCheck::Accepted
    } else {
        PdfCheck::Refused(report)
    }
}

/// The name objects of `bytes` (ISO 32000-1 §7.3.5), `#xx` escapes
/// decoded; the content of streams is skipped (`stream` … `endstream`,
/// §7.3.8), so binary data is not read as names.
fn names(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(b) = bytes.get(i).copied() {
        if b == b's' && bytes.get(i..).is_some_and(|r| r.starts_with(b"stream")) {
            // A stream keyword follows a dictionary; skip to its end.
            let before = i.checked_sub(1).and_then(|j| bytes.get(j)).copied();
            let after = bytes.get(i + 6).copied();
            let keyword =
                before.is_none_or(is_delimiter_or_space) && matches!(after, Some(b'\r' | b'\n'));
            if keyword {
                let rest = bytes.get(i + 6..).unwrap_or_default();
                match memchr::memmem::find(rest, b"endstream") {
                    Some(end) => {
                        i += 6 + end + 9;
                        continue;
                    }
                    None => break,
                }
            }
        }
        if b == b'/' {
            let mut name = Vec::new();
            let mut j = i + 1;
            while let Some(c) = bytes.get(j).copied() {
                if is_delimiter_or_space(c) {
                    break;
                }
                if c == b'#'
                    && let (Some(h), Some(l)) = (
                        bytes.get(j + 1).copied().and_then(hex),
                        bytes.get(j + 2).copied().and_then(hex),
                    )
                {
                    name.push(h << 4 | l);
                    j += 3;
                    continue;
                }
                name.push(c);
                j += 1;
            }
            names.push(name);
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
    names
}

/// White-space and delimiter characters (ISO 32000-1 §7.2.2, tables 1, 2).
fn is_delimiter_or_space(b: u8) -> bool {
    matches!(
        b,
        0 | b'\t'
            | b'\n'
            | 0x0c
            | b'\r'
            | b' '
            | b'('
            | b')'
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'/'
            | b'%'
    )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const AT: &str = "DocumentReference.content[0].attachment.data";

    fn refusal(bytes: &[u8]) -> String {
        match check_pdf(bytes, 1 << 20, AT) {
            PdfCheck::Refused(report) => {
                assert!(
                    report
                        .issues
                        .iter()
                        .all(|i| i.expression.as_deref() == Some(AT))
                );
                report
                    .issues
                    .iter()
                    .map(|i| i.diagnostics.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn a_plain_pdf_is_accepted() {
        assert_eq!(
            check_pdf(
                &ehds_test_support::minimal_pdf("Laboratory report"),
                1 << 20,
                AT
            ),
            PdfCheck::Accepted
        );
    }

    #[test]
    fn wrong_magic_truncation_and_size_are_refused() {
        assert!(refusal(b"GIF89a...").contains("%PDF-1."));
        assert!(refusal(b"<html>%PDF-1.4 %%EOF").contains("not a PDF"));
        let pdf = ehds_test_support::minimal_pdf("x");
        let truncated = pdf.get(..pdf.len() - 8).unwrap();
        assert!(refusal(truncated).contains("%%EOF"));
        assert_eq!(
            check_pdf(&pdf, pdf.len() - 1, AT),
            PdfCheck::TooLarge {
                limit: pdf.len() - 1
            }
        );
        assert_eq!(check_pdf(&pdf, pdf.len(), AT), PdfCheck::Accepted);
    }

    #[test]
    fn active_content_is_refused_even_when_its_name_is_escaped() {
        let with = |action: &str| {
            String::from_utf8_lossy(&ehds_test_support::minimal_pdf("x"))
                .replace(
                    "<< /Type /Catalog /Pages 2 0 R >>",
                    &format!("<< /Type /Catalog /Pages 2 0 R /OpenAction {action} >>"),
                )
                .into_bytes()
        };
        assert!(
            refusal(&with("<< /S /JavaScript /JS (app.alert(1)) >>")).contains("/JavaScript, /JS")
        );
        assert!(refusal(&with("<< /S /J#61vaScript /J#53 (x) >>")).contains("/JavaScript"));
        assert!(refusal(&with("<< /S /Launch /F (cmd.exe) >>")).contains("/Launch"));
        // A name that only starts like one is not one.
        assert_eq!(
            check_pdf(&with("<< /S /JavaScriptish >>"), 1 << 20, AT),
            PdfCheck::Accepted
        );
        // Bytes inside a stream are data, not names.
        let text = ehds_test_support::minimal_pdf("/JavaScript");
        assert_eq!(check_pdf(&text, 1 << 20, AT), PdfCheck::Accepted);
    }
}
