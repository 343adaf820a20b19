//! One HTTP/1.1 keep-alive connection over mutual TLS, requests sent one
//! after the other on it and on nothing else ([`OneConnection`]).
//!
//! Why not `reqwest` for the push figures: its connection pool hands a
//! connection back to the pool from a task of its own once the answer is
//! read, and a request sent before that task has run opens a second
//! connection in the race, whose handshake the gateway then pays (seen in
//! the tenth session: about one full mutual-TLS handshake per nine pushes
//! of one sequential client, ≈ 5 % of the gateway's CPU). A hospital system
//! that keeps its connection open does not do that, and the figure is
//! "per push with keep-alive". This client cannot open a second connection;
//! the bench also reads the gateway's own handshake counter around each
//! measured phase to show it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::BenchError;

/// One open connection to a gateway listener.
pub(crate) struct OneConnection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

/// An answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl OneConnection {
    /// Connects to `address` with `config` (the client's certificate and
    /// the server's trust), the server's certificate checked for the
    /// address's IP.
    pub(crate) async fn open(
        address: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, BenchError> {
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::IpAddress(address.ip().into()), tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| BenchError::Setup(format!("HTTP/1.1 handshake: {e}")))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            authority: address.to_string(),
        })
    }

    /// `method path` with `headers` and `body`, its answer read whole.
    pub(crate) async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, BenchError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError::Setup(format!("a request: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| BenchError::Setup(format!("the connection closed: {e}")))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| BenchError::Setup(format!("a request failed: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Setup(format!("reading an answer: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// `POST path` of a FHIR resource with `Prefer: return=minimal`.
    pub(crate) async fn push(&mut self, path: &str, body: Vec<u8>) -> Result<Answer, BenchError> {
        self.send(
            hyper::Method::POST,
            path,
            &[
                ("content-type", "application/fhir+json"),
                ("prefer", "return=minimal"),
            ],
            body,
        )
        .await
    }

    /// The counter `name` (a full sample name with its labels, as printed)
    /// of the gateway's `/metrics`.
    pub(crate) async fn metric(&mut self, name: &str) -> Result<u64, BenchError> {
        let answer = self
            .send(hyper::Method::GET, "/metrics", &[], Vec::new())
            .await?;
        let text = String::from_utf8_lossy(&answer.body);
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|value| value.trim().parse().ok())
            })
            .ok_or_else(|| BenchError::Setup(format!("/metrics has no {name}")))
    }
}
