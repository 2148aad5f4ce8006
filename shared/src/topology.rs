//! The deployment's RabbitMQ topology in one place: the events exchange and every consumer queue
//! with its bindings, retry queues and dead-letter queue.
//!
//! Every service declares all of it at start-up (declaration is idempotent), so an event
//! published by one service is routed to the queues of its consumers even if those consumers
//! have never run yet. An event that is still unroutable has no consumer in this table.

use lapin::Channel;

use crate::broker::Broker;
use crate::config::ConsumerConfig;
use crate::consumer::QueueSpec;

/// notify-svc's queue: everything a user may want to hear about.
pub fn notify_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "notify-svc", config)
        .bind("user.created")
        .bind("task.#")
        .bind("channel.#")
        .bind("media.processed")
}

/// task-svc's queue: the user events its read model of users is built from.
pub fn task_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "task-svc", config).bind("user.*")
}

/// Every consumer queue of the deployment.
pub fn consumer_queues(broker: &Broker, config: &ConsumerConfig) -> Vec<QueueSpec> {
    vec![notify_queue(broker, config), task_queue(broker, config)]
}

/// Declares the exchange and every consumer queue.
pub async fn declare_all(
    broker: &Broker,
    channel: &Channel,
    config: &ConsumerConfig,
) -> Result<(), lapin::Error> {
    broker.declare_events_exchange(channel).await?;
    for queue in consumer_queues(broker, config) {
        queue.declare(broker, channel).await?;
    }
    Ok(())
}
