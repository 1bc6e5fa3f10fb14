//! Conditional requests: entity tags on GET answers, `If-None-Match` for cheap
//! re-reads (a 304 only for a client that asked for one), and `If-Match` on
//! writes so that two editors cannot overwrite each other silently.
//!
//! A segment's tag is `"<id>-<version>"`, where the version moves on every
//! accepted change; a list's tag is a digest of the exact bytes sent.

use crate::segment::SegmentId;
use crate::storage::Precondition;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

/// A strong tag for a body: the first 128 bits of its SHA-256.
pub fn digest_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The tags listed in every value of `name`.
fn listed_tags<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether `If-None-Match` names the current tag (weak comparison, as RFC 9110
/// prescribes for this header).
pub fn not_modified_since(headers: &HeaderMap, etag: &str) -> bool {
    listed_tags(headers, &header::IF_NONE_MATCH)
        .into_iter()
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The precondition `If-Match` puts on a write to segment `id`. Strong
/// comparison: a weak tag, or a tag of another segment, matches nothing.
pub fn if_match(headers: &HeaderMap, id: SegmentId) -> Precondition {
    let tags = listed_tags(headers, &header::IF_MATCH);
    if tags.is_empty() || tags.contains(&"*") {
        return Precondition::None;
    }
    let prefix = format!("\"{id}-");
    let versions = tags
        .iter()
        .filter_map(|tag| tag.strip_prefix(prefix.as_str())?.strip_suffix('"'))
        .filter_map(|v| v.parse().ok())
        .collect();
    Precondition::Versions(versions)
}

/// A response with the tag set.
pub fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `304 Not Modified`, carrying the tag.
pub fn not_modified(etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    with_etag(response, etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let h = headers(header::IF_NONE_MATCH, "\"a\", W/\"b\"");
        assert!(not_modified_since(&h, "\"b\""));
        assert!(not_modified_since(&h, "\"a\""));
        assert!(!not_modified_since(&h, "\"c\""));
        assert!(!not_modified_since(&HeaderMap::new(), "\"a\""));
        assert!(not_modified_since(
            &headers(header::IF_NONE_MATCH, "*"),
            "\"x\""
        ));
    }

    #[test]
    fn if_match_reads_versions_of_this_segment_only() {
        let id = SegmentId(7);
        assert_eq!(if_match(&HeaderMap::new(), id), Precondition::None);
        assert_eq!(
            if_match(&headers(header::IF_MATCH, "*"), id),
            Precondition::None
        );
        assert_eq!(
            if_match(
                &headers(header::IF_MATCH, "\"7-3\", \"8-4\", W/\"7-5\""),
                id
            ),
            Precondition::Versions(vec![3])
        );
        assert_eq!(
            if_match(&headers(header::IF_MATCH, "\"garbage\""), id),
            Precondition::Versions(vec![])
        );
    }

    #[test]
    fn digest_tags_differ_with_content() {
        assert_ne!(digest_etag(b"a"), digest_etag(b"b"));
        assert_eq!(digest_etag(b"a"), digest_etag(b"a"));
        assert_eq!(digest_etag(b"a").len(), 34);
    }
}
