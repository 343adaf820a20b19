//! The border itself: malformed identifiers never cross it, and a dead or
//! stalling peer is answered promptly.

use super::*;

#[tokio::test]
async fn malformed_identifiers_never_cross_the_border_and_dead_or_stalling_peers_answer_promptly() {
    let f = federation().await;
    let doctor = Caller::doctor(&f);
    // 12 digits where LU's rule wants 13: refused at BE.
    let response = doctor
        .get(&format!(
            "/fhir/Patient?identifier={LU_SYSTEM}|123456789012"
        ))
        .await;
    let outcome = json(response, 400).await;
    assert_eq!(outcome["issue"][0]["expression"][0], "identifier");
    // An identifier without its system.
    let response = doctor
        .get(&format!("/fhir/Patient?identifier={LU_PATIENT}"))
        .await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(f.lu.audit().await.records, 0, "nothing crossed the border");

    // LU goes down: BE answers 502 at once.
    let lu_federation = f.lu.federation;
    f.lu.stop().await;
    let response = tokio::time::timeout(Duration::from_secs(5), doctor.get(&lu_patient_search()))
        .await
        .expect("BE answers within 5 s");
    assert_eq!(response.status().as_u16(), 502);

    // Another NCP with a valid federation certificate (BE's) answers at
    // LU's address: its certificate is not the directory's NCP for LU, so
    // nothing it says is passed on.
    let impostor_files = f.another_run(
        "impostor",
        Ports::free().unwrap(),
        Ports {
            national: loopback::free_port().unwrap(),
            federation: lu_federation.port(),
        },
    );
    let mut impostor_config = impostor_files.gateway("BE", impostor_files.lu);
    federation_settings(&mut impostor_config);
    let impostor = start(&impostor_config).await;
    let response = doctor.get(&lu_patient_search()).await;
    let outcome = json(response, 502).await;
    assert!(
        diagnostics(&outcome).contains("not the directory's NCP"),
        "{outcome}"
    );
    impostor.stop().await;

    // Something at LU's address accepts connections and never answers: 504
    // within BE's timeouts (connect 2 s, request 3 s).
    let stall = tokio::net::TcpListener::bind(lu_federation).await.unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stall.accept().await {
            held.push(socket);
        }
    });
    let response = tokio::time::timeout(Duration::from_secs(8), doctor.get(&lu_patient_search()))
        .await
        .expect("BE answers within its timeouts");
    let status = response.status().as_u16();
    assert!(status == 504 || status == 502, "{status}");
    holder.abort();
    // BE audited each failed relay, chain intact.
    let be_audit = f.be.audit().await;
    assert!(be_audit.first_broken.is_none());
    assert!(be_audit.records >= 5);
    f.be.stop().await;
}
