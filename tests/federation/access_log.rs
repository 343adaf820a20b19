//! The patient's access log at home covers refusals decided abroad.

use super::*;

/// The patient's access log covers both ends: a refusal Belgium decides on
/// its own (an expired assertion never leaves Belgium) is reported to
/// Luxembourg's NCP, which keeps it in its hash chain, so the Luxembourg
/// patient's portal shows it. An NCP reports only what it observed itself.
#[tokio::test]
async fn refusals_decided_abroad_reach_the_patients_access_log_at_home() {
    let f = federation().await;
    push_lu_summary(&f).await;
    let doctor = Caller::doctor(&f);
    let expired = doctor.assertion_at(
        PurposeOfUse::Treatment,
        time::OffsetDateTime::now_utc() - time::Duration::hours(2),
    );
    let refused = doctor.get_with(&lu_patient_search(), &expired).await;
    assert_eq!(refused.status().as_u16(), 401);
    let mut reported = None;
    for _ in 0..50 {
        let log = access_log(&f, "").await;
        reported = log["entry"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .find(|e| e["resource"]["source"]["site"] == "BE")
            .cloned();
        if reported.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reported = reported.expect("Belgium's refusal never reached the access log in Luxembourg");
    assert_eq!(reported["resource"]["outcome"], "4");
    assert!(
        reported["resource"]["outcomeDesc"]
            .as_str()
            .unwrap()
            .starts_with("assertion refused"),
        "{reported}"
    );
    assert!(f.lu.audit().await.first_broken.is_none());

    // Belgium's NCP cannot report an event as observed by Luxembourg.
    let mut forged = reported["resource"].clone();
    forged["source"]["site"] = "LU".into();
    let response = f
        .federation_client(f.pki.ncp_client("BE"))
        .post(f.lu.federation_url("/fhir/AuditEvent"))
        .header("content-type", FHIR_JSON)
        .body(serde_json::to_vec(&forged).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    f.stop().await;
}
