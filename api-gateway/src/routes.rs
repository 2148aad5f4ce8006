//! The routing table: which service owns `/api/v1/<resource>`, and what a route needs (a token,
//! a streamed body, a signed link).

/// Where a path goes and whether it needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub service: &'static str,
    pub public: bool,
    /// Uploads and downloads of files: the body streams through in both directions (never read
    /// whole, so not held to the proxy's body limit; the service enforces its own limits), with
    /// no overall time limit, and `Idempotency-Key` is not replayed.
    pub streamed: bool,
    /// A signed download link: public, its signature checked by the service, and counted per
    /// client address against the API limit (not the tighter limit of the auth routes).
    pub signed: bool,
    /// The answers carry credentials (the auth routes' tokens): `Idempotency-Key` is ignored, so
    /// that no token is ever kept in the idempotency cache.
    pub credentials: bool,
}

impl Route {
    pub const fn new(service: &'static str, public: bool) -> Self {
        Self {
            service,
            public,
            streamed: false,
            signed: false,
            credentials: false,
        }
    }
}

/// The routing table. `None`: no such route.
pub fn route_for(path: &str) -> Option<Route> {
    let mut segments = path.strip_prefix("/api/v1/")?.split('/');
    let resource = segments.next()?;
    let route = match resource {
        "auth" => {
            // Only getting a session needs no token; logout does.
            let action = segments.next().unwrap_or("");
            Route {
                credentials: true,
                ..Route::new(
                    "user-svc",
                    matches!(
                        action,
                        "register" | "login" | "refresh" | "verify-email" | "password-reset"
                    ),
                )
            }
        }
        // Job administration lives with the jobs, file administration with the files; the
        // rest of admin with the users.
        "admin" => match segments.next() {
            Some("jobs" | "pools" | "cron") => Route::new("task-svc", false),
            Some("media") => Route::new("media-svc", false),
            _ => Route::new("user-svc", false),
        },
        "users" => Route::new("user-svc", false),
        // A new token is in the answer: never kept for an `Idempotency-Key` replay.
        "tokens" => Route {
            credentials: true,
            ..Route::new("user-svc", false)
        },
        // A task's attachments are media-svc's (exactly `tasks/{id}/attachments`).
        "tasks" if is_shape(path, &["tasks", "*", "attachments"]) => Route {
            streamed: true,
            ..Route::new("media-svc", false)
        },
        "tasks" | "channels" | "workers" | "workflows" | "limits" | "people" | "labels" => {
            Route::new("task-svc", false)
        }
        // A calendar feed's address is its key (calendar apps send no token): public, and
        // counted per client address like a signed download.
        "calendar" => match segments.next() {
            Some(file) if file.ends_with(".ics") && segments.next().is_none() => Route {
                signed: true,
                ..Route::new("task-svc", true)
            },
            _ => Route::new("task-svc", false),
        },
        // The unsubscribe link in every mail works without logging in (its token is signed).
        "notifications" => Route::new("notify-svc", segments.next() == Some("unsubscribe")),
        "webhooks" => Route::new("notify-svc", false),
        "media" => Route {
            streamed: is_shape(path, &["media", "*", "content"]),
            ..Route::new("media-svc", false)
        },
        _ => return None,
    };
    Some(route)
}

/// Whether `path` (under `/api/v1/`) has exactly these segments, `*` standing for any one.
fn is_shape(path: &str, shape: &[&str]) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    segments.len() == shape.len()
        && segments
            .iter()
            .zip(shape)
            .all(|(segment, want)| (*want == "*" && !segment.is_empty()) || segment == want)
}

/// Whether a path could name something else once an upstream resolves it: a `.` or `..`
/// segment, a backslash (which URL parsers read as a slash), or an encoded dot, slash or
/// backslash (`%2e`, `%2f`, `%5c`). Such paths are refused before routing, so that no route can
/// be walked out of.
pub fn is_ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.split('/').any(|s| s == "." || s == "..")
        || path.contains('\\')
        || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
}

