//! The stream log: a Redis stream (`<prefix>stream:log`) of every event a user may be shown,
//! each with who may see it. One gateway appends (the feed); every gateway reads it, live and
//! for `Last-Event-ID` resumes. Entry ids are Redis stream ids (`<ms>-<seq>`): one order for
//! all replicas, which is what lets a client resume on any of them.

use std::sync::Arc;

use redis::{aio::ConnectionManager, streams::StreamRangeReply, Value};
use uuid::Uuid;

/// One event in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The stream id, sent as the SSE `id`.
    pub id: String,
    /// The CloudEvents type, sent as the SSE `event`.
    pub event_type: String,
    /// The CloudEvent as JSON, sent as the SSE `data`.
    pub data: String,
    /// Who may see it, sorted.
    pub users: Vec<Uuid>,
    /// The task it is about, if any.
    pub task: Option<Uuid>,
}

impl Entry {
    pub fn visible_to(&self, user: Uuid) -> bool {
        self.users.binary_search(&user).is_ok()
    }
}

pub fn key(prefix: &str) -> String {
    format!("{prefix}stream:log")
}

fn seen_key(prefix: &str, event_id: &str) -> String {
    format!("{prefix}stream:seen:{event_id}")
}

/// Appends each event unless it is already in (a redelivery), trimming what is older than the
/// retention (by Redis's own clock, which also makes the ids). An event's `seen` marker
/// (`KEYS[i]`, from the second key on) is set only once its entry is in, and lives as long as
/// the retention. `ARGV[1]` is the retention; each event then has four: type, JSON, audience
/// and task. One call for many events: the script's own cost is paid once per call, not once
/// per event.
const APPEND: &str = r"
local now = redis.call('TIME')
local min_id = tonumber(now[1]) * 1000 - tonumber(ARGV[1]) * 1000
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local a = 2 + (i - 2) * 4
    redis.call('XADD', KEYS[1], 'MINID', '~', min_id, '*',
               't', ARGV[a], 'd', ARGV[a + 1], 'u', ARGV[a + 2], 'k', ARGV[a + 3])
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
  end
end
return 0
";

/// Events appended per script call: Redis runs nothing else during a call, so a long batch is
/// split rather than holding every other client (rate limits, sessions) up.
const PER_CALL: usize = 100;

/// An event to append: its CloudEvents id (the de-duplication key), type, JSON, audience and
/// the task it is about (checked again when a client catches up).
pub struct NewEntry {
    pub event_id: String,
    pub event_type: String,
    pub data: String,
    pub users: Vec<Uuid>,
    pub task: Option<Uuid>,
}

/// Appends `entries` in order, in one round trip.
pub async fn append(
    redis: &ConnectionManager,
    prefix: &str,
    retention_secs: u64,
    entries: &[NewEntry],
) -> redis::RedisResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(APPEND);
    let mut pipe = redis::pipe();
    // Load the script once; every call then runs it by hash.
    pipe.cmd("SCRIPT").arg("LOAD").arg(APPEND).ignore();
    for chunk in entries.chunks(PER_CALL) {
        let call = pipe
            .cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(chunk.len() + 1)
            .arg(key(prefix));
        for entry in chunk {
            call.arg(seen_key(prefix, &entry.event_id));
        }
        call.arg(retention_secs);
        for entry in chunk {
            let users = entry
                .users
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",");
            call.arg(&entry.event_type)
                .arg(&entry.data)
                .arg(users)
                .arg(entry.task.map(|t| t.to_string()).unwrap_or_default());
        }
        call.ignore();
    }
    let mut conn = redis.clone();
    pipe.query_async::<()>(&mut conn).await
}

/// Up to `count` entries after `after` (exclusive), oldest first.
pub async fn after(
    redis: &ConnectionManager,
    prefix: &str,
    after: &str,
    count: usize,
) -> redis::RedisResult<Vec<Entry>> {
    let mut conn = redis.clone();
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key(prefix))
        .arg(format!("({after}"))
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(&mut conn)
        .await?;
    Ok(reply.ids.into_iter().filter_map(parse).collect())
}

