//! The deployment's RabbitMQ topology in one place: the events exchange and every consumer queue
//! with its bindings, retry queues and dead-letter queue.
//!
//! Every service declares all of it at start-up (declaration is idempotent), so an event
//! published by one service is routed to the queues of its consumers even if those consumers
//! have never run yet. An event that is still unroutable has no consumer in this table.
//!
//! [`worker_permissions`] is what the workers' own RabbitMQ user may do; [`management`] makes
//! that user through the management API.

pub mod management;

use lapin::{
    options::{QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
    Channel,
};

use crate::broker::Broker;
use crate::config::ConsumerConfig;
use crate::consumer::QueueSpec;
use crate::events::{
    ChannelJoined, EventPayload, JobFinished, JobProgress, JobStarted, JobsFinished, MediaUploaded,
    NotificationCreated, TaskDeleted, VerificationMailDue, NOTIFYING_TYPES,
};

/// notify-svc's queue: the events it turns into notifications, and no others (a job engine
/// publishes several task events per job; a consumer that only acks them would still pay for
/// each delivery).
pub fn notify_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "notify-svc", config)
        .bind("user.*")
        .bind(VerificationMailDue::TYPE)
        .batches_of("task-svc", NOTIFYING_TYPES)
}

/// notify-svc's mail queue: one command per mail, so that an SMTP server that is away delays
/// mail through the consumer's retries (and dead-letters it after them) without holding up
/// the event fan-out.
pub fn notify_mail_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "notify-svc.mail", config).bind("notify.mail")
}

/// notify-svc's SMS queue, like the mail queue.
pub fn notify_sms_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "notify-svc.sms", config).bind("notify.sms")
}

/// task-svc's queue: the user events its read model of users is built from.
pub fn task_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "task-svc", config).bind("user.*")
}

/// task-svc's queue of workers' reports on the jobs they run.
pub fn job_reports_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "task-svc.job-reports", config)
        .bind(JobStarted::TYPE)
        .bind(JobProgress::TYPE)
        .bind(JobFinished::TYPE)
        .bind(JobsFinished::TYPE)
}

/// media-svc's queue: its own uploads (to make thumbnails) and deleted tasks (their files go).
pub fn media_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "media-svc", config)
        .bind(MediaUploaded::TYPE)
        .bind(TaskDeleted::TYPE)
}

/// The gateways' feed of the live stream (`GET /api/v1/events/stream`): every event a user
/// may be shown. One gateway at a time consumes it (single active consumer, so the order holds)
/// and appends each event, with who may see it, to the stream log in Redis that every gateway
/// reads.
pub fn gateway_stream_queue(broker: &Broker, config: &ConsumerConfig) -> QueueSpec {
    QueueSpec::new(broker, "api-gateway.stream", config)
        .single_active()
        .batches_of("task-svc", &["task.*", "workflow.*", ChannelJoined::TYPE])
        .bind(JobStarted::TYPE)
        .bind(JobProgress::TYPE)
        .bind(JobFinished::TYPE)
        .bind(JobsFinished::TYPE)
        .bind(NotificationCreated::TYPE)
        .bind("media.*")
}

/// Every consumer queue of the deployment.
pub fn consumer_queues(broker: &Broker, config: &ConsumerConfig) -> Vec<QueueSpec> {
    vec![
        notify_queue(broker, config),
        notify_mail_queue(broker, config),
        notify_sms_queue(broker, config),
        task_queue(broker, config),
        job_reports_queue(broker, config),
        media_queue(broker, config),
        gateway_stream_queue(broker, config),
    ]
}

/// Highest AMQP priority of a job queue (`x-max-priority`); task priorities map onto 0..=9.
pub const JOB_MAX_PRIORITY: u8 = 9;