/// The route of a request: [`route_for`] its path, and a download that carries a `signature`
/// in its query (a link from `GET /api/v1/media/{id}/link`) needs no token.
pub fn route_for_request(path: &str, query: Option<&str>) -> Option<Route> {
    let mut route = route_for(path)?;
    let signed = route.service == "media-svc"
        && is_shape(path, &["media", "*", "content"])
        && query.is_some_and(|q| q.split('&').any(|p| p.starts_with("signature=")));
    if signed {
        route.public = true;
        route.signed = true;
    }
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_resources_to_services() {
        let login = route_for("/api/v1/auth/login").unwrap();
        assert_eq!(
            (login.service, login.public, login.credentials),
            ("user-svc", true, true)
        );
        assert_eq!(route_for("/api/v1/tasks/abc").unwrap().service, "task-svc");
        assert_eq!(route_for("/api/v1/workers").unwrap().service, "task-svc");
        assert_eq!(
            route_for("/api/v1/admin/jobs/dead").unwrap().service,
            "task-svc"
        );
        assert_eq!(route_for("/api/v1/admin/keys").unwrap().service, "user-svc");
        assert!(!route_for("/api/v1/tasks").unwrap().public);
        assert_eq!(route_for("/api/v1/people").unwrap().service, "task-svc");
        assert_eq!(route_for("/api/v1/labels/x").unwrap().service, "task-svc");
        assert_eq!(
            route_for("/api/v1/workflows/abc/cancel").unwrap().service,
            "task-svc"
        );
        assert!(
            route_for("/api/v1/notifications/unsubscribe")
                .unwrap()
                .public
        );
        assert!(
            !route_for("/api/v1/notifications/preferences")
                .unwrap()
                .public
        );
        assert_eq!(
            route_for("/api/v1/webhooks/x").unwrap().service,
            "notify-svc"
        );
        let attachments = route_for("/api/v1/tasks/abc/attachments").unwrap();
        assert_eq!(
            (attachments.service, attachments.streamed),
            ("media-svc", true)
        );
        assert!(!route_for("/api/v1/tasks/abc/history").unwrap().streamed);
        assert!(route_for("/api/v1/media/abc/content").unwrap().streamed);
        assert!(!route_for("/api/v1/media/abc").unwrap().streamed);
        assert_eq!(
            route_for("/api/v1/admin/media/sweep").unwrap().service,
            "media-svc"
        );
        let signed = route_for_request("/api/v1/media/abc/content", Some("expires=1&signature=x"));
        assert!(signed.unwrap().public && signed.unwrap().signed);
        assert!(
            !route_for_request("/api/v1/media/abc/content", Some("x=1"))
                .unwrap()
                .public
        );
        assert!(
            !route_for_request("/api/v1/media/abc", Some("signature=x"))
                .unwrap()
                .public
        );
        let feed = route_for("/api/v1/calendar/s3cret.ics").unwrap();
        assert_eq!(
            (feed.service, feed.public, feed.signed),
            ("task-svc", true, true)
        );
        for private in ["/api/v1/calendar/feed", "/api/v1/calendar/x.ics/more"] {
            let route = route_for(private).unwrap();
            assert_eq!(
                (route.service, route.public),
                ("task-svc", false),
                "{private}"
            );
        }
        assert_eq!(route_for("/api/v1/unknown"), None);
        assert_eq!(route_for("/internal"), None);
    }

    #[test]
    fn paths_that_could_walk_out_of_their_route_are_ambiguous() {
        for path in [
            "/api/v1/media/x/content/../../../metrics",
            "/api/v1/media/x/content/%2e%2e/%2E%2E/metrics",
            "/api/v1/tasks/./x",
            "/api/v1/tasks/a%2Fb",
            "/api/v1/tasks/a%5cb",
            "/api/v1/tasks/x\\..\\..\\metrics",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        assert!(!is_ambiguous("/api/v1/tasks/01a2-b/history"));
        assert!(!is_ambiguous("/api/v1/media/x.y/content"));
    }
}
