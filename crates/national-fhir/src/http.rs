//! The HTTP exchange with a national server (FHIR R4 http.html): over
//! TLS (mutual, or server-authenticated with OAuth) with `ehds-transport`'s outbound client for an `https` base
//! URL, or, for a server beside the gateway on a loopback address
//! (`NationalServer::check`), plain HTTP/1.1 over TCP with no TLS at all
//! (hyper-util's client: there is no TLS configuration to get wrong, and
//! its connector refuses any URL that is not `http`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::NationalError;

/// What the server answered: status, media type (lower case, without
/// parameters), `Location`, body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) media_type: String,
    pub(crate) location: Option<String>,
    pub(crate) body: Bytes,
}

/// One request: `GET` of FHIR, `POST` of a FHIR resource (with the
/// `If-None-Exist` of a conditional create, http.html#ccreate) or `PUT` of
/// one (an update); and the
/// OAuth exchanges (`crate::oauth`): `GET` of a JSON document (the SMART
/// configuration) and `POST` of a form (the token request).
#[derive(Debug, Clone)]
pub(crate) enum Request {
    Get,
    Post {
        body: Bytes,
        if_none_exist: Option<String>,
    },
    GetJson,
    Form(String),
    /// `PUT` of a FHIR resource (an update, http.html#update, or a
    /// conditional update by the URL's query, http.html#cond-update).
    Put(Bytes),
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

impl Request {
    /// The method, body, its media type, what is accepted back, and the
    /// `If-None-Exist` header.
    fn parts(
        self,
    ) -> (
        http::Method,
        Bytes,
        Option<&'static str>,
        &'static str,
        Option<String>,
    ) {
        match self {
            Request::Get => (http::Method::GET, Bytes::new(), None, FHIR_JSON, None),
            Request::Post {
                body,
                if_none_exist,
            } => (
                http::Method::POST,
                body,
                Some(FHIR_JSON),
                FHIR_JSON,
                if_none_exist,
            ),
            Request::GetJson => (http::Method::GET, Bytes::new(), None, JSON, None),
            Request::Put(body) => (http::Method::PUT, body, Some(FHIR_JSON), FHIR_JSON, None),
            Request::Form(form) => (
                http::Method::POST,
                Bytes::from(form),
                Some(FORM),
                JSON,
                None,
            ),
        }
    }
}

/// The client of one server.
#[derive(Debug)]
pub(crate) enum Http {
    /// `https` with mutual TLS, or TLS authenticating the server only when
    /// OAuth authenticates the gateway (the transport's client: TLS 1.3, CRLs, no
    /// redirects, no proxy).
    Tls {
        client: reqwest::Client,
        budget: Duration,
    },
    /// Plain `http` to a loopback address; no TLS.
    Plain {
        client: Client<HttpConnector, Full<Bytes>>,
        budget: Duration,
    },
}

const FHIR_JSON: &str = "application/fhir+json";

/// The largest answer read from a national server: a PDF original of the
/// gateway's 10 MiB limit in base64 (13.4 MiB) within its Binary, with room
/// to spare. A larger answer is refused as it arrives, never held whole:
/// no national server, however broken, exhausts the gateway's memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

fn too_large() -> NationalError {
    NationalError::Unexpected(format!(
        "an answer larger than {} MiB",
        MAX_ANSWER_BYTES / (1024 * 1024)
    ))
}

impl Http {
    /// A plain-HTTP client (no TLS, no proxy, no redirects, HTTP/1.1).
    pub(crate) fn plain(connect: Duration, budget: Duration) -> Self {
        let mut connector = HttpConnector::new();
        // Refuses `https` URLs: this client never speaks TLS.
        connector.enforce_http(true);
        connector.set_connect_timeout(Some(connect));
        connector.set_nodelay(true);
        Self::Plain {
            client: Client::builder(TokioExecutor::new()).build(connector),
            budget,
        }
    }

