//! The scope each route needs from a personal access token (a signed-in session needs none):
//! reading is `*:read`, changing `*:write`, by the resource the path names (the live stream and
//! the overview, which carry notifications too, both reads); jobs (cancel, retry, workflows)
//! `jobs:write`; anything under `/api/v1/admin/` and another user's account `admin`.
//! A path this table does not know needs a session: a new route is closed to tokens until it is
//! given a scope here. What a route alone cannot tell (a task created with a `job`) the service
//! checks from the scopes the assertion carries.

use axum::http::Method;
use shared::scopes::Scope;

/// What a token needs for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any live token of the user (its own profile).
    Any,
    Scope(Scope),
    /// Both (what also carries notifications: the live stream, the overview).
    Both(Scope, Scope),
    /// Only a signed-in session (tokens, password, email, sign-out).
    Session,
}

/// What a token needs for `method` on `path` (under `/api/v1/`).
pub fn need(method: &Method, path: &str) -> Need {
    let read = method == Method::GET || method == Method::HEAD;
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').collect();
    let either = |r: Scope, w: Scope| Need::Scope(if read { r } else { w });
    let tasks = either(Scope::TasksRead, Scope::TasksWrite);
    match segments.as_slice() {
        ["admin", ..] => Need::Scope(Scope::Admin),
        ["users", "me"] if read => Need::Any,
        ["users", "me", ..] => Need::Session,
        ["users", "search" | "by-email"] if read => Need::Scope(Scope::TasksRead),
        // Listing and changing other accounts is an admin's.
        ["users", ..] => Need::Scope(Scope::Admin),
        ["tasks", _, "cancel"] => Need::Scope(Scope::JobsWrite),
        // What outlives a token (a calendar feed's secret address) or names where the owner
        // is reached (the SMS number) is made by the owner signed in.
        ["calendar", "feed"] | ["notifications", "sms-number", ..] => Need::Session,
        ["workflows", ..] if !read => Need::Scope(Scope::JobsWrite),
        ["tasks" | "channels" | "people" | "labels" | "workflows" | "limits" | "workers", ..] => {
            tasks
        }
        // The live stream and the overview only read (the stream's ticket is a POST), and
        // carry notifications as well as tasks.
        ["events", ..] | ["me", "overview"] => {
            Need::Both(Scope::TasksRead, Scope::NotificationsRead)
        }
        ["calendar" | "media", ..] => tasks,
        ["notifications" | "webhooks", ..] => {
            either(Scope::NotificationsRead, Scope::NotificationsWrite)
        }
        _ => Need::Session,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_class_needs_its_scope() {
        let need = |m: Method, p: &str| need(&m, p);
        let scope = Need::Scope;
        assert_eq!(need(Method::GET, "/api/v1/tasks"), scope(Scope::TasksRead));
        assert_eq!(
            need(Method::POST, "/api/v1/tasks/bulk"),
            scope(Scope::TasksWrite)
        );
        assert_eq!(
            need(Method::POST, "/api/v1/tasks/x/cancel"),
            scope(Scope::JobsWrite)
        );
        assert_eq!(
            need(Method::POST, "/api/v1/workflows"),
            scope(Scope::JobsWrite)
        );
        assert_eq!(
            need(Method::GET, "/api/v1/workflows/x"),
            scope(Scope::TasksRead)
        );
        assert_eq!(
            need(Method::GET, "/api/v1/tasks/x/attempts"),
            scope(Scope::TasksRead)
        );
        assert_eq!(
            need(Method::POST, "/api/v1/notifications/x/read"),
            scope(Scope::NotificationsWrite)
        );
        assert_eq!(
            need(Method::GET, "/api/v1/webhooks"),
            scope(Scope::NotificationsRead)
        );
        assert_eq!(
            need(Method::GET, "/api/v1/admin/jobs/dead"),
            scope(Scope::Admin)
        );
        assert_eq!(need(Method::GET, "/api/v1/users"), scope(Scope::Admin));
        assert_eq!(need(Method::GET, "/api/v1/users/me"), Need::Any);
        let both = Need::Both(Scope::TasksRead, Scope::NotificationsRead);
        assert_eq!(need(Method::POST, "/api/v1/events/ticket"), both);
        assert_eq!(need(Method::GET, "/api/v1/me/overview"), both);
        for session in [
            (Method::PATCH, "/api/v1/users/me"),
            (Method::POST, "/api/v1/users/me/password"),
            (Method::POST, "/api/v1/tokens"),
            (Method::GET, "/api/v1/tokens"),
            (Method::DELETE, "/api/v1/tokens/x"),
            (Method::POST, "/api/v1/auth/logout"),
            (Method::GET, "/api/v1/something-new"),
            (Method::POST, "/api/v1/calendar/feed"),
            (Method::POST, "/api/v1/notifications/sms-number/code"),
        ] {
            assert_eq!(need(session.0, session.1), Need::Session, "{}", session.1);
        }
    }
}
