//! Worker pools' queues on RabbitMQ: declared on first use, and their dead-letter queues
//! pruned to mirror the dead list.

use std::{collections::HashSet, sync::Arc};

use shared::{broker::Broker, events::CloudEvent, topology::PoolTopology};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{error::TaskError, AppState};

/// Pool queues this process has declared; a dispatch to a pool is only written once its queue
/// exists, so the relay never finds it unroutable.
#[derive(Clone)]
pub struct Pools {
    broker: Broker,
    declared: Arc<Mutex<HashSet<String>>>,
}

impl Pools {
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            declared: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Declares `pool`'s queues unless this process already did; 503 if RabbitMQ is down.
    pub async fn ensure(&self, pool: &str) -> Result<(), TaskError> {
        let mut declared = self.declared.lock().await;
        if declared.contains(pool) {
            return Ok(());
        }
        let topology = PoolTopology::new(&self.broker, pool);
        let result = async {
            let channel = self.broker.channel().await?;
            topology.declare(&self.broker, &channel).await?;
            channel.close(200, "declared").await
        }
        .await;
        match result {
            Ok(()) => {
                declared.insert(pool.to_string());
                Ok(())
            }
            Err(err) => {
                tracing::warn!(%pool, error = %err, "cannot declare a pool's queue");
                Err(TaskError::Unavailable("rabbitmq"))
            }
        }
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// Removes from `pool`'s dead-letter queue the messages of jobs that are no longer on the dead
/// list (replayed or purged); the others go back in their order. Best effort: the database is
/// the record, the queue its mirror for the console.
pub async fn prune_dead_letters(state: &AppState, pool: &str) {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let topology = PoolTopology::new(state.pools.broker(), pool);
    let result: anyhow::Result<usize> = async {
        let channel = state.pools.broker().channel().await?;
        let mut seen = Vec::new();
        // Unacked gets stay with this channel; closing it returns the kept ones to the queue.
        while seen.len() < 100_000 {
            let Some(message) = channel
                .basic_get(
                    &topology.dead_letter_queue,
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            let task_id = serde_json::from_slice::<CloudEvent>(&message.delivery.data)
                .ok()
                .and_then(|e| e.subject)
                .and_then(|s| Uuid::parse_str(&s).ok());
            seen.push((message.delivery.delivery_tag, task_id));
        }
        let ids: Vec<Uuid> = seen.iter().filter_map(|(_, id)| *id).collect();
        let still_dead = crate::store::dead::still_dead(&state.pool, &ids).await?;
        let mut removed = 0;
        for (tag, id) in &seen {
            if !id.is_some_and(|id| still_dead.contains(&id)) {
                channel.basic_ack(*tag, BasicAckOptions::default()).await?;
                removed += 1;
            }
        }
        channel.close(200, "pruned").await?;
        Ok(removed)
    }
    .await;
    match result {
        Ok(removed) => tracing::info!(%pool, removed, "pruned the dead-letter queue"),
        Err(err) => {
            tracing::warn!(%pool, error = format!("{err:#}"), "cannot prune the dead-letter queue")
        }
    }
}
