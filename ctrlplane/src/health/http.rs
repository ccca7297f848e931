//! HTTP_GET and SSL_GET: keepalived's request (`GET <path> HTTP/1.0`, its User-Agent,
//! `Host: <virtualhost or address>`), the whole answer read until the server closes,
//! then its tests in keepalived's order (check_http.c): an empty body fails, then the
//! status code must be in the set (200-299 by default), then the body's MD5 must equal
//! `digest`, then `regex` must (or must not) match. Every url must pass. SSL_GET speaks
//! TLS (rustls) and, like keepalived, does not verify the certificate unless asked.
//!
//! `connect_timeout` bounds each step, as keepalived re-arms its timer for every read
//! and write: the connect, the TLS handshake, the request, and each read of the answer;
//! a large page that keeps arriving is not cut off by a total.

use super::resolve::{Probe, Url};
use super::tcp;
use md5::{Digest, Md5};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most of an answer read (a health page, not a download).
const MAX_ANSWER: usize = 4 << 20;

/// How a check speaks: TLS or not (and whether it verifies, with which SNI name), and
/// keepalived's `http_protocol`.
pub struct How<'a> {
    pub tls: bool,
    pub verify: bool,
    pub sni: Option<&'a str>,
    pub http11: bool,
    pub close: bool,
}

pub async fn check(p: &Probe, urls: &[Url], how: &How<'_>) -> Result<Option<u32>, String> {
    for u in urls {
        one(p, u, how).await?;
    }
    Ok(None)
}

/// keepalived's request (check_http.c's request_template): the Host is the
/// virtualhost, else the target's address and port.
fn request(p: &Probe, u: &Url, how: &How<'_>) -> String {
    let host = match &u.virtualhost {
        Some(v) => v.clone(),
        None => p.target.to_string(),
    };
    format!(
        "GET {} HTTP/1.{}\r\nUser-Agent: KeepAliveClient\r\n{}Host: {host}\r\n\r\n",
        u.path,
        u8::from(how.http11),
        if how.close {
            "Connection: close\r\n"
        } else {
            ""
        }
    )
}

/// Sends the request and reads the answer until the server closes, each step within
/// `step`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
    step: std::time::Duration,
) -> Result<Vec<u8>, String> {
    let timed_out = || format!("timeout after {step:?}");
    tokio::time::timeout(step, s.write_all(req))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let Ok(read) = tokio::time::timeout(step, s.read(&mut chunk)).await else {
            return Err(timed_out());
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_ANSWER {
                    break;
                }
            }
            // A TLS peer that closes without close_notify: what was read counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

async fn one(p: &Probe, u: &Url, how: &How<'_>) -> Result<(), String> {
    let stream = tcp::connect(p).await?;
    let req = request(p, u, how);
    let words = p.target_words();
    let answer = if how.tls {
        let name = how.sni.map(str::to_string).unwrap_or_else(|| {
            u.virtualhost
                .clone()
                .unwrap_or_else(|| p.target.ip().to_string())
        });
        let server = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| format!("SNI name {name:?}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(client_config(how.verify));
        let mut s = tokio::time::timeout(p.connect_timeout, connector.connect(server, stream))
            .await
            .map_err(|_| format!("SSL handshake with {words} timed out"))?
            .map_err(|e| format!("SSL handshake with {words} failed: {e}"))?;
        exchange(&mut s, req.as_bytes(), p.connect_timeout).await
    } else {
        let mut s = stream;
        exchange(&mut s, req.as_bytes(), p.connect_timeout).await
    }
    .map_err(|e| format!("Read error with server {words} url({}): {e}", u.path))?;
    judge(&answer, u).map_err(|why| format!("{why} to {words} url({})", u.path))
}

/// keepalived's tests of an answer, in its order.
pub fn judge(answer: &[u8], u: &Url) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("HTTP header incomplete".into()),
        Err(e) => return Err(format!("HTTP answer unreadable ({e})")),
    };
    let code = resp.code.unwrap_or(0);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = &answer[head..];
    if let Some(n) = length {
        body = &body[..n.min(body.len())];
    }
    if body.is_empty() {
        return Err("HTTP empty body".into());
    }
    if !u.status.iter().any(|&(a, b)| (a..=b).contains(&code)) {
        return Err(format!("HTTP status code error, status_code [{code}]"));
    }
    if let Some(want) = &u.digest {
        let got = hex(&Md5::digest(body));
        if &got != want {
            return Err(format!("MD5 digest error, expecting {want}, got {got}"));
        }
    }
    if let Some(re) = &u.regex {
        let m = regex::bytes::Regex::new(re)
            .map_err(|e| format!("regex: {e}"))?
            .is_match(body);
        if m == u.regex_no_match {
            return Err(format!(
                "regex {re:?} {}",
                if m { "matched" } else { "did not match" }
            ));
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// rustls, verifying against the system's roots when asked, else accepting any
/// certificate (keepalived's default: a health check, not a client of the site).
fn client_config(verify: bool) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let cfg = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Arc::new(cfg)
}

/// Accepts every certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(status: Vec<(u16, u16)>, digest: Option<&str>, regex: Option<&str>) -> Url {
        Url {
            path: "/".into(),
            status,
            digest: digest.map(str::to_string),
            virtualhost: None,
            regex: regex.map(str::to_string),
            regex_no_match: false,
        }
    }

    #[test]
    fn keepalived_order_of_tests() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\nTRAILING";
        // md5("hello\n"), as `keepalived --genhash` prints it: the body only, cut at
        // Content-Length.
        let d = "b1946ac92492d2347c6235b4d2611184";
        assert_eq!(judge(ok, &url(vec![(200, 299)], Some(d), None)), Ok(()));
        let e = judge(ok, &url(vec![(200, 299)], Some(&"0".repeat(32)), None)).unwrap_err();
        assert!(e.starts_with("MD5 digest error"), "{e}");
        let e = judge(ok, &url(vec![(301, 302)], Some(d), None)).unwrap_err();
        assert_eq!(e, "HTTP status code error, status_code [200]");
        let err = b"HTTP/1.1 503 Service Unavailable\r\n\r\ndown";
        assert!(judge(err, &url(vec![(200, 299)], None, None)).is_err());
        assert_eq!(judge(err, &url(vec![(500, 599)], None, None)), Ok(()));
        // An empty body fails first, whatever the status.
        let empty = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            judge(empty, &url(vec![(200, 299)], None, None)),
            Err("HTTP empty body".into())
        );
        assert!(judge(b"garbage", &url(vec![(200, 299)], None, None)).is_err());
        assert_eq!(
            judge(ok, &url(vec![(200, 200)], None, Some("^hel+o"))),
            Ok(())
        );
        assert!(judge(ok, &url(vec![(200, 200)], None, Some("bye"))).is_err());
        let mut nm = url(vec![(200, 200)], None, Some("bye"));
        nm.regex_no_match = true;
        assert_eq!(judge(ok, &nm), Ok(()));
    }
}

