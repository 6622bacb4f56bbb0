//! HTTP requests, for the few places govit speaks HTTP rather than gRPC: a registry asking
//! witnesses to cosign (c2sp.org/tlog-witness), an inspector fetching a checkpoint, the token
//! issuer's published keys (JWKS).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

/// What came back: the status, the content type and the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A reply bigger than this is not one govit's peers send.
const MAX_REPLY_BYTES: usize = 16 << 20;

type HttpsConnector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The https connector, with the system's roots read once, on first use (a host without a CA
/// bundle still speaks plain http to a witness on its own network). Clients are made per call:
/// a pooled connection belongs to the runtime that opened it.
fn https_connector() -> anyhow::Result<HttpsConnector> {
    static CONNECTOR: std::sync::OnceLock<HttpsConnector> = std::sync::OnceLock::new();
    if let Some(connector) = CONNECTOR.get() {
        return Ok(connector.clone());
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_only()
        .enable_http1()
        .build();
    Ok(CONNECTOR.get_or_init(|| connector).clone())
}

/// Sends one request over HTTP/1.1 (`https://` with the system's roots) and reads the whole
/// reply, within `timeout`.
pub async fn request(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(bytes::Bytes::from(body)))?;
    let exchange = async {
        let response = if url.starts_with("https://") {
            Client::builder(TokioExecutor::new())
                .build::<_, Full<bytes::Bytes>>(https_connector()?)
                .request(request)
                .await?
        } else {
            Client::builder(TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>()
                .request(request)
                .await?
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_REPLY_BYTES);
        let body = limited
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the reply from {url}: {e}"))?
            .to_bytes()
            .to_vec();
        anyhow::Ok(Reply {
            status,
            content_type,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{url} did not answer within {timeout:?}"))?
}
