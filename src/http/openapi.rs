//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `GET /api/openapi.json`. It is snapshot-tested, so any change to
//! the API's shape shows up in review.
//!
//! What every `/api/v1` route shares, because middleware does it before any
//! handler ([`super::auth`]), is added to each operation in one place
//! ([`Edge`]) rather than in every annotation: the `site_uuid` parameter, the
//! 401 and 429 answers, and, where the route takes a body, 400 (not JSON, or
//! a key named twice), 413 and 415; where it reads query parameters of its
//! own, 400 for a query string that cannot be read; and the `RateLimit-*`
//! headers on every answer given once the key pair is known
//! ([`super::rate_limit`]: all but 401 and 413), with `Retry-After` on the
//! 429.

use super::{
    audience, audit, batch, evaluation, export, health, history, manual, overlap, segments, site,
    subscribers, webhooks,
};
use crate::wire;
use axum::Json;
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Corral",
        description = "Self-hosted audience segments, speaking Bento's Segments API. \
            Every `/api/v1` route takes HTTP Basic auth (publishable key as user name, \
            secret key as password) and the site's `site_uuid` in the query string or JSON body \
            (the same in both when both are given). A request body must be declared JSON \
            (`application/json` or a `+json` type, UTF-8) and name no key twice in any object. \
            Errors are JSON: `{\"error\":\"…\"}` or `{\"errors\":[{\"field\",\"message\"}]}`."
    ),
    paths(
        segments::list,
        segments::show,
        segments::create,
        segments::update,
        segments::discard,
        segments::restore,
        segments::versions,
        segments::restore_version,
        audit::list,
        history::series,
        history::changes,
        subscribers::find,
        subscribers::create,
        subscribers::segments,
        subscribers::events,
        subscribers::history,
        subscribers::search,
        site::show,
        audience::list_tags,
        audience::create_tag,
        audience::delete_tag,
        audience::list_fields,
        audience::create_field,
        audience::site_stats,
        evaluation::segment_stats,
        evaluation::match_subscriber,
        evaluation::members,
        export::members_csv,
        evaluation::preview,
        overlap::overlap,
        manual::add_includes,
        manual::remove_includes,
        manual::list_includes,
        manual::add_excludes,
        manual::remove_excludes,
        manual::list_excludes,
        evaluation::query_schema,
        batch::import_subscribers,
        batch::import_events,
        batch::commands,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::update,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::retry,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        wire::strings::SiteUuidText,
        wire::strings::SegmentIdText,
        wire::strings::EmailText,
        wire::strings::VisitorEventQuery,
        wire::segments::SegmentState,
        wire::segments::SegmentEnvelope,
        wire::segments::SegmentListEnvelope,
        wire::ErrorBody,
        wire::ValidationErrorBody,
        health::NotReadyBody,
        health::PreloadedSite,
    )),
    modifiers(&BasicAuth, &Edge),
    tags(
        (name = "segments", description = "Bento's Segments API and Corral's segment management"),
        (name = "audience", description = "Bento's subscribers, tags, fields, events, commands and stats"),
        (name = "evaluation", description = "Segments evaluated live: Bento's segment stats, and who matches, who the members are, what an unsaved query would select, and how segments overlap"),
        (name = "webhooks", description = "Membership-change webhooks: signed notifications when subscribers join or leave watched segments"),
        (name = "history", description = "Membership history from the journal: a segment's size over time, its members at an instant (`members?at=`) and its changes feed"),
        (name = "audit", description = "The site's management actions, with who made them and when"),
        (name = "operations", description = "Health checks"),
    )
)]
pub struct ApiDoc;

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// What the authentication middleware adds to every `/api/v1` operation.
struct Edge;

/// The headers of [`Edge`]'s answers, as `components/headers` names them.
const RATE_LIMIT_HEADERS: [(&str, &str, &str); 3] = [
    (
        "RateLimit-Limit",
        "RateLimitLimit",
        "The key pair's allowance on the route's family: `/fetch/*` and `/batch/*` together \
         (100 a minute by default), `/stats/*` (60 an hour). Absent, as are the other two, \
         when the family is not limited, and on a 429 for the client address's failed \
         authentications.",
    ),
    (
        "RateLimit-Remaining",
        "RateLimitRemaining",
        "Requests the key pair may make now without a 429.",
    ),
    (
        "RateLimit-Reset",
        "RateLimitReset",
        "Seconds until the allowance is whole again; on a 429, until the next request is let \
         in (the same as `Retry-After`).",
    ),
];

/// Adds a header, an integer of seconds or requests, to `components/headers`.
fn add_header(openapi: &mut utoipa::openapi::OpenApi, name: &str, description: &str) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.headers.insert(
        name.to_owned(),
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some(description))
            .build()
            .into(),
    );
}

impl Modify for Edge {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (_, component, description) in RATE_LIMIT_HEADERS {
            add_header(openapi, component, description);
        }
        add_header(
            openapi,
            "RetryAfter",
            "Seconds to wait before trying again.",
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let batch = path.starts_with("/api/v1/batch/");
            let operations = [
                (&mut item.get, true),
                (&mut item.post, false),
                (&mut item.patch, false),
                (&mut item.delete, false),
            ];
            for (operation, is_get) in operations {
                if let Some(operation) = operation.as_mut() {
                    add_edge(operation, is_get, batch);
                }
            }
        }
    }
}

