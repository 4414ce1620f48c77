//! A small HTTP/1.1 POST client for the exporters (OTLP/HTTP, Zipkin): one kept-alive connection
//! (hyper's connection API over a tokio `TcpStream`), reopened when it breaks. It classifies the
//! answer for the retry policy: 2xx is success, 429 and 5xx are transient (with `Retry-After`),
//! any other status is final; a connection error is transient.
//!
//! Plain `http://` only: for TLS endpoints, run a local collector and point tapspan at it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

use super::delivery::{parse_retry_after, Outcome};

/// Largest response body read back (OTLP partial-success messages are small).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// An `http://host[:port]/path` URL, checked once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port` to connect to.
    pub addr: String,
    /// The `Host` header.
    pub host: String,
    /// Origin-form request target.
    pub path: String,
}

impl HttpUrl {
    /// Parse `url`; `default_path` replaces an empty or `/` path.
    pub fn parse(url: &str, default_path: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{url}: TLS is not supported; send to a local collector over http://"
                ))
            }
            _ => return Err(format!("{url}: expected an http:// URL")),
        }
        let authority = uri.authority().ok_or_else(|| format!("{url}: no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") | Some("/") => default_path.to_string(),
            Some(p) => p.to_string(),
        };
        Ok(HttpUrl {
            addr: format!("{host}:{port}"),
            host: authority.as_str().to_string(),
            path,
        })
    }
}

pub struct Poster {
    url: HttpUrl,
    content_type: HeaderValue,
    content_encoding: Option<HeaderValue>,
    headers: Vec<(HeaderName, HeaderValue)>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Poster {
    pub fn new(
        url: HttpUrl,
        content_type: &'static str,
        gzip: bool,
        headers: &[(String, String)],
    ) -> Result<Self, String> {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| format!("invalid header name {k:?}"))?;
                let value = HeaderValue::from_str(v)
                    .map_err(|_| format!("invalid value for header {k:?}"))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Poster {
            url,
            content_type: HeaderValue::from_static(content_type),
            content_encoding: gzip.then(|| HeaderValue::from_static("gzip")),
            headers,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Outcome> {
        let transient = |what: &str| Outcome::Transient {
            reason: what.to_string(),
            retry_after: None,
        };
        let stream = tokio::net::TcpStream::connect(&self.url.addr)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => transient("connection refused"),
                _ => transient("connection error"),
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| transient("connection error"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.url.path.as_str())
            .body(Full::new(body))
            .unwrap_or_default();
        let h = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(&self.url.host) {
            h.insert(HOST, host);
        }
        h.insert(CONTENT_TYPE, self.content_type.clone());
        if let Some(enc) = &self.content_encoding {
            h.insert(CONTENT_ENCODING, enc.clone());
        }
        h.insert(
            hyper::header::USER_AGENT,
            HeaderValue::from_static(concat!("tapspan/", env!("CARGO_PKG_VERSION"))),
        );
        for (k, v) in &self.headers {
            h.append(k.clone(), v.clone());
        }
        req
    }

    /// POST `body` once (reconnecting once if a kept-alive connection turns out dead).
    /// `Ok` carries the 2xx response body.
    pub async fn post(&mut self, body: &Bytes) -> Result<Bytes, Outcome> {
        let mut reused = self.conn.is_some();
        loop {
            let mut sender = match self.conn.take() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    reused = false;
                    self.connect().await?
                }
            };
            if sender.ready().await.is_err() {
                if reused {
                    reused = false;
                    continue;
                }
                return Err(Outcome::Transient {
                    reason: "connection error".into(),
                    retry_after: None,
                });
            }
            let resp = match sender.send_request(self.request(body.clone())).await {
                Ok(r) => r,
                Err(_) if reused => {
                    reused = false;
                    continue;
                }
                Err(_) => {
                    return Err(Outcome::Transient {
                        reason: "connection error".into(),
                        retry_after: None,
                    })
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes());
            if body.is_ok() {
                // Whole response read: the connection can carry the next request.
                self.conn = Some(sender);
            }
            let reason = format!("HTTP {}", status.as_u16());
            return if status.is_success() {
                Ok(body.unwrap_or_default())
            } else if status.as_u16() == 429 || status.is_server_error() {
                Err(Outcome::Transient {
                    reason,
                    retry_after,
                })
            } else {
                Err(Outcome::Permanent { reason })
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_get_a_default_path() {
        let u = HttpUrl::parse("http://localhost:4318", "/v1/traces").unwrap();
        assert_eq!(u.addr, "localhost:4318");
        assert_eq!(u.host, "localhost:4318");
        assert_eq!(u.path, "/v1/traces");
        let u = HttpUrl::parse("http://[::1]/api/v2/spans", "/x").unwrap();
        assert_eq!(u.addr, "[::1]:80");
        assert_eq!(u.path, "/api/v2/spans");
        assert!(HttpUrl::parse("https://x:4318", "/")
            .unwrap_err()
            .contains("TLS"));
        assert!(HttpUrl::parse("ftp://x", "/").is_err());
        assert!(HttpUrl::parse("not a url", "/").is_err());
    }
}
