//! The web dashboard at `/`: a handful of files under `api-gateway/web/`, embedded in the binary
//! at build time (no build step, nothing fetched from a CDN), served with a Content Security
//! Policy that allows this origin alone. It talks to the API like any client, with the
//! signed-in user's token, and to the live stream with a ticket. Each file carries an `ETag`
//! (a hash of its bytes): a browser revalidates it on every load (`no-cache`, so an upgrade
//! shows at once) and gets `304 Not Modified`, no body, while it has not changed.

use std::sync::LazyLock;

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
const SVG: &str = "image/svg+xml";

/// Every file the dashboard has, by its path under `/ui/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.css", CSS, include_bytes!("../web/app.css")),
    // First after the stylesheet: `/favicon.ico` serves it too ([`FAVICON`]).
    ("favicon.svg", SVG, include_bytes!("../web/favicon.svg")),
    ("js/app.js", JS, include_bytes!("../web/js/app.js")),
    ("js/api.js", JS, include_bytes!("../web/js/api.js")),
    ("js/ui.js", JS, include_bytes!("../web/js/ui.js")),
    ("js/tasks.js", JS, include_bytes!("../web/js/tasks.js")),
    ("js/task.js", JS, include_bytes!("../web/js/task.js")),
    ("js/links.js", JS, include_bytes!("../web/js/links.js")),
    ("js/repeat.js", JS, include_bytes!("../web/js/repeat.js")),
    (
        "js/mentions.js",
        JS,
        include_bytes!("../web/js/mentions.js"),
    ),
    ("js/files.js", JS, include_bytes!("../web/js/files.js")),
    ("js/people.js", JS, include_bytes!("../web/js/people.js")),
    ("js/persons.js", JS, include_bytes!("../web/js/persons.js")),
    ("js/history.js", JS, include_bytes!("../web/js/history.js")),
    (
        "js/comments.js",
        JS,
        include_bytes!("../web/js/comments.js"),
    ),
    ("js/board.js", JS, include_bytes!("../web/js/board.js")),
    ("js/labels.js", JS, include_bytes!("../web/js/labels.js")),
    (
        "js/calendar.js",
        JS,
        include_bytes!("../web/js/calendar.js"),
    ),
    (
        "js/webhooks.js",
        JS,
        include_bytes!("../web/js/webhooks.js"),
    ),
    ("js/tokens.js", JS, include_bytes!("../web/js/tokens.js")),
    ("js/admin.js", JS, include_bytes!("../web/js/admin.js")),
    ("js/verify.js", JS, include_bytes!("../web/js/verify.js")),
    ("js/account.js", JS, include_bytes!("../web/js/account.js")),
    ("js/limits.js", JS, include_bytes!("../web/js/limits.js")),
    ("js/cron.js", JS, include_bytes!("../web/js/cron.js")),
    ("js/jobs.js", JS, include_bytes!("../web/js/jobs.js")),
    ("js/dead.js", JS, include_bytes!("../web/js/dead.js")),
    ("js/select.js", JS, include_bytes!("../web/js/select.js")),
    (
        "js/workflows.js",
        JS,
        include_bytes!("../web/js/workflows.js"),
    ),
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

/// The icon's place in [`ASSETS`], which `/favicon.ico` serves for the clients that ask there
/// without reading the page's `<link rel="icon">` (Swagger UI's page, bookmarks, feed readers).
const FAVICON: usize = 1;

pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        // The page a verification link opens (the mail's link: `/verify-email?token=…`).
        .route("/verify-email", get(index))
        // The page a password reset link opens (`/reset-password?token=…`).
        .route("/reset-password", get(index))
        .route("/ui/{*path}", get(asset))
        .route("/favicon.ico", get(favicon))
}

/// The strong `ETag` of a file: the first 16 bytes of its SHA-256, in hex and quotes.
fn etag_of(body: &[u8]) -> HeaderValue {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a header value")
}

/// Each file's `ETag`, computed once: the index page's first, then the assets' in their order.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    std::iter::once(INDEX)
        .chain(ASSETS.iter().map(|(_, _, body)| *body))
        .map(etag_of)
        .collect()
});

/// Whether `If-None-Match` names `etag` (or is `*`): the browser's copy is current.
fn fresh(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(wanted) = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    shared::http::etag_listed(wanted, etag.to_str().unwrap_or_default())
}

fn serve(
    request: &HeaderMap,
    content_type: &'static str,
    body: &'static [u8],
    etag: &HeaderValue,
) -> Response {
    let mut response = match fresh(request, etag) {
        true => StatusCode::NOT_MODIFIED.into_response(),
        false => body.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ETAG, etag.clone());
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

async fn index(request: HeaderMap) -> Response {
    serve(&request, "text/html; charset=utf-8", INDEX, &ETAGS[0])
}

async fn favicon(request: HeaderMap) -> Response {
    let (_, content_type, body) = ASSETS[FAVICON];
    serve(&request, content_type, body, &ETAGS[FAVICON + 1])
}

async fn asset(Path(path): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().position(|(name, _, _)| *name == path) {
        Some(i) => {
            let (_, content_type, body) = ASSETS[i];
            serve(&request, content_type, body, &ETAGS[i + 1])
        }
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

    #[tokio::test]
    async fn a_file_is_sent_again_only_when_it_changed() {
        use tower::ServiceExt;
        let get = |path: &str, etag: Option<&str>| {
            let mut request = axum::http::Request::get(path);
            if let Some(etag) = etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            router().oneshot(request.body(axum::body::Body::empty()).unwrap())
        };
        for path in ["/", "/ui/js/api.js", "/ui/app.css", "/favicon.ico"] {
            let first = get(path, None).await.unwrap();
            assert_eq!(first.status(), StatusCode::OK, "{path}");
            let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
            let again = get(path, Some(&etag)).await.unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(again.headers()[header::ETAG].to_str().unwrap(), etag);
            let body = axum::body::to_bytes(again.into_body(), 1 << 20)
                .await
                .unwrap();
            assert!(body.is_empty(), "{path}: a 304 has no body");
            let other = get(path, Some("\"an-older-version\"")).await.unwrap();
            assert_eq!(other.status(), StatusCode::OK, "{path}");
        }
        let icon = get("/favicon.ico", None).await.unwrap();
        assert_eq!(icon.headers()[header::CONTENT_TYPE], SVG);
        assert_eq!(ASSETS[FAVICON].0, "favicon.svg");
        let etags: std::collections::HashSet<_> = ETAGS.iter().collect();
        assert_eq!(etags.len(), ETAGS.len(), "every file has its own ETag");
    }
}
