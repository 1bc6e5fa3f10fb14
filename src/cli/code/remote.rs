//! Where `corral segments` reads and writes a site's segments: a running
//! server over its API (`--url`, with the site's key pair), or a database
//! directly (`--database`, through the same service as the API). Both
//! answer the same four calls, and both refuse a write whose `If-Match`
//! version is no longer the segment's.

use crate::cli::CliError;
use crate::segment::Listing;
use crate::segment::SegmentId;
use crate::service::segments::{SegmentDraft, SegmentError, Segments};
use crate::storage::actor::Actor;
use crate::storage::{Precondition, Store};
use corral_core::query::RawQuery;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// A kept segment as the site has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The query as saved (compact JSON text).
    pub query: String,
    /// Its version's ETag, `"ID-VERSION"`.
    pub etag: String,
}

/// A definition to save.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub description: Option<String>,
    pub query: String,
}

/// Why a write was not made.
#[derive(Debug)]
pub enum Refused {
    /// The segment changed since the version given.
    Changed,
    /// The site's rules refused it (its messages).
    Invalid(String),
    /// Anything else: the call failed.
    Failed(CliError),
}

impl From<CliError> for Refused {
    fn from(error: CliError) -> Self {
        Self::Failed(error)
    }
}

#[async_trait::async_trait]
pub trait Remote: Send + Sync {
    /// The site's kept segments.
    async fn list(&self) -> Result<Vec<Saved>, CliError>;
    async fn create(&self, definition: &Definition) -> Result<Saved, Refused>;
    /// Changes segment `id`, if it is still at `etag`.
    async fn update(&self, id: &str, etag: &str, definition: &Definition)
    -> Result<Saved, Refused>;
    /// Discards segment `id`, if it is still at `etag`.
    async fn discard(&self, id: &str, etag: &str) -> Result<(), Refused>;
}

/// The version an ETag names, as a precondition.
fn precondition(id: &str, etag: &str) -> Precondition {
    let version = etag
        .trim_matches('"')
        .strip_prefix(&format!("{id}-"))
        .and_then(|v| v.parse().ok());
    // An ETag of another segment matches no version.
    Precondition::Versions(version.into_iter().collect())
}

/// A database, through the segment service.
pub struct Database {
    pub store: Arc<dyn Store>,
    pub site_id: i64,
    pub now: i64,
}

impl Database {
    fn refused(error: SegmentError) -> Refused {
        match error {
            SegmentError::PreconditionFailed => Refused::Changed,
            SegmentError::Invalid(errors) => Refused::Invalid(errors.to_string()),
            SegmentError::NotFound => Refused::Changed,
            other => Refused::Failed(other.into()),
        }
    }

    fn saved(segment: &crate::segment::Segment) -> Saved {
        Saved {
            id: segment.id.to_string(),
            name: segment.name.clone(),
            description: segment.description.clone(),
            query: segment.query.as_str().to_owned(),
            etag: segment.etag(),
        }
    }

    fn draft(definition: &Definition) -> SegmentDraft {
        SegmentDraft {
            name: Some(Ok(definition.name.clone())),
            description: Some(Ok(definition.description.clone())),
            query: Some(RawQuery::parse(&definition.query).map_err(|e| e.to_string())),
            ..SegmentDraft::default()
        }
    }

    fn id(id: &str) -> Result<SegmentId, Refused> {
        corral_core::query::ast::segment_id(id)
            .map(SegmentId)
            .ok_or_else(|| Refused::Invalid(format!("{id:?} is not a segment id")))
    }
}

#[async_trait::async_trait]
impl Remote for Database {
    async fn list(&self) -> Result<Vec<Saved>, CliError> {
        let kept = self
            .store
            .list_segments(self.site_id, Listing::Kept)
            .await?;
        Ok(kept.iter().map(Self::saved).collect())
    }

    async fn create(&self, definition: &Definition) -> Result<Saved, Refused> {
        Segments::new(self.store.as_ref())
            .create(self.site_id, Self::draft(definition), self.now, &Actor::Cli)
            .await
            .map(|s| Self::saved(&s))
            .map_err(Self::refused)
    }

    async fn update(
        &self,
        id: &str,
        etag: &str,
        definition: &Definition,
    ) -> Result<Saved, Refused> {
        Segments::new(self.store.as_ref())
            .update(
                self.site_id,
                Self::id(id)?,
                Self::draft(definition),
                &precondition(id, etag),
                self.now,
                &Actor::Cli,
            )
            .await
            .map(|s| Self::saved(&s))
            .map_err(Self::refused)
    }

    async fn discard(&self, id: &str, etag: &str) -> Result<(), Refused> {
        Segments::new(self.store.as_ref())
            .discard(
                self.site_id,
                Self::id(id)?,
                &precondition(id, etag),
                self.now,
                &Actor::Cli,
            )
            .await
            .map(|_| ())
            .map_err(Self::refused)
    }
}

/// A running server, over its API.
pub struct Server {
    client: reqwest::Client,
    /// `http://HOST:PORT/api/v1`.
    base: String,
    site: String,
    publishable_key: String,
    secret_key: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    attributes: Attributes,
}

#[derive(Deserialize)]
struct Attributes {
    name: String,
    description: Option<String>,
    visitor_event_query: Box<RawValue>,
}

