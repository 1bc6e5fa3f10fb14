//! The web console: a single-page application for a site's segments and
//! subscribers, served by `corral serve` itself at `/` with its assets under
//! `/console/`. The files (`src/http/console/`: HTML, CSS and plain ES modules,
//! no build step) are embedded in the binary, so the console needs nothing
//! installed and works offline. The modules carry JSDoc types, which
//! TypeScript's checker reads in the browser tests (`tests/console/`). It signs
//! in with a site's keys and calls only the public API under `/api/v1`, as any
//! client would; these routes sit outside that API, so neither its
//! authentication nor its rate limit applies to them. Every answer carries a
//! Content-Security-Policy that allows only the console's own files and
//! connections to this origin (no inline script or style), and refuses framing,
//! sniffing and referrers.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

/// `(name, JS, contents)` of one of the console's ES modules.
macro_rules! module {
    ($name:literal) => {
        ($name, JS, include_str!(concat!("console/", $name)))
    };
}

/// `(path under /console/, content type, contents)`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("style.css", CSS, include_str!("console/style.css")),
    ("favicon.svg", SVG, include_str!("console/favicon.svg")),
    module!("app.js"),
    module!("api.js"),
    module!("dom.js"),
    module!("signin.js"),
    module!("segments.js"),
    module!("editor.js"),
    module!("builder.js"),
    module!("builder-controls.js"),
    module!("builder-operators.js"),
    module!("builder-groups.js"),
    module!("builder-email.js"),
    module!("builder-subscriber.js"),
    module!("builder-tag.js"),
    module!("builder-field.js"),
    module!("builder-event.js"),
    module!("builder-segment.js"),
    module!("builder-sample.js"),
    module!("segment.js"),
    module!("segment-history.js"),
    module!("segment-size.js"),
    module!("segment-changes.js"),
    module!("segment-manual.js"),
    module!("subscriber-history.js"),
    module!("explain.js"),
    module!("words.js"),
    module!("money.js"),
    module!("suggest.js"),
    module!("subscriber.js"),
    module!("subscribers.js"),
    module!("subscription.js"),
    module!("compare.js"),
];

const INDEX: &str = include_str!("console/index.html");
const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Only this origin's scripts, styles, images and connections; no inline
/// code, no plugins, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The console's routes: `/` and `/console/{file}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset(HTML, INDEX) }))
        .route("/console/{file}", get(file))
}

async fn file(uri: axum::http::Uri) -> Response {
    let name = uri.path().strip_prefix("/console/").unwrap_or_default();
    match ASSETS.iter().find(|(path, _, _)| *path == name) {
        Some((_, content_type, contents)) => asset(content_type, contents),
        None => ApiError::RouteNotFound.into_response(),
    }
}

/// An embedded file with the console's headers.
fn asset(content_type: &'static str, contents: &'static str) -> Response {
    let mut response = (StatusCode::OK, contents).into_response();
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Small files, embedded in the binary: revalidate rather than keep
        // an old console after an upgrade.
        (header::CACHE_CONTROL, "no-cache"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_console_imports_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|(path, _, _)| *path).collect();
        let sources = ASSETS
            .iter()
            .map(|(_, _, contents)| *contents)
            .chain([INDEX]);
        for source in sources {
            for part in source.split(['"', '\'']) {
                if let Some(name) = part.strip_prefix("./").or(part.strip_prefix("/console/"))
                    && (name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".svg"))
                {
                    assert!(
                        served.contains(&name),
                        "{name} is referenced but not served"
                    );
                }
            }
        }
    }

    #[test]
    fn no_inline_script_or_style() {
        assert!(!INDEX.contains("<style"));
        assert!(!INDEX.contains("style="));
        assert!(!INDEX.contains("<script>"));
        for (_, _, contents) in ASSETS {
            assert!(
                !contents.contains("innerHTML"),
                "build elements, not markup"
            );
        }
    }
}