fn add_edge(operation: &mut Operation, is_get: bool, batch: bool) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let own_query = parameters
        .iter()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    // GET requests carry no body, so the query string is the only place.
    let (required, description) = if is_get {
        (Required::True, "The site the key pair belongs to.")
    } else {
        (
            Required::False,
            "The site the key pair belongs to, here or as `site_uuid` in the JSON body \
             (the same in both when both are given).",
        )
    };
    parameters.insert(
        0,
        ParameterBuilder::new()
            .name("site_uuid")
            .parameter_in(ParameterIn::Query)
            .required(required)
            .description(Some(description))
            .schema(Some(Ref::from_schema_name("SiteUuidText")))
            .build()
            .into(),
    );
    let mut answers = vec![
        ("401", "Bad credentials or site"),
        (
            "429",
            "Rate limited: the key pair's allowance is used up, or the client address failed \
             to authenticate too often (`Retry-After` in seconds)",
        ),
    ];
    if operation.request_body.is_some() {
        answers.push(("400", "Malformed JSON, or a key named twice in an object"));
        answers.push((
            "413",
            if batch {
                "Body over 16 MiB"
            } else {
                "Body over 1 MiB"
            },
        ));
        answers.push(("415", "A body not declared `application/json`"));
    } else if own_query {
        answers.push((
            "400",
            "A query string that cannot be read (a parameter twice)",
        ));
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
    // Every answer once the key pair is known: not a 401 (it is not) or a
    // 413 (its body is refused before).
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status == "401" || status == "413" {
            continue;
        }
        for (name, component, _) in RATE_LIMIT_HEADERS {
            response.headers.insert(
                name.to_owned(),
                RefOr::Ref(Ref::new(format!("#/components/headers/{component}"))),
            );
        }
        if status == "429" {
            response.headers.insert(
                "Retry-After".to_owned(),
                RefOr::Ref(Ref::new("#/components/headers/RetryAfter")),
            );
        }
    }
}

/// The document, as served: the generated one, with the query language's
/// JSON Schema (`docs/query-language.schema.json`, also served on its own)
/// in place of the [`wire::strings::VisitorEventQuery`] placeholder.
pub fn document() -> Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).expect("the document serializes");
    embed_query_language(&mut doc);
    optional_bodies(&mut doc);
    doc
}

/// utoipa writes an optional request body (`Option<T>`) as a required body
/// that may be `null`; here it means a body that may be left out.
fn optional_bodies(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths.values_mut().filter_map(Value::as_object_mut) {
        for body in operation
            .values_mut()
            .filter_map(|op| op.get_mut("requestBody"))
        {
            if body.get("required") == Some(&Value::Bool(true)) {
                continue;
            }
            let Some(schema) = body.pointer_mut("/content/application~1json/schema") else {
                continue;
            };
            let kept = match schema.get("oneOf").and_then(Value::as_array) {
                Some(choices) if choices.len() == 2 => choices
                    .iter()
                    .find(|choice| choice.get("type") != Some(&Value::from("null")))
                    .cloned(),
                _ => None,
            };
            if let Some(kept) = kept {
                *schema = kept;
            }
        }
    }
}

pub async fn serve() -> Json<Value> {
    Json(document())
}

/// Puts the query language's schema under `components/schemas`: its root as
/// `VisitorEventQuery`, each of its `$defs` as `Query<Name>`, with every
/// `$ref` rewritten to match.
fn embed_query_language(doc: &mut Value) {
    let text = include_str!("../../docs/query-language.schema.json");
    let mut grammar: Value = serde_json::from_str(text).expect("the query schema is JSON");
    rewrite_refs(&mut grammar);
    let Some(root) = grammar.as_object_mut() else {
        return;
    };
    let definitions = root.remove("$defs");
    root.remove("$schema");
    root.remove("$id");
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(Value::Object(definitions)) = definitions {
        for (name, schema) in definitions {
            schemas.insert(query_schema_name(&name), schema);
        }
    }
    schemas.insert("VisitorEventQuery".to_owned(), grammar);
}

/// `condition` → `QueryCondition`.
fn query_schema_name(definition: &str) -> String {
    let mut chars = definition.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string());
    format!("Query{}{}", first.unwrap_or_default(), chars.as_str())
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if key == "$ref"
                    && let Value::String(target) = inner
                    && let Some(rest) = target.strip_prefix("#/$defs/")
                {
                    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    let separator = if tail.is_empty() { "" } else { "/" };
                    *target = format!(
                        "#/components/schemas/{}{separator}{tail}",
                        query_schema_name(name)
                    );
                } else {
                    rewrite_refs(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_language_is_embedded_with_every_reference_resolvable() {
        let doc = document();
        let text = doc.to_string();
        assert!(!text.contains("#/$defs/"));
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(
            refs.iter()
                .any(|r| r.starts_with("#/components/schemas/Query"))
        );
        for target in refs {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(
                doc.pointer(pointer).is_some(),
                "{target} resolves to nothing"
            );
        }
        assert_eq!(
            doc.pointer("/components/schemas/VisitorEventQuery/title"),
            Some(&Value::from("Corral visitor_event_query"))
        );
    }

    fn collect_refs(value: &Value, refs: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    match inner {
                        Value::String(target) if key == "$ref" => refs.push(target.clone()),
                        _ => collect_refs(inner, refs),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }
}