    /// `request` to `url` (with `Authorization: Bearer` when a `bearer`
    /// token is given): the answer whatever its status, or the failure to
    /// get one. Errors are told without the URL: its query holds the
    /// patient identifier.
    pub(crate) async fn send(
        &self,
        url: url::Url,
        request: Request,
        bearer: Option<&str>,
    ) -> Result<Answer, NationalError> {
        let (method, body, content_type, accept, if_none_exist) = request.parts();
        let authorization = match bearer {
            Some(token) => {
                let mut value =
                    http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        NationalError::Credentials("the access token is not a header value".into())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        match self {
            Self::Tls { client, budget } => {
                let failure = |e: reqwest::Error| NationalError::transport(e, *budget);
                let mut builder = client
                    .request(method, url)
                    .header(http::header::ACCEPT, accept);
                if let Some(content_type) = content_type {
                    builder = builder
                        .header(http::header::CONTENT_TYPE, content_type)
                        .body(body);
                }
                if let Some(query) = if_none_exist {
                    builder = builder.header("if-none-exist", query);
                }
                if let Some(authorization) = authorization {
                    builder = builder.header(http::header::AUTHORIZATION, authorization);
                }
                let response = builder.send().await.map_err(failure)?;
                let status = response.status().as_u16();
                let media_type = media_type(response.headers());
                let location = location(response.headers());
                let declared = response.content_length().unwrap_or(0);
                if declared > MAX_ANSWER_BYTES as u64 {
                    return Err(too_large());
                }
                let mut response = response;
                let mut body = bytes::BytesMut::new();
                while let Some(chunk) = response.chunk().await.map_err(failure)? {
                    if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                let body = body.freeze();
                Ok(Answer {
                    status,
                    media_type,
                    location,
                    body,
                })
            }
            Self::Plain { client, budget } => {
                let mut builder = http::Request::builder()
                    .method(method)
                    .uri(url.as_str())
                    .header(http::header::ACCEPT, accept);
                if let Some(content_type) = content_type {
                    builder = builder.header(http::header::CONTENT_TYPE, content_type);
                }
                if let Some(query) = if_none_exist {
                    builder = builder.header("if-none-exist", query);
                }
                if let Some(authorization) = authorization {
                    builder = builder.header(http::header::AUTHORIZATION, authorization);
                }
                let request = builder
                    .body(Full::new(body))
                    .map_err(|e| NationalError::Unexpected(e.to_string()))?;
                let exchange = async {
                    let response = client
                        .request(request)
                        .await
                        .map_err(|e| NationalError::Unreachable(plain_failure(&e)))?;
                    let status = response.status().as_u16();
                    let media_type = media_type(response.headers());
                    let location = location(response.headers());
                    let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                        .collect()
                        .await
                        .map_err(|e| {
                            if e.is::<http_body_util::LengthLimitError>() {
                                too_large()
                            } else {
                                NationalError::Unreachable(e.to_string())
                            }
                        })?
                        .to_bytes();
                    Ok(Answer {
                        status,
                        media_type,
                        location,
                        body,
                    })
                };
                match tokio::time::timeout(*budget, exchange).await {
                    Ok(answer) => answer,
                    Err(_) => Err(NationalError::Timeout(budget.as_secs())),
                }
            }
        }
    }
}

/// The legacy client's error with its cause (the error itself says only
/// "client error (Connect)"); it holds no URL.
fn plain_failure(error: &hyper_util::client::legacy::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

fn media_type(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn location(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_plain_client_refuses_https_and_names_no_url() {
        let http = Http::plain(Duration::from_secs(1), Duration::from_secs(2));
        let https = url::Url::parse("https://127.0.0.1:1/Patient?identifier=secret").unwrap();
        let refused = http.send(https, Request::Get, None).await.unwrap_err();
        assert!(
            matches!(refused, NationalError::Unreachable(_)),
            "{refused}"
        );
        assert!(!refused.to_string().contains("secret"), "{refused}");
        let closed = url::Url::parse("http://127.0.0.1:1/Patient?identifier=secret").unwrap();
        let refused = http.send(closed, Request::Get, None).await.unwrap_err();
        assert!(
            matches!(refused, NationalError::Unreachable(_)),
            "{refused}"
        );
        assert!(!refused.to_string().contains("secret"), "{refused}");
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused_as_it_arrives() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            // Chunked, so that nothing announces the size: the limit holds
            // on what arrives.
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b' '; 1024 * 1024];
            for _ in 0..(MAX_ANSWER_BYTES / chunk.len() + 2) {
                let head = format!("{:x}\r\n", chunk.len());
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(&chunk).await.is_err()
                    || socket.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
            }
        });
        let http = Http::plain(Duration::from_secs(1), Duration::from_secs(20));
        let url = url::Url::parse(&format!("http://{address}/Binary/big")).unwrap();
        let refused = http.send(url, Request::Get, None).await.unwrap_err();
        assert!(
            matches!(&refused, NationalError::Unexpected(m) if m.contains("larger than")),
            "{refused}"
        );
    }
}
