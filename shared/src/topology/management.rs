//! RabbitMQ's management HTTP API (the `rabbitmq_management` plugin), signed in as the user of
//! `amqp.url`: what makes the workers' own RabbitMQ user ([`ensure_worker_user`], run by
//! `taskmesh worker-amqp-user` and by every test's environment), and the tests' clean-up.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::config::AmqpConfig;

/// Why a call to the management API failed. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// `amqp.url` cannot be read as a URL.
    #[error("amqp.url (TASKMESH_AMQP__URL) is not a URL")]
    Url,
    /// What was asked cannot be done, whatever the server says.
    #[error("{0}")]
    Invalid(String),
    /// No answer: the API is not up (yet), or `amqp.management_url` points elsewhere.
    #[error(
        "the RabbitMQ management API at {url} does not answer: {error} (is the \
         rabbitmq_management plugin on, and amqp.management_url (TASKMESH_AMQP__MANAGEMENT_URL) \
         where it listens?)"
    )]
    Unreachable { url: String, error: String },
    /// An answer other than 2xx.
    #[error(
        "the RabbitMQ management API at {url} answered {method} /api/{path} with \
         {status}{reason}{hint}"
    )]
    Refused {
        url: String,
        method: Method,
        path: String,
        status: StatusCode,
        /// `: <the reason the API gave>`, or nothing.
        reason: String,
        hint: &'static str,
    },
}

impl ManagementError {
    /// Whether a later try may succeed: no answer yet, or the server's own error (a node that
    /// is still starting).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => status.is_server_error(),
            Self::Url | Self::Invalid(_) => false,
        }
    }
}

/// What a refusal most likely means.
fn hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => {
            " (RabbitMQ does not know the user of amqp.url, not with that password, or not as an \
             administrator: making users and setting permissions takes the administrator tag)"
        }
        400 => " (the vhost amqp.url names must exist)",
        404 => " (is amqp.management_url where the API is?)",
        _ => "",
    }
}

/// RabbitMQ's management API at `amqp.management_url`, as the user of `amqp.url` (the API takes
/// the same users as AMQP), on the vhost `amqp.url` names.
#[derive(Debug, Clone)]
pub struct Management {
    http: reqwest::Client,
    /// `amqp.management_url` without a user in it or a trailing slash: what messages show.
    base: String,
    user: String,
    password: SecretString,
    /// The vhost, encoded for a path (`/` is `%2F`).
    vhost: String,
}

impl Management {
    /// The API for `amqp`. Reads `amqp.url` as AMQP does: no user is `guest`, no path the vhost
    /// `/`.
    pub fn of(amqp: &AmqpConfig) -> Result<Self, ManagementError> {
        let url = url::Url::parse(amqp.url.expose_secret()).map_err(|_| ManagementError::Url)?;
        let user = match url.username() {
            "" => "guest".to_string(),
            user => decode(user),
        };
        let password = url.password().map_or_else(|| "guest".to_string(), decode);
        let password = SecretString::from(password);
        let base = match url::Url::parse(&amqp.management_url) {
            Ok(mut management) => {
                let _ = management.set_username("");
                let _ = management.set_password(None);
                management.to_string()
            }
            Err(_) => amqp.management_url.clone(),
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            user,
            password,
            vhost: encode(&vhost_of(&url)),
        })
    }

    /// The API's base URL, without credentials (for messages).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The vhost of `amqp.url`, encoded for a path (`queues/{vhost}`).
    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// `method` on `/api/<path>`, with `body` as JSON; an answer other than 2xx is an error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<reqwest::Response, ManagementError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/{path}", self.base))
            .basic_auth(&self.user, Some(self.password.expose_secret()))
            .timeout(Duration::from_secs(5));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ManagementError::Unreachable {
                url: self.base.clone(),
                error: chain(&e.without_url()),
            })?;
        let status = response.status();
        if !status.is_success() {
            let reason = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["reason"].as_str().map(|r| format!(": {r:.200}")))
                .unwrap_or_default();
            return Err(ManagementError::Refused {
                url: self.base.clone(),
                method,
                path: path.to_string(),
                status,
                reason,
                hint: hint(status),
            });
        }
        Ok(response)
    }
}

/// The vhost `amqp.url` names, as AMQP reads it (no path is `/`).
pub fn vhost(amqp: &AmqpConfig) -> Result<String, ManagementError> {
    let url = url::Url::parse(amqp.url.expose_secret()).map_err(|_| ManagementError::Url)?;
    Ok(vhost_of(&url))
}

fn vhost_of(url: &url::Url) -> String {
    url.path().get(1..).map_or_else(|| "/".to_string(), decode)
}