#[cfg(test)]
mod step_tests {
    use super::*;

    #[test]
    fn requests_as_keepalived_writes_them() {
        let p = Probe {
            kind: crate::config::CheckType::HttpGet,
            target: "198.18.0.11:80".parse().unwrap(),
            bind: None,
            delay_loop: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            retry: 1,
            delay_before_retry: Duration::from_secs(1),
            warmup: None,
            alpha: false,
            spec: crate::health::resolve::Spec::Tcp,
        };
        let mut u = Url {
            path: "/health".into(),
            status: vec![(200, 299)],
            digest: None,
            virtualhost: None,
            regex: None,
            regex_no_match: false,
        };
        let how = |http11, close| How {
            tls: false,
            verify: false,
            sni: None,
            http11,
            close,
        };
        assert_eq!(
            request(&p, &u, &how(false, false)),
            "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 198.18.0.11:80\r\n\r\n"
        );
        u.virtualhost = Some("www.test".into());
        assert_eq!(
            request(&p, &u, &how(true, true)),
            "GET /health HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.test\r\n\r\n"
        );
        assert!(request(&p, &u, &how(false, true)).starts_with("GET /health HTTP/1.0\r\n"));
    }
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// An answer that keeps arriving, each piece within the step, takes longer than the
    /// step in total and still counts; a server that goes quiet times out.
    #[tokio::test]
    async fn each_read_has_the_timeout_not_the_whole_answer() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let feed = tokio::spawn(async move {
            let mut req = [0u8; 64];
            let _ = server.read(&mut req).await;
            server.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await.unwrap();
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                server.write_all(b"ok ").await.unwrap();
            }
        });
        let step = Duration::from_millis(200);
        let got = exchange(&mut client, b"GET / HTTP/1.0\r\n\r\n", step)
            .await
            .unwrap();
        assert!(got.ends_with(b"ok ok ok ok ok "), "{got:?}");
        feed.await.unwrap();

        let (mut client, mut server) = tokio::io::duplex(1024);
        let _quiet = tokio::spawn(async move {
            server.write_all(b"HTTP/1.0 200 OK\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let e = exchange(&mut client, b"GET / HTTP/1.0\r\n\r\n", step)
            .await
            .unwrap_err();
        assert!(e.contains("timeout"), "{e}");
    }
}
