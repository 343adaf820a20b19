//! The patient an assertion claims to be about, read without verifying it:
//! only to know which patient to verify the assertion for (a read by id
//! names no patient until its answer is seen; the verification that follows
//! binds the signature to that patient, so reading the claim first trusts
//! nothing).

use base64::Engine as _;

use crate::PatientRef;

/// `treatment_relationship.patient` of the unverified JWT `token`, if its
/// payload has one.
pub fn claimed_patient(token: &str) -> Option<PatientRef> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let patient = claims.get("treatment_relationship")?.get("patient")?;
    Some(PatientRef::new(
        patient.get("system")?.as_str()?,
        patient.get("value")?.as_str()?,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_claimed_patient_is_read_from_the_payload_only() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            br#"{"treatment_relationship":{"patient":{"system":"urn:oid:1","value":"7"}}}"#,
        );
        let token = format!("e30.{payload}.sig");
        assert_eq!(
            claimed_patient(&token),
            Some(PatientRef::new("urn:oid:1", "7"))
        );
        assert_eq!(claimed_patient("e30"), None);
        assert_eq!(claimed_patient("e30.!!.x"), None);
    }
}