/// Makes the workers' own RabbitMQ user `user` with `password` on the vhost of `amqp.url` (no
/// tags: it cannot use the management API), or brings one that exists and has no tags to that
/// password and the permissions of [`super::worker_permissions`] for `amqp.namespace`: running
/// it again changes nothing. A user with tags (someone's) and the user of `amqp.url` are
/// refused. The user of `amqp.url` needs the administrator tag.
pub async fn ensure_worker_user(
    amqp: &AmqpConfig,
    user: &str,
    password: &str,
) -> Result<(), ManagementError> {
    let api = Management::of(amqp)?;
    if user.is_empty() || password.is_empty() {
        return Err(ManagementError::Invalid(
            "the workers' RabbitMQ user needs a name and a password".into(),
        ));
    }
    if user == api.user {
        return Err(ManagementError::Invalid(format!(
            "{user} is the user of amqp.url: the workers need a user of their own (making it \
             theirs would take the services' rights away)"
        )));
    }
    let (name, vhost) = (encode(user), api.vhost());
    // A user with tags is someone's (an administrator's, the monitoring's): making it the
    // workers' would take those rights away.
    match api.send(Method::GET, &format!("users/{name}"), None).await {
        Ok(found) => {
            let found: serde_json::Value = found.json().await.map_err(|e| {
                ManagementError::Invalid(format!(
                    "the management API's answer about {user} could not be read: {e}"
                ))
            })?;
            let tags = match &found["tags"] {
                serde_json::Value::Array(tags) => !tags.is_empty(),
                serde_json::Value::String(tags) => !tags.is_empty(),
                _ => false,
            };
            if tags {
                return Err(ManagementError::Invalid(format!(
                    "{user} is a RabbitMQ user with tags ({}): the workers need a user of their \
                     own (making it theirs would take its tags away)",
                    found["tags"]
                )));
            }
        }
        Err(ManagementError::Refused { status, .. }) if status == StatusCode::NOT_FOUND => {}
        Err(err) => return Err(err),
    }
    let can = super::worker_permissions(&amqp.namespace);
    for (path, body) in [
        (
            format!("users/{name}"),
            json!({"password": password, "tags": ""}),
        ),
        (
            format!("permissions/{vhost}/{name}"),
            json!({"configure": can.configure, "write": can.write, "read": can.read}),
        ),
        (
            format!("topic-permissions/{vhost}/{name}"),
            json!({"exchange": can.exchange, "write": can.topic_write, "read": can.topic_read}),
        ),
    ] {
        api.send(Method::PUT, &path, Some(body)).await?;
    }
    Ok(())
}

/// `segment` percent-encoded for a path of the management API: everything but letters, digits
/// and `-._~` (a vhost `/` is `%2F`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push_str(&hex::encode_upper([byte]));
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded (a URL's user, password or path).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                hex::decode([*high, *low]).ok()
            }
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.extend(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error and its causes, on one line (`error sending request: … : Connection refused`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amqp(url: &str) -> AmqpConfig {
        AmqpConfig {
            url: url.to_string().into(),
            management_url: "http://admin:pw@mq.internal:15672/".into(),
            ..AmqpConfig::default()
        }
    }

    #[test]
    fn the_api_signs_in_as_amqp_does_on_its_vhost() {
        let api = Management::of(&amqp("amqp://task%40mesh:p%2Fw%25@mq:5672/task%2Fmesh")).unwrap();
        assert_eq!(
            (api.user.as_str(), api.password.expose_secret()),
            ("task@mesh", "p/w%")
        );
        assert_eq!(api.vhost(), "task%2Fmesh");
        assert_eq!(
            vhost(&amqp("amqp://mq:5672/task%2Fmesh")).unwrap(),
            "task/mesh"
        );
        assert_eq!(vhost(&amqp("amqp://mq:5672")).unwrap(), "/");
        // The management URL's own user is neither used nor shown.
        assert_eq!(api.url(), "http://mq.internal:15672");

        let api = Management::of(&amqp("amqp://mq")).unwrap();
        assert_eq!(
            (api.user.as_str(), api.password.expose_secret()),
            ("guest", "guest")
        );
        assert_eq!(api.vhost(), "%2F");
        assert_eq!(
            Management::of(&amqp("amqp://mq/%2f")).unwrap().vhost(),
            "%2F"
        );
    }

    #[test]
    fn names_are_encoded_for_a_path_and_escapes_decoded() {
        assert_eq!(encode("taskmesh-worker.1_~"), "taskmesh-worker.1_~");
        assert_eq!(encode("a b/c+é"), "a%20b%2Fc%2B%C3%A9");
        assert_eq!(decode("50%25%2f%zz%"), "50%/%zz%");
    }

    #[tokio::test]
    async fn the_workers_user_is_never_the_services_own() {
        let refused = ensure_worker_user(&amqp("amqp://taskmesh:pw@mq/taskmesh"), "taskmesh", "x")
            .await
            .unwrap_err();
        assert!(matches!(refused, ManagementError::Invalid(_)), "{refused}");
        assert!(!refused.is_transient());
    }
}
