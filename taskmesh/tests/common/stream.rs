//! A client of `GET /api/v1/events/stream`: opens a stream and reads its events one at a time.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
    /// `retry:`, as sent (milliseconds).
    pub retry: Option<String>,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The CloudEvent's `subject` (a task id for task events).
    pub fn subject(&self) -> String {
        self.json()["subject"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub struct EventStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

/// A ticket for `token`'s user.
pub async fn ticket(api: &str, token: &str) -> String {
    let reply = post(api, "/api/v1/events/ticket", token, &serde_json::json!({})).await;
    reply["ticket"].as_str().unwrap().to_string()
}

/// POSTs `body` to `api` (any gateway replica) and returns the successful answer's JSON.
pub async fn post(api: &str, path: &str, token: &str, body: &Value) -> Value {
    reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Opens a stream with a fresh ticket (as a browser does), resuming after `last` if given.
pub async fn open(api: &str, token: &str, last: Option<&str>) -> EventStream {
    let ticket = ticket(api, token).await;
    let response = request(api, &format!("ticket={ticket}"), last)
        .await
        .error_for_status()
        .unwrap();
    EventStream::new(response)
}

/// The answer to opening a stream with `query`.
pub async fn request(api: &str, query: &str, last: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{api}/api/v1/events/stream?{query}"));
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    request.send().await.unwrap()
}

/// The answer to opening a stream with `query` as the client at `address`, behind one proxy
/// (`rate_limit.trusted_proxies` = 1) that says so in `X-Forwarded-For`.
pub async fn request_from(api: &str, query: &str, address: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{api}/api/v1/events/stream?{query}"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap()
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: response
                .bytes_stream()
                .map(|r| r.map(|b| b.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event within `deadline`; `None` when the stream ended or nothing came.
    pub async fn next(&mut self, deadline: Duration) -> Option<SseEvent> {
        tokio::time::timeout(deadline, self.read())
            .await
            .ok()
            .flatten()
    }

    /// The next event of type `event` within `deadline`, skipping the others.
    pub async fn next_of(&mut self, event: &str, deadline: Duration) -> Option<SseEvent> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            let next = self.next(left).await?;
            if next.event == event {
                return Some(next);
            }
        }
    }

    async fn read(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue; // a comment (heartbeat)
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data, mut retry) =
        (None, String::from("message"), Vec::new(), None);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = value.to_string(),
            "data" => data.push(value.to_string()),
            "retry" => retry = Some(value.to_string()),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| SseEvent {
        id,
        event,
        data: data.join("\n"),
        retry,
    })
}
