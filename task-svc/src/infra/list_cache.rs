//! The first page of each user's task list, cached in Redis.
//!
//! Keys carry a per-user generation: `<prefix>tasks:list:<user>:<generation>`. A write bumps the
//! generation of every user who can see the task (owner, assignee, channel members) after it
//! commits, so the next read misses and goes to PostgreSQL. A reader that raced with the write
//! can only store its (possibly old) page under the old generation, which nobody reads again:
//! no reader sees a stale list after a successful write. Without Redis, reads go to PostgreSQL.

use redis::aio::ConnectionManager;
use uuid::Uuid;

#[derive(Clone)]
pub struct ListCache {
    pub redis: ConnectionManager,
    pub prefix: String,
    pub ttl_secs: u64,
}

impl ListCache {
    fn generation_key(&self, user: Uuid) -> String {
        format!("{}tasks:generation:{user}", self.prefix)
    }

    fn page_key(&self, user: Uuid, generation: i64) -> String {
        format!("{}tasks:list:{user}:{generation}", self.prefix)
    }

    /// The user's current generation and the cached page for it, if any. `None` without Redis.
    pub async fn get(&self, user: Uuid) -> Option<(i64, Option<String>)> {
        let mut conn = self.redis.clone();
        let generation: Option<i64> = redis::cmd("GET")
            .arg(self.generation_key(user))
            .query_async(&mut conn)
            .await
            .map_err(|e| tracing::warn!(error = %e, "task list cache unavailable"))
            .ok()?;
        let generation = generation.unwrap_or(0);
        let page: Option<String> = redis::cmd("GET")
            .arg(self.page_key(user, generation))
            .query_async(&mut conn)
            .await
            .ok()?;
        Some((generation, page))
    }

    /// Stores a page read from PostgreSQL under the generation seen before reading it.
    pub async fn put(&self, user: Uuid, generation: i64, page: &str) {
        let mut conn = self.redis.clone();
        let stored: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.page_key(user, generation))
            .arg(page)
            .arg("EX")
            .arg(self.ttl_secs.max(1))
            .query_async(&mut conn)
            .await;
        if let Err(err) = stored {
            tracing::warn!(error = %err, "cannot cache a task list");
        }
    }

    /// Makes every listed user's cached page unreachable. Call after the write commits.
    pub async fn invalidate(&self, users: &[Uuid]) {
        if users.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for user in users {
            let key = self.generation_key(*user);
            pipe.incr(&key, 1).ignore().expire(&key, 86_400).ignore();
        }
        let mut conn = self.redis.clone();
        if let Err(err) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %err, "cannot invalidate cached task lists");
        }
    }
}