impl Server {
    pub fn new(url: &str, site: &str, publishable_key: String, secret_key: String) -> Self {
        let base = url.trim_end_matches('/');
        let base = if base.ends_with("/api/v1") {
            base.to_owned()
        } else {
            format!("{base}/api/v1")
        };
        // As the webhook client: TLS through rustls with ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            client: reqwest::Client::new(),
            base,
            site: site.to_owned(),
            publishable_key,
            secret_key,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        // A site's uuid is hex: nothing to escape.
        self.client
            .request(
                method,
                format!("{}{path}?site_uuid={}", self.base, self.site),
            )
            .basic_auth(&self.publishable_key, Some(&self.secret_key))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CliError> {
        request
            .send()
            .await
            .map_err(|e| CliError::Usage(format!("cannot reach {}: {e}", self.base)))
    }

    /// A segment's record from an answer, with its ETag.
    async fn saved(response: reqwest::Response) -> Result<Saved, Refused> {
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let item: Envelope<Item> = response
            .json()
            .await
            .map_err(|e| Refused::Failed(CliError::Usage(format!("unexpected answer: {e}"))))?;
        Ok(Saved {
            id: item.data.id,
            name: item.data.attributes.name,
            description: item.data.attributes.description,
            query: item.data.attributes.visitor_event_query.get().to_owned(),
            etag,
        })
    }

    /// A write's answer: the record, or why it was refused.
    async fn written(response: reqwest::Response) -> Result<reqwest::Response, Refused> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            412 | 404 => Refused::Changed,
            422 => Refused::Invalid(api_errors(&body)),
            _ => Refused::Failed(CliError::Usage(format!(
                "the server answered {status}: {body}"
            ))),
        })
    }

    /// The body of a create or update: the query's text as it is (a
    /// round trip through a JSON value would sort its keys and could
    /// rewrite its numbers).
    fn body(definition: &Definition) -> Result<String, Refused> {
        serde_json::from_str::<&RawValue>(&definition.query)
            .map_err(|e| Refused::Invalid(format!("visitor_event_query: {e}")))?;
        let text = |s: &str| serde_json::to_string(s).expect("a string serialises");
        Ok(format!(
            r#"{{"segment":{{"name":{},"description":{},"visitor_event_query":{}}}}}"#,
            text(&definition.name),
            definition
                .description
                .as_deref()
                .map_or("null".into(), text),
            definition.query
        ))
    }
}

/// The messages of an API error body (`{"errors":[{"field","message"}]}`
/// or `{"error"}`), one line.
fn api_errors(body: &str) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Option<Vec<FieldMessage>>,
        error: Option<String>,
    }
    #[derive(Deserialize)]
    struct FieldMessage {
        field: String,
        message: String,
    }
    match serde_json::from_str::<Errors>(body) {
        Ok(Errors {
            errors: Some(errors),
            ..
        }) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Errors {
            error: Some(error), ..
        }) => error,
        _ => body.to_owned(),
    }
}

#[async_trait::async_trait]
impl Remote for Server {
    async fn list(&self) -> Result<Vec<Saved>, CliError> {
        let response = self
            .send(self.request(reqwest::Method::GET, "/fetch/segments"))
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(CliError::Usage(format!(
                "listing the segments: the server answered {status}: {}",
                api_errors(&body)
            )));
        }
        let listed: Envelope<Vec<Item>> = response
            .json()
            .await
            .map_err(|e| CliError::Usage(format!("unexpected answer listing segments: {e}")))?;
        // The list carries no versions: each segment's ETag comes with it.
        let mut saved = Vec::with_capacity(listed.data.len());
        for item in listed.data {
            let path = format!("/fetch/segments/{}", item.id);
            let response = self.send(self.request(reqwest::Method::GET, &path)).await?;
            match Self::written(response).await {
                Ok(response) => saved.push(Self::saved(response).await.map_err(|e| match e {
                    Refused::Failed(e) => e,
                    _ => CliError::Usage(format!("reading segment {}", item.id)),
                })?),
                // Discarded between the list and its read.
                Err(Refused::Changed) => {}
                Err(Refused::Failed(e)) => return Err(e),
                Err(Refused::Invalid(m)) => return Err(CliError::Usage(m)),
            }
        }
        Ok(saved)
    }

    async fn create(&self, definition: &Definition) -> Result<Saved, Refused> {
        let request = self
            .request(reqwest::Method::POST, "/fetch/segments")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(Self::body(definition)?);
        let response = Self::written(self.send(request).await?).await?;
        Self::saved(response).await
    }

    async fn update(
        &self,
        id: &str,
        etag: &str,
        definition: &Definition,
    ) -> Result<Saved, Refused> {
        let request = self
            .request(reqwest::Method::PATCH, &format!("/fetch/segments/{id}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::IF_MATCH, etag)
            .body(Self::body(definition)?);
        let response = Self::written(self.send(request).await?).await?;
        Self::saved(response).await
    }

    async fn discard(&self, id: &str, etag: &str) -> Result<(), Refused> {
        let request = self
            .request(reqwest::Method::DELETE, &format!("/fetch/segments/{id}"))
            .header(reqwest::header::IF_MATCH, etag);
        Self::written(self.send(request).await?).await?;
        Ok(())
    }
}
