//! Authentication, as Bento does it: HTTP Basic with the publishable key as
//! user name and the secret key as password, plus the `site_uuid` the key pair
//! belongs to, read from the query string or, as the Node SDK sends it on
//! writes, from the JSON body.
//!
//! Every failure (no header, a malformed one, an unknown or revoked key, a
//! wrong secret, a missing or foreign `site_uuid`, a `site_uuid` in the body
//! that is not the query string's) is the same `401 {"error":"Unauthorized"}`:
//! the answer never tells which part was wrong, and it takes the same time
//! whether or not the publishable key exists (see [`super::cache`]).
//!
//! Failures are counted per client address: an address that keeps failing
//! is answered 429 before its credentials are looked at, until its failures
//! have aged ([`super::rate_limit::FailedAuthentications`]).
//!
//! The body is read here once, under the size limit (413), and after the
//! credentials and the rate limit, admitted as JSON ([`body::admit`]: 415,
//! 400) before it is handed on to the handler unchanged.

use super::extract::QueryParams;
use super::rate_limit::{self, ClientAddress};
use super::{ApiError, AppState, body};
use crate::credentials::secret_matches;
use crate::storage::SiteHead;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// The longest Basic user name looked up: far above the 32 characters of the
/// publishable keys Corral makes, so that nothing longer is ever a key and
/// guesses cannot make the lookups remember long strings.
const MAX_PUBLISHABLE_KEY_BYTES: usize = 128;

/// The caller, once authenticated. A handler takes it as an argument (it
/// is an extractor): the middleware that authenticated the request put it
/// there, and a route mounted without that middleware is a server fault
/// (500, logged), never an anonymous caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub site_id: i64,
    pub key_id: i64,
    /// The key pair's publishable key: who the site's audit log says made
    /// a change ([`Caller::actor`]). Never the secret.
    pub publishable_key: String,
    /// The site's change-log heads, read after the request arrived: answers
    /// built under them include every change made before the request.
    pub head: SiteHead,
}

impl Caller {
    /// Who this caller's changes are recorded as made by.
    pub fn actor(&self) -> crate::storage::audit::Actor {
        crate::storage::audit::Actor::Key(self.publishable_key.clone())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let super::extract::Extension(caller) =
            super::extract::Extension::<Self>::from_request_parts(parts, state).await?;
        Ok(caller)
    }
}

#[derive(Deserialize)]
struct SiteParam {
    site_uuid: Option<String>,
}

/// Middleware: authenticates the request or answers 401 (429 when its
/// address has failed too often), counts it against the key pair's rate
/// limit (429 when over), then admits its body. Every answer after the
/// count carries the allowance left ([`rate_limit::Allowance`]).
pub async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    // A batch may carry 1,000 items (as the SDKs allow), so it gets more room.
    let limit = if parts.uri.path().starts_with("/batch/") {
        state.settings.max_batch_body_bytes
    } else {
        state.settings.max_body_bytes
    };
    let bytes = read_body(&parts.headers, body, limit).await?;
    let failures = state.failures.as_ref().zip(client_address(&parts));
    if let Some((failures, client)) = failures {
        failures.admit(client)?;
    }
    let caller = match caller(&state, &parts, &bytes).await {
        Err(ApiError::Unauthorized) => {
            if let Some((failures, client)) = failures
                && failures.failed(client)
            {
                tracing::warn!(
                    %client,
                    "refusing a client address for a while: too many failed authentications"
                );
            }
            return Err(ApiError::Unauthorized);
        }
        caller => caller?,
    };
    let allowance = match state.limits.admit(parts.uri.path(), caller.key_id) {
        Ok(allowance) => allowance,
        Err(refused) => return Ok(refused.into_response()),
    };
    // Every answer from here on says what is left of the allowance.
    let response = match body::admit(&parts.headers, &bytes) {
        Ok(()) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(error) => error.into_response(),
    };
    Ok(rate_limit::stamped(allowance, response))
}

