//! TLS to PostgreSQL, in Rust (rustls with ring; no system OpenSSL), as the connection URL's
//! `sslmode` asks:
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default, as libpq's) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a trusted authority |
//! | `verify-full` | always | signed by a trusted authority, for the host connected to |
//!
//! The trusted authorities are those of the PEM file `sslrootcert` names, or else Mozilla's (the
//! `webpki-roots` crate; what public certificates chain to). `tokio-postgres` reads every other
//! parameter; it knows only the first three modes, so the URL is read here first.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Config;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Authority,
    AuthorityAndHost,
}

/// Reads a connection string (a `postgres://` URL or `key=value` pairs): the settings for
/// `tokio-postgres`, and the TLS connector its `sslmode` and `sslrootcert` ask for.
pub(super) fn read(url: &str) -> Result<(Config, Tls), String> {
    let mut mode = None;
    let mut root = None;
    let rest = take_parameters(url, |key, value| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root = Some(PathBuf::from(value));
            true
        }
        _ => false,
    });
    let mut config: Config = rest.parse().map_err(|error| format!("{error}"))?;
    let (ssl_mode, check) = match mode.as_deref().unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Check::Nothing),
        "prefer" => (SslMode::Prefer, Check::Nothing),
        "require" => (SslMode::Require, Check::Nothing),
        "verify-ca" => (SslMode::Require, Check::Authority),
        "verify-full" => (SslMode::Require, Check::AuthorityAndHost),
        other => {
            return Err(format!(
                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    config.ssl_mode(ssl_mode);
    let tls = Tls::new(check, root.as_deref())?;
    Ok((config, tls))
}

/// `url` without the parameters `take` keeps (it is given each key and its decoded value).
fn take_parameters(url: &str, mut take: impl FnMut(&str, String) -> bool) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return url.to_string();
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !take(key, percent_decode(value))
            })
            .collect();
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else {
        // `key=value` pairs, separated by spaces; a value may be quoted ('...').
        let mut kept = Vec::new();
        for pair in split_pairs(url) {
            let taken = pair.split_once('=').is_some_and(|(key, value)| {
                take(key.trim(), value.trim().trim_matches('\'').to_string())
            });
            if !taken {
                kept.push(pair);
            }
        }
        kept.join(" ")
    }
}

/// The `key=value` pairs of a libpq connection string, quotes kept.
fn split_pairs(text: &str) -> Vec<String> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for character in text.chars() {
        match character {
            _ if escaped => {
                current.push(character);
                escaped = false;
            }
            '\\' => {
                current.push(character);
                escaped = true;
            }
            '\'' => {
                current.push(character);
                quoted = !quoted;
            }
            ' ' | '\t' | '\n' if !quoted => {
                if !current.is_empty() {
                    pairs.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(character),
        }
    }
    if !current.is_empty() {
        pairs.push(current);
    }
    pairs
}

/// `%2F` and the like, as a URL's query encodes them.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Makes TLS sessions for a store's connections; used only when the `sslmode` asks for TLS.
#[derive(Clone)]
pub(crate) struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    fn new(check: Check, root: Option<&std::path::Path>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match root {
            Some(path) => {
                let certificates = CertificateDer::pem_file_iter(path)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|error| {
                        format!("cannot read sslrootcert `{}`: {error}", path.display())
                    })?;
                let (added, _) = roots.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(format!(
                        "sslrootcert `{}` holds no certificate",
                        path.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|error| format!("cannot use the trusted certificates: {error}"))?;
        let verifier = Verifier {
            check,
            webpki,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| error.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// Checks as much of the server's certificate as the `sslmode` asks; the handshake's signatures
/// are always checked.
#[derive(Debug)]
struct Verifier {
    check: Check,
    webpki: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == Check::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // `verify-ca`: the authority signed it; for which host does not matter.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Authority => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Self::Error> {
        Ok(Connect {
            connector: tokio_rustls::TlsConnector::from(Arc::clone(&self.config)),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

/// A TLS session to one host, about to be made.
pub(crate) struct Connect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = self.connector.connect(self.name, stream).await?;
            Ok(Stream(stream))
        })
    }
}

/// A connection in a TLS session.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM goes without channel binding (`channel_binding=prefer`, the default).
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken(url: &str) -> (String, Vec<(String, String)>) {
        let mut found = Vec::new();
        let rest = take_parameters(url, |key, value| {
            let ours = key.starts_with("ssl");
            if ours {
                found.push((key.to_string(), value));
            }
            ours
        });
        (rest, found)
    }

    #[test]
    fn the_tls_parameters_are_taken_from_a_url_and_from_key_value_pairs() {
        let (rest, found) = taken(
            "postgres://u@db:5432/runs?sslmode=verify-full&application_name=w&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u@db:5432/runs?application_name=w");
        assert_eq!(
            found,
            [
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/tmp/ca.pem".into())
            ]
        );
        let (rest, found) = taken("host=db sslmode=require password='a b' sslrootcert='/c a.pem'");
        assert_eq!(rest, "host=db password='a b'");
        assert_eq!(
            found,
            [
                ("sslmode".into(), "require".into()),
                ("sslrootcert".into(), "/c a.pem".into())
            ]
        );
        assert_eq!(
            taken("postgres://u@db/runs?sslmode=disable").0,
            "postgres://u@db/runs"
        );
    }

    #[test]
    fn an_unknown_sslmode_says_which_are_known() {
        let error = read("postgres://u@db/runs?sslmode=allow").unwrap_err();
        assert_eq!(
            error,
            "sslmode `allow` is not one of disable, prefer, require, verify-ca, verify-full"
        );
    }
}
