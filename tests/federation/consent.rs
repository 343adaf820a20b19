//! Consent: the patient's opt-out refuses cross-border access until they
//! withdraw it.

use super::*;

/// The LU patient's portal sets (or withdraws) their opt-out of sharing
/// the patient summary towards `country` (every country: `None`).
async fn set_opt_out(f: &TwoCountries, country: Option<&str>, opt_out: bool) -> Value {
    set_opt_out_of(f, "patient-summary", country, opt_out).await
}

/// The patient's opt-out (set by their national portal) refuses at once,
/// saying only that there is no consent; one towards another country does
/// not; withdrawing it restores access. Only the portal may set it.
#[tokio::test]
async fn a_patient_opt_out_refuses_cross_border_access_until_withdrawn() {
    let f = federation().await;
    push_lu_summary(&f).await;
    let doctor = Caller::doctor(&f);
    let search = lu_patient_search();
    let ask = || doctor.get(&search);
    assert_eq!(ask().await.status().as_u16(), 200);

    set_opt_out(&f, Some("FR"), true).await;
    assert_eq!(
        ask().await.status().as_u16(),
        200,
        "an opt-out towards France only"
    );

    set_opt_out(&f, Some("BE"), true).await;
    let refused = json(ask().await, 403).await;
    let text = refused.to_string();
    assert!(text.contains("no consent"), "{text}");
    assert!(
        !text.contains("opt"),
        "the refusal says no more than 'no consent': {text}"
    );

    set_opt_out(&f, Some("BE"), false).await;
    assert_eq!(ask().await.status().as_u16(), 200, "withdrawn");

    set_opt_out(&f, None, true).await;
    assert_eq!(ask().await.status().as_u16(), 403, "every country");
    set_opt_out(&f, None, false).await;
    assert_eq!(ask().await.status().as_u16(), 200);

    // Only the patient portal may change it.
    let response = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/$cross-border-opt-out",
        r#"{"resourceType":"Parameters"}"#,
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    // The patient's access log, for the portal: every access and refusal,
    // newest first, paged.
    let page = access_log(&f, "&_count=4").await;
    let entries = page["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["resource"]["resourceType"], "AuditEvent");
    let recorded = |e: &Value| e["resource"]["recorded"].as_str().unwrap().to_owned();
    assert!(
        recorded(&entries[0]) >= recorded(&entries[1]),
        "newest first"
    );
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"0") && outcomes.contains(&"4"),
        "{outcomes:?}"
    );
    // The patient reads why: their own opt-out (the doctor was told only
    // "no consent").
    assert!(
        entries
            .iter()
            .filter(|e| e["resource"]["outcome"] == "4")
            .all(|e| e["resource"]["outcomeDesc"] == "no consent: the patient's opt-out"),
        "{entries:?}"
    );
    let next = page["link"][0]["url"].as_str().unwrap();
    let rest = json(
        get_at_lu(
            &f,
            NationalClientKind::PatientPortal,
            &format!("/fhir/{next}"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 2);
    assert!(rest.get("link").is_none());
    // Nobody but the portal reads it.
    let response = doctor
        .get_without_assertion(&about_lu_patient("AuditEvent", ""))
        .await;
    assert_eq!(response.status().as_u16(), 403);
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}