/// Whether `pool` may name a worker pool: 1 to 40 of `a-z 0-9 _ -`, starting with a letter or
/// digit (it becomes part of queue names and routing keys).
pub fn valid_pool(pool: &str) -> bool {
    let mut chars = pool.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pool.len() <= 40
        && pool
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Names of a worker pool's queues and routing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTopology {
    /// `<ns>.jobs.<pool>`: the dispatches, highest priority first.
    pub queue: String,
    /// `job.dispatch.<pool>`
    pub dispatch_key: String,
    /// `<ns>.jobs.<pool>.dlq`: dead jobs, kept for inspection and replay.
    pub dead_letter_queue: String,
    /// `job.dead.<pool>`
    pub dead_key: String,
}

impl PoolTopology {
    pub fn new(broker: &Broker, pool: &str) -> Self {
        Self {
            queue: broker.queue_name(&format!("jobs.{pool}")),
            dispatch_key: format!("job.dispatch.{pool}"),
            dead_letter_queue: broker.queue_name(&format!("jobs.{pool}.dlq")),
            dead_key: format!("job.dead.{pool}"),
        }
    }

    /// Declares the pool's queue and dead-letter queue and binds them. Idempotent: task-svc runs
    /// it before the first dispatch to a pool, workers before they consume.
    ///
    /// The job queue is a classic durable queue with `x-max-priority`, whatever the deployment's
    /// queue type: RabbitMQ 3.x quorum queues refuse priorities, and an urgent job must overtake a
    /// backlog. Messages are persistent, so they survive a broker restart.
    pub async fn declare(&self, broker: &Broker, channel: &Channel) -> Result<(), lapin::Error> {
        broker.declare_events_exchange(channel).await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("classic")),
        );
        args.insert(
            ShortString::from("x-max-priority"),
            AMQPValue::ShortShortUInt(JOB_MAX_PRIORITY),
        );
        if let Some(expires) = broker.config().queue_expires_ms {
            args.insert(
                ShortString::from("x-expires"),
                AMQPValue::LongLongInt(i64::from(expires)),
            );
        }
        channel.queue_declare(&self.queue, durable, args).await?;
        channel
            .queue_declare(
                &self.dead_letter_queue,
                durable,
                broker.queue_args(None, None, None),
            )
            .await?;
        let exchange = broker.events_exchange();
        for (queue, key) in [
            (&self.queue, &self.dispatch_key),
            (&self.dead_letter_queue, &self.dead_key),
        ] {
            channel
                .queue_bind(
                    queue,
                    &exchange,
                    key,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
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

/// What the workers' own RabbitMQ user may do in namespace `ns` (regular expressions, as
/// `rabbitmqctl set_permissions` and `set_topic_permissions` take them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerPermissions {
    /// Declare: the events exchange, the pools' job and dead-letter queues, its control queue.
    pub configure: String,
    /// Publish to the events exchange; bind those queues.
    pub write: String,
    /// Consume the job and control queues; bind to the events exchange.
    pub read: String,
    /// The events exchange, on which the routing keys are limited:
    pub exchange: String,
    /// publish only its reports (`job.started`, `job.progress`, `job.finished`,
    /// `job.finished.batch`): never a task's, a user's or a dispatch;
    pub topic_write: String,
    /// bind only to dispatches and dead jobs of a pool, and cancels.
    pub topic_read: String,
}

/// The permissions of the workers' RabbitMQ user in namespace `ns` (`amqp.namespace`), which
/// [`management::ensure_worker_user`] gives it (`taskmesh worker-amqp-user`).
pub fn worker_permissions(ns: &str) -> WorkerPermissions {
    let exchange = format!("{ns}.events");
    let ns = regex_escape(ns);
    // Pool names hold no dot (`valid_pool`); a worker id may.
    let queues = r"jobs\.[^.]+|workers\..+\.control";
    // What it declares is what it publishes to and binds.
    let declared = format!(r"^{ns}\.(events|{queues}|jobs\.[^.]+\.dlq)$");
    WorkerPermissions {
        configure: declared.clone(),
        write: declared,
        read: format!(r"^{ns}\.(events|{queues})$"),
        exchange,
        topic_write: r"^job\.(started|progress|finished|finished\.batch)$".into(),
        topic_read: r"^job\.((dispatch|dead)\.[^.]+|cancel)$".into(),
    }
}

/// `text` matched literally in a regular expression.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
