//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `GET /api/openapi.json`. It is snapshot-tested, so any change to
//! the API's shape shows up in review.

use super::{audience, batch, evaluation, health, segments, wire};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Corral",
        description = "Self-hosted audience segments, speaking Bento's Segments API. \
            Every `/api/v1` route takes HTTP Basic auth (publishable key as user name, \
            secret key as password) and the site's `site_uuid` in the query string or JSON body."
    ),
    paths(
        segments::list,
        segments::show,
        segments::create,
        segments::update,
        segments::discard,
        segments::restore,
        audience::find_subscriber,
        audience::create_subscriber,
        audience::list_tags,
        audience::create_tag,
        audience::list_fields,
        audience::create_field,
        audience::site_stats,
        evaluation::segment_stats,
        evaluation::match_subscriber,
        evaluation::members,
        evaluation::preview,
        evaluation::query_schema,
        batch::import_subscribers,
        batch::import_events,
        batch::commands,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        wire::SegmentEnvelope,
        wire::SegmentListEnvelope,
        wire::ErrorBody,
        wire::ValidationErrorBody,
    )),
    modifiers(&BasicAuth),
    tags(
        (name = "segments", description = "Bento's Segments API and Corral's segment management"),
        (name = "audience", description = "Bento's subscribers, tags, fields, events, commands and stats"),
        (name = "evaluation", description = "Segments evaluated live: Bento's segment stats, and who matches, who the members are, and what an unsaved query would select"),
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

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
