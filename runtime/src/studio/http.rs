//! The studio on the wire: the loop that accepts connections and polls them with the runs they
//! start, and each request's checks (its host, its right to change, its size) before the
//! [`api`](super::api) answers it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Host;
use super::api::{Method, Reply, Request};
use crate::checkpoint::CheckpointStore;
use crate::durable::ThreadRun;

/// The page, with its script and style: every asset is in the binary.
const PAGE: &str = include_str!("page.html");

/// A response's body: whole, or a stream of events.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The largest request body read (an initial state, an update).
const MAX_BODY: usize = 4 << 20;

impl<'s, St: CheckpointStore + 'static> Host<'s, '_, St> {
    /// Accepts connections and serves them, and polls the runs they start, until `shutdown`.
    pub(super) async fn serve(
        &self,
        listener: &TcpListener,
        mut started: mpsc::UnboundedReceiver<ThreadRun<'s>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = pin!(shutdown);
        let mut connections = FuturesUnordered::new();
        let mut runs = FuturesUnordered::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    // A failed accept (the process is out of file descriptors, say) ends no
                    // connection and is tried again at the next one.
                    if let Ok((stream, _)) = accepted {
                        connections.push(self.connection(stream));
                    }
                }
                Some(run) = started.recv() => runs.push(run),
                Some(()) = connections.next(), if !connections.is_empty() => {}
                Some((thread, result)) = runs.next(), if !runs.is_empty() => {
                    self.ended(&thread, result);
                }
            }
        }
    }

    /// Serves one connection's requests, one after another.
    async fn connection(&self, stream: TcpStream) {
        let service =
            service_fn(|request| async move { Ok::<_, Infallible>(self.respond(request).await) });
        // A connection that breaks (the browser went away) ends itself only.
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// Checks and answers one request.
    async fn respond(&self, request: hyper::Request<Incoming>) -> hyper::Response<Body> {
        let reply = match self.read(request).await {
            Ok(request) if request.segments.first().map(String::as_str) == Some("api") => {
                self.api(request).await
            }
            Ok(request) if request.method == Method::Get && is_page(&request.segments) => {
                Reply::page(PAGE)
            }
            Ok(request) => Reply::error(
                404,
                format!(
                    "no such page: `/{}`; the studio is at `/`, its API under `/api`",
                    request.segments.join("/")
                ),
            ),
            Err(reply) => reply,
        };
        response(reply)
    }

    /// Reads a request: its host checked, its path and query split, its body read (up to
    /// [`MAX_BODY`]), and whether it may change anything.
    ///
    /// On a loopback address, a request must be addressed to the studio (its `Host`), and a
    /// change needs the token or the page's own origin. Beyond the loopback, where any name may
    /// reach it, every request needs the token: `Authorization: Bearer <token>`, or `token=` in
    /// the query (the page's address, and its event streams, which cannot send a header).
    async fn read(&self, request: hyper::Request<Incoming>) -> Result<Request, Reply> {
        let (parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or_default();
        if !self.hosts.is_empty() && !self.hosts.iter().any(|own| own.eq_ignore_ascii_case(host)) {
            return Err(Reply::error(
                421,
                format!(
                    "the studio answers only requests addressed to it (`Host: {}`), not to \
                     `{host}`",
                    self.hosts[0]
                ),
            ));
        }
        let method = match parts.method {
            hyper::Method::GET => Method::Get,
            hyper::Method::POST => Method::Post,
            _ => Method::Other,
        };
        let mut segments = Vec::new();
        for segment in parts.uri.path().split('/').filter(|part| !part.is_empty()) {
            segments.push(decode(segment).ok_or_else(|| {
                Reply::error(
                    400,
                    format!("the path segment `{segment}` is not valid UTF-8"),
                )
            })?);
        }
        let query = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                Some((decode(key)?, decode(value)?))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Reply::error(400, "the query is not valid UTF-8"))?;
        let token = self.token_given(&parts.headers, &query);
        if self.hosts.is_empty() && token != Some(true) {
            return Err(Reply::error(
                401,
                "this studio listens beyond the loopback: every request needs its token, as \
                 `Authorization: Bearer <token>` or `?token=<token>` on the page's address",
            ));
        }
        let may_change = token.unwrap_or_else(|| self.sent_by_the_page(&parts.headers, host));
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    Reply::error(
                        413,
                        format!("the body is larger than {} MiB", MAX_BODY >> 20),
                    )
                } else {
                    Reply::error(400, format!("the body could not be read: {error}"))
                }
            })?
            .to_bytes()
            .to_vec();
        Ok(Request {
            method,
            segments,
            query,
            body,
            may_change,
        })
    }

    /// Whether the request carries the token (`None` when it carries none): in its
    /// `Authorization` header, or as `token` in its query.
    fn token_given(&self, headers: &HeaderMap, query: &[(String, String)]) -> Option<bool> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let given = bearer.or_else(|| {
            query
                .iter()
                .find(|(key, _)| key == "token")
                .map(|(_, value)| value.as_str())
        })?;
        Some(same_text(given, self.token))
    }

    /// Whether the request comes from the studio's own page: its `Origin` is the studio's
    /// (on a loopback address, one of its names; beyond, the `Host` it was sent to).
    fn sent_by_the_page(&self, headers: &HeaderMap, host: &str) -> bool {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|value| value.to_str().ok())
            .and_then(|origin| origin.strip_prefix("http://"));
        origin.is_some_and(|origin| {
            if self.hosts.is_empty() {
                origin.eq_ignore_ascii_case(host)
            } else {
                self.hosts
                    .iter()
                    .any(|own| own.eq_ignore_ascii_case(origin))
            }
        })
    }
}

/// `/` and `/index.html`: the page.
fn is_page(segments: &[String]) -> bool {
    match segments {
        [] => true,
        [page] => page == "index.html",
        _ => false,
    }
}

fn response(reply: Reply) -> hyper::Response<Body> {
    let body = match reply.events {
        None => Full::new(Bytes::from(reply.body)).boxed_unsync(),
        Some(events) => StreamBody::new(
            events.map(|event| Ok::<_, Infallible>(Frame::data(Bytes::from(event)))),
        )
        .boxed_unsync(),
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page runs its own script and style only, and no other site may frame it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' \
             'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    if let Some(allow) = reply.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// Decodes `%XX` escapes and `+` (a space, in a query).
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = text.get(index + 1..index + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 3;
            }
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// Compares two texts in time that depends on their lengths only.
fn same_text(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::{decode, same_text};

    #[test]
    fn decodes_escapes_and_refuses_broken_ones() {
        assert_eq!(decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode("%E2%9C%93").as_deref(), Some("\u{2713}"));
        assert_eq!(decode("%2"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn compares_tokens_whole() {
        assert!(same_text("abc", "abc"));
        assert!(!same_text("abd", "abc"));
        assert!(!same_text("ab", "abc"));
    }
}