/// The address failures are counted against: the connection's peer.
fn client_address(parts: &axum::http::request::Parts) -> Option<ClientAddress> {
    let ConnectInfo(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(peer.ip().into())
}

/// The caller the request's credentials and `site_uuid` name, or
/// [`ApiError::Unauthorized`].
async fn caller(
    state: &AppState,
    parts: &axum::http::request::Parts,
    bytes: &[u8],
) -> Result<Caller, ApiError> {
    let site_uuid = requested_site(&parts.uri, bytes).ok_or(ApiError::Unauthorized)?;
    let (publishable, secret) = basic_credentials(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let credentials = state
        .cache
        .credentials(state.store.as_ref(), state.live.heads(), &publishable)
        .await?;
    match credentials {
        Some((c, head)) => {
            // Every check runs, whichever fails: the time taken does not say
            // which part was wrong.
            let secret_ok = secret_matches(&secret, &c.secret_hash);
            let site_ok: bool = c.site_uuid.as_bytes().ct_eq(site_uuid.as_bytes()).into();
            if !(secret_ok & site_ok & !c.revoked) {
                return Err(ApiError::Unauthorized);
            }
            Ok(Caller {
                site_id: c.site_id,
                key_id: c.key_id,
                publishable_key: publishable,
                head,
            })
        }
        None => {
            // Spend the same work as for a known key.
            let _ = secret_matches(&secret, &[0; 32]);
            let _: bool = site_uuid.as_bytes().ct_eq(site_uuid.as_bytes()).into();
            Err(ApiError::Unauthorized)
        }
    }
}

/// The `site_uuid` a request names: in the query string, in the JSON body
/// (as the Node SDK sends it on writes), or in both when they are the same.
/// None, to be answered 401, when it names none, when the query string cannot
/// be read (`site_uuid` given twice), or when the body's `site_uuid` is not
/// the query string's, or not a string.
fn requested_site(uri: &Uri, bytes: &[u8]) -> Option<String> {
    let in_query = QueryParams::<SiteParam>::from_uri(uri).ok()?.0.site_uuid;
    match (in_query, site_uuid_in_body(bytes)) {
        (Some(query), None) => Some(query),
        (None, Some(Some(body))) => Some(body),
        (Some(query), Some(Some(body))) if query == body => Some(query),
        _ => None,
    }
}

/// Reads the whole body, refusing one over `limit` bytes with a 413: before
/// reading it when its declared length already says so, else as soon as
/// what arrived goes over. What is left of a refused body is read and
/// dropped in the background ([`linger`]), so that the client, still
/// sending, gets to read the 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt as _;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        linger(stream);
        return Err(ApiError::PayloadTooLarge);
    }
    let mut read = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if read.len() + chunk.len() > limit {
            linger(stream);
            return Err(ApiError::PayloadTooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// The answer to a body that could not be read: its chunked framing is
/// broken (hyper reports invalid input or data), or it ended before its
/// declared length (the client went away, or half-closed and waits).
fn unreadable(error: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return ApiError::MalformedBody("it ended before its declared length");
        }
        source = error.source();
    }
    ApiError::MalformedBody("its chunked encoding is broken")
}

/// How long, and how much, of a refused body is read and dropped.
const LINGER_FOR: std::time::Duration = std::time::Duration::from_secs(10);
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Reads and drops the rest of a refused body, for at most [`LINGER_FOR`]
/// and [`LINGER_BYTES`], as nginx's lingering close does: the connection
/// would otherwise close with the client's data unread, the kernel would
/// answer it with a reset, and a client still sending would never read the
/// 413 (it is sent with `Connection: close`). A client that sends more, or
/// for longer, is cut off.
fn linger(mut rest: axum::body::BodyDataStream) {
    use futures_util::StreamExt as _;
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let _ = tokio::time::timeout(LINGER_FOR, async {
            while let Some(Ok(chunk)) = rest.next().await {
                let Some(still) = left.checked_sub(chunk.len()) else {
                    break;
                };
                left = still;
            }
        })
        .await;
    });
}

