//! The web dashboard at `/`: a handful of files under `api-gateway/web/`, embedded in the binary
//! at build time (no build step, nothing fetched from a CDN), served with a Content Security
//! Policy that allows this origin alone. It talks to the API like any client, with the
//! signed-in user's token, and to the live stream with a ticket.

use axum::{
    extract::Path,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// Only this origin: scripts, styles, the API and the stream; no frames, no plugins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file the dashboard has, by its path under `/ui/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.css", CSS, include_bytes!("../web/app.css")),
    ("js/app.js", JS, include_bytes!("../web/js/app.js")),
    ("js/api.js", JS, include_bytes!("../web/js/api.js")),
    ("js/ui.js", JS, include_bytes!("../web/js/ui.js")),
    ("js/tasks.js", JS, include_bytes!("../web/js/tasks.js")),
    ("js/people.js", JS, include_bytes!("../web/js/people.js")),
    ("js/admin.js", JS, include_bytes!("../web/js/admin.js")),
    (
        "vendor/htm-preact.js",
        JS,
        include_bytes!("../web/vendor/htm-preact.js"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        JS,
        include_bytes!("../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        CSS,
        include_bytes!("../web/vendor/uPlot.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*path}", get(asset))
}

fn serve(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    protect(headers, CSP);
    // Small files: always revalidated, so an upgrade shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The headers of a page the gateway serves itself: its Content Security Policy, `nosniff`, and
/// no referrer sent onwards.
pub(crate) fn protect(headers: &mut HeaderMap, csp: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, body)) => serve(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_pages_import_is_served() {
        let sources: Vec<&str> = std::iter::once(INDEX)
            .chain(ASSETS.iter().map(|(_, _, body)| *body))
            .map(|b| std::str::from_utf8(b).unwrap_or(""))
            .collect();
        for source in sources {
            for (start, _) in source.match_indices("/ui/") {
                let rest = &source[start + 4..];
                let end = rest.find(['"', '\'']).unwrap_or(rest.len());
                let name = &rest[..end];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "/ui/{name} is not served"
                );
            }
            for (start, _) in source.match_indices("from \"./") {
                let rest = &source[start + 8..];
                let name = &rest[..rest.find('"').unwrap()];
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == format!("js/{name}")),
                    "js/{name} is imported but not served"
                );
            }
        }
    }
}