/// The ids of the oldest and the newest entry, if the log has any.
pub async fn bounds(
    redis: &ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<Option<(String, String)>> {
    let mut conn = redis.clone();
    let first: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key(prefix))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    let last: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(key(prefix))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await?;
    Ok(first
        .ids
        .first()
        .zip(last.ids.first())
        .map(|(f, l)| (f.id.clone(), l.id.clone())))
}

/// Waits up to `block_ms` for entries after `after` and returns up to `count` of them.
pub async fn read_blocking(
    conn: &mut ConnectionManager,
    prefix: &str,
    after: &str,
    block_ms: u64,
    count: usize,
) -> redis::RedisResult<Vec<Arc<Entry>>> {
    let reply: Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(key(prefix))
        .arg(after)
        .query_async(conn)
        .await?;
    if reply == Value::Nil {
        return Ok(Vec::new());
    }
    let reply: redis::streams::StreamReadReply = redis::FromRedisValue::from_redis_value(&reply)?;
    Ok(reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .filter_map(parse)
        .map(Arc::new)
        .collect())
}

fn parse(id: redis::streams::StreamId) -> Option<Entry> {
    let field = |name: &str| -> Option<String> {
        id.map
            .get(name)
            .and_then(|v| redis::FromRedisValue::from_redis_value(v).ok())
    };
    let mut users: Vec<Uuid> = field("u")?
        .split(',')
        .filter_map(|u| Uuid::parse_str(u).ok())
        .collect();
    users.sort();
    Some(Entry {
        event_type: field("t")?,
        data: field("d")?,
        users,
        task: field("k").and_then(|k| Uuid::parse_str(&k).ok()),
        id: id.id,
    })
}

/// Whether stream id `a` comes after `b` (ids compare as `(ms, seq)`, not as text).
pub fn is_after(a: &str, b: &str) -> bool {
    parse_id(a) > parse_id(b)
}

/// A stream id as `(ms, seq)`; `None` for anything else (a `Last-Event-ID` a client made up):
/// two runs of 1 to 20 digits.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_as_numbers() {
        assert!(is_after("10-0", "9-5"));
        assert!(is_after("10-10", "10-9"));
        assert!(!is_after("10-9", "10-9"));
        assert_eq!(parse_id("12-3"), Some((12, 3)));
        assert_eq!(parse_id("12"), None);
        assert_eq!(parse_id("a-b"), None);
        assert_eq!(parse_id("+1-+0"), None);
        assert_eq!(parse_id(&format!("{}-0", "1".repeat(21))), None);
    }

    fn entry(n: usize) -> NewEntry {
        NewEntry {
            event_id: format!("event-{n}"),
            event_type: "task.updated".into(),
            data: format!("{{\"n\":{n}}}"),
            users: vec![Uuid::from_u128(n as u128)],
            task: n
                .is_multiple_of(2)
                .then(|| Uuid::from_u128(1_000 + n as u128)),
        }
    }

    /// Several script calls in one round trip keep the order, skip an event already in (within
    /// a call, across calls, and when a batch comes again) and keep every field.
    #[tokio::test]
    async fn a_long_batch_goes_in_once_in_order_whatever_comes_again() {
        let url = std::env::var("TASKMESH_REDIS__URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url).expect("a Redis URL");
        let redis = ConnectionManager::new(client).await.expect("Redis is up");
        let prefix = format!("test:{}:", Uuid::new_v4().simple());
        // 250 events over three calls, the 7th also at 120 (the second call) and the 130th
        // twice in a row.
        let mut batch: Vec<NewEntry> = (0..250).map(entry).collect();
        batch.insert(120, entry(7));
        batch.insert(131, entry(130));
        append(&redis, &prefix, 60, &batch).await.unwrap();
        // A redelivery of part of it, with one new event.
        let again: Vec<NewEntry> = (200..251).map(entry).collect();
        append(&redis, &prefix, 60, &again).await.unwrap();

        let logged = after(&redis, &prefix, "0-0", 1_000).await.unwrap();
        let ids: Vec<String> = logged
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["n"].to_string())
            .collect();
        let expected: Vec<String> = (0..251).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected);
        let first = &logged[2];
        assert_eq!(first.event_type, "task.updated");
        assert_eq!(first.users, vec![Uuid::from_u128(2)]);
        assert_eq!(first.task, Some(Uuid::from_u128(1_002)));
        assert_eq!(logged[3].task, None);

        let mut conn = redis.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