/// The body's `site_uuid`: `None` when the body has none (or is not a JSON
/// object), `Some(None)` when its value is not a string.
fn site_uuid_in_body(bytes: &[u8]) -> Option<Option<String>> {
    #[derive(Deserialize)]
    struct BodySite {
        #[serde(default, deserialize_with = "present")]
        site_uuid: Option<Box<RawValue>>,
    }
    /// Any value, `null` included, is there: only absence is `None`.
    fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
        Box::<RawValue>::deserialize(d).map(Some)
    }
    // Only an object: serde would also read a struct from an array.
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let raw = serde_json::from_slice::<BodySite>(bytes).ok()?.site_uuid?;
    Some(serde_json::from_str::<String>(raw.get()).ok())
}

/// The `(user, password)` of a Basic `Authorization` header; none when the
/// request carries several, which would leave it unclear whose it is.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    if user.len() > MAX_PUBLISHABLE_KEY_BYTES {
        return None;
    }
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn reads_basic_credentials() {
        let encoded = STANDARD.encode("pub:sec:ret");
        assert_eq!(
            basic_credentials(&with_auth(&format!("Basic {encoded}"))),
            Some(("pub".into(), "sec:ret".into()))
        );
        assert_eq!(
            basic_credentials(&with_auth(&format!("basic {encoded}"))),
            Some(("pub".into(), "sec:ret".into()))
        );
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
        assert_eq!(basic_credentials(&with_auth("Bearer abc")), None);
        assert_eq!(basic_credentials(&with_auth("Basic !!!")), None);
        let no_colon = STANDARD.encode("justuser");
        assert_eq!(
            basic_credentials(&with_auth(&format!("Basic {no_colon}"))),
            None
        );
    }

    #[test]
    fn refuses_user_names_longer_than_any_key() {
        let long = STANDARD.encode(format!("{}:secret", "p".repeat(129)));
        assert_eq!(
            basic_credentials(&with_auth(&format!("Basic {long}"))),
            None
        );
    }

    #[test]
    fn finds_site_uuid_in_a_json_body_only() {
        assert_eq!(
            site_uuid_in_body(br#"{"site_uuid":"abc","segment":{}}"#),
            Some(Some("abc".into()))
        );
        assert_eq!(site_uuid_in_body(b"not json"), None);
        assert_eq!(site_uuid_in_body(br#"{"segment":{}}"#), None);
        assert_eq!(site_uuid_in_body(br#"{"site_uuid":5}"#), Some(None));
        assert_eq!(site_uuid_in_body(br#"{"site_uuid":null}"#), Some(None));
        assert_eq!(site_uuid_in_body(b""), None);
        assert_eq!(site_uuid_in_body(br#"["abc"]"#), None);
    }

    #[test]
    fn the_query_and_the_body_must_name_the_same_site() {
        let uri = |q: &str| -> Uri { format!("/fetch/segments{q}").parse().unwrap() };
        let body = br#"{"site_uuid":"a"}"#;
        assert_eq!(requested_site(&uri("?site_uuid=a"), b""), Some("a".into()));
        assert_eq!(requested_site(&uri(""), body), Some("a".into()));
        assert_eq!(requested_site(&uri("?site_uuid=a"), body), Some("a".into()));
        assert_eq!(requested_site(&uri("?site_uuid=b"), body), None);
        assert_eq!(
            requested_site(&uri("?site_uuid=a"), br#"{"site_uuid":null}"#),
            None
        );
        assert_eq!(requested_site(&uri("?site_uuid=a&site_uuid=a"), b""), None);
        assert_eq!(requested_site(&uri(""), b""), None);
    }
}
