//! The outbox, relay and consumer loop against the real PostgreSQL and RabbitMQ.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::{Deserialize, Serialize};
use shared::broker::{
    header_int, header_str, Broker, OutgoingMessage, PublishError, Publisher, HEADER_ATTEMPT,
    HEADER_FAILED_AT, HEADER_LAST_ERROR,
};
use shared::consumer::{BatchHandler, Consumer, Handler, HandlerError, Incoming, QueueSpec};
use shared::events::{CloudEvent, EventPayload, EventsBatch};
use shared::outbox::{self, Relay};
use shared::testkit::{eventually, TestEnv};
use shared::{idempotency, Config};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Ping {
    n: u32,
}

impl EventPayload for Ping {
    const TYPE: &'static str = "test.ping";
    fn subject(&self) -> String {
        self.n.to_string()
    }
}

/// One test's database, broker and relay, with a queue bound to `test.#`.
struct Bench {
    env: TestEnv,
    pool: PgPool,
    broker: Broker,
    relay: Relay,
    queue: QueueSpec,
    shutdown: CancellationToken,
}

impl Bench {
    async fn new() -> Self {
        let env = TestEnv::new();
        let shutdown = CancellationToken::new();
        let config: &Config = &env.config;
        let pool = shared::db::connect(
            &config.postgres,
            &config.task.database,
            &sqlx::migrate::Migrator::DEFAULT,
            &shutdown,
        )
        .await
        .unwrap();
        sqlx::query("CREATE TABLE effects (event_id uuid PRIMARY KEY, n int NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        // A connection name unique to this test, so closing it touches no other test.
        let broker = Broker::new(&config.amqp, &format!("test-{}", env.id));
        let relay = Relay::new(
            pool.clone(),
            Publisher::new(broker.clone()),
            config.outbox.clone(),
        );
        let queue = QueueSpec::new(&broker, "test-consumer", &config.consumer).bind("test.#");
        let channel = broker.channel().await.unwrap();
        queue.declare(&broker, &channel).await.unwrap();
        Self {
            env,
            pool,
            broker,
            relay,
            queue,
            shutdown,
        }
    }

    async fn commit_ping(&self, n: u32) {
        let mut tx = self.pool.begin().await.unwrap();
        outbox::enqueue(&mut tx, CloudEvent::new("test", Ping { n }))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn ready_count(&self, queue: &str) -> u32 {
        let channel = self.broker.channel().await.unwrap();
        let declared = channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        declared.message_count()
    }

    fn consume<H: Handler>(&self, handler: H) {
        let consumer = Consumer::new(self.broker.clone(), self.queue.clone(), handler);
        tokio::spawn(consumer.run(self.shutdown.clone()));
    }

    async fn effects(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM effects")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Applies each event once: records it in `processed_events` and `effects` in one transaction;
/// `calls` counts settled deliveries, duplicates included.
struct IdempotentEffect {
    pool: PgPool,
    calls: Arc<Mutex<u32>>,
}

impl Handler for IdempotentEffect {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let ping: Ping = message
            .event
            .decode()
            .map_err(|e| HandlerError::Reject(e.into()))?;
        let mut tx = self.pool.begin().await?;
        if idempotency::first_time(&mut tx, "test", message.event.id).await? {
            sqlx::query("INSERT INTO effects (event_id, n) VALUES ($1, $2)")
                .bind(message.event.id)
                .bind(ping.n as i32)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        // Counted once the delivery's outcome is committed: deliveries run concurrently, so a
        // count taken at the start would not mean the effect is visible yet.
        *self.calls.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    let bench = Bench::new().await;
    let mut tx = bench.pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, CloudEvent::new("test", Ping { n: 1 }))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    assert_eq!(bench.relay.drain().await.unwrap(), 0);
    assert_eq!(bench.ready_count(&bench.queue.name).await, 0);

    // The same relay does publish a committed event, so the zero above means something.
    bench.commit_ping(2).await;
    assert_eq!(bench.relay.drain().await.unwrap(), 1);
    eventually("the committed event in the queue", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_committed_event_has_one_effect_even_when_the_relay_dies_before_marking_it() {
    let bench = Bench::new().await;
    bench.commit_ping(7).await;

    // The relay publishes, then "dies" before marking the row: the row is still pending.
    let first = bench.relay.publish_due_then_crash().await.unwrap();
    assert_eq!(first.claimed, 1);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&bench.pool)
        .await
        .unwrap();
    assert_eq!(pending, 1);

    // The restarted relay publishes it again and marks it.
    assert_eq!(bench.relay.drain().await.unwrap(), 1);
    assert_eq!(
        bench.relay.drain().await.unwrap(),
        0,
        "published exactly once more"
    );

    let calls = Arc::new(Mutex::new(0));
    bench.consume(IdempotentEffect {
        pool: bench.pool.clone(),
        calls: calls.clone(),
    });
    eventually("both deliveries handled", WAIT, || async {
        (*calls.lock().unwrap() == 2).then_some(())
    })
    .await;
    assert_eq!(
        bench.effects().await,
        1,
        "the duplicate had no second effect"
    );
}

/// Fails with `Retry` until the third attempt; records when each attempt came.
struct FailsTwice {
    attempts: Arc<Mutex<Vec<(u32, Instant)>>>,
}

impl Handler for FailsTwice {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.attempts
            .lock()
            .unwrap()
            .push((message.attempt, Instant::now()));
        if message.attempt < 3 {
            return Err(HandlerError::Retry(anyhow::anyhow!(
                "transient failure {}",
                message.attempt
            )));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_handler_that_fails_twice_is_retried_with_growing_delays_then_acked() {
    let bench = Bench::new().await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    bench.consume(FailsTwice {
        attempts: attempts.clone(),
    });
    bench.commit_ping(1).await;
    bench.relay.drain().await.unwrap();

    let seen = eventually("the third attempt", WAIT, || async {
        let seen = attempts.lock().unwrap().clone();
        (seen.len() >= 3).then_some(seen)
    })
    .await;
    let numbers: Vec<u32> = seen.iter().map(|(a, _)| *a).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let first_gap = seen[1].1 - seen[0].1;
    let second_gap = seen[2].1 - seen[1].1;
    let base = bench.queue.retry.base;
    assert!(
        first_gap >= base,
        "first retry after {first_gap:?}, base {base:?}"
    );
    assert!(
        second_gap >= base * 2,
        "second retry after {second_gap:?}, should wait at least {:?}",
        base * 2
    );

    // Acked: nothing waits in the queue or its dead-letter queue.
    eventually("the queue to drain", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 0).then_some(())
    })
    .await;
    assert_eq!(bench.ready_count(&bench.queue.dead_letter_queue()).await, 0);
    assert_eq!(
        attempts.lock().unwrap().len(),
        3,
        "no attempt after success"
    );
}

/// Its database cannot be reached (a pool on a port nothing listens on) for the first
/// `down_for` tries, then it applies the event; records the attempt number of every try.
struct DatabaseComesBack {
    down: PgPool,
    down_for: usize,
    tries: Arc<Mutex<Vec<u32>>>,
    inner: IdempotentEffect,
}

impl Handler for DatabaseComesBack {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let tries = {
            let mut tries = self.tries.lock().unwrap();
            tries.push(message.attempt);
            tries.len()
        };
        if tries <= self.down_for {
            sqlx::query("SELECT 1").execute(&self.down).await?;
            unreachable!("nothing listens on the down pool's port");
        }
        self.inner.handle(message).await
    }
}

#[tokio::test]
async fn a_database_outage_longer_than_the_retry_budget_spends_no_attempt_and_loses_nothing() {
    let bench = Bench::new().await;
    let tries = Arc::new(Mutex::new(Vec::new()));
    let down_for = bench.queue.retry.max_attempts as usize + 2;
    let down = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy("postgres://postgres@127.0.0.1:1/down")
        .unwrap();
    bench.consume(DatabaseComesBack {
        down,
        down_for,
        tries: tries.clone(),
        inner: IdempotentEffect {
            pool: bench.pool.clone(),
            calls: Arc::new(Mutex::new(0)),
        },
    });
    bench.commit_ping(7).await;
    bench.relay.drain().await.unwrap();

    eventually("the effect once the database is back", WAIT, || async {
        (bench.effects().await == 1).then_some(())
    })
    .await;
    let tries = tries.lock().unwrap().clone();
    assert_eq!(
        tries.len(),
        down_for + 1,
        "held and tried again until it worked"
    );
    assert!(
        tries.iter().all(|attempt| *attempt == 1),
        "no attempt spent on the outage: {tries:?}"
    );
    eventually("the queue to drain", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 0).then_some(())
    })
    .await;
    assert_eq!(bench.ready_count(&bench.queue.dead_letter_queue()).await, 0);
}

/// Fails every delivery of `n == 0`; applies the rest.
struct PoisonZero {
    inner: IdempotentEffect,
}

impl Handler for PoisonZero {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let ping: Ping = message
            .event
            .decode()
            .map_err(|e| HandlerError::Reject(e.into()))?;
        if ping.n == 0 {
            return Err(HandlerError::Retry(anyhow::anyhow!(
                "poison message cannot be applied"
            )));
        }
        self.inner.handle(message).await
    }
}

#[tokio::test]
async fn a_message_that_always_fails_is_dead_lettered_with_its_error_while_others_flow() {
    let bench = Bench::new().await;
    bench.consume(PoisonZero {
        inner: IdempotentEffect {
            pool: bench.pool.clone(),
            calls: Arc::default(),
        },
    });
    bench.commit_ping(0).await;
    for n in 1..=5 {
        bench.commit_ping(n).await;
    }
    bench.relay.drain().await.unwrap();

    eventually("the five good messages applied", WAIT, || async {
        (bench.effects().await == 5).then_some(())
    })
    .await;
    let dlq = bench.queue.dead_letter_queue();
    eventually(
        "the poison message in the dead-letter queue",
        WAIT,
        || async { (bench.ready_count(&dlq).await == 1).then_some(()) },
    )
    .await;

    let channel = bench.broker.channel().await.unwrap();
    let dead = channel
        .basic_get(&dlq, BasicGetOptions::default())
        .await
        .unwrap()
        .expect("a dead letter");
    let headers = dead.properties.headers().as_ref();
    let max = i64::from(bench.env.config.consumer.max_attempts);
    assert_eq!(header_int(headers, HEADER_ATTEMPT), Some(max));
    assert!(header_str(headers, HEADER_LAST_ERROR)
        .unwrap()
        .contains("poison message cannot be applied"));
    assert!(header_str(headers, HEADER_FAILED_AT).is_some());
    let event: CloudEvent = serde_json::from_slice(&dead.delivery.data).unwrap();
    assert_eq!(event.decode::<Ping>().unwrap(), Ping { n: 0 });
}

#[tokio::test]
async fn an_unroutable_publish_is_reported_not_dropped() {
    let bench = Bench::new().await;
    let publisher = Publisher::new(bench.broker.clone());
    let message = OutgoingMessage::new(
        bench.broker.events_exchange(),
        "nobody.listens",
        b"{}".to_vec(),
    );
    let err = publisher.publish(&message).await.unwrap_err();
    assert!(
        matches!(err, PublishError::Unroutable { ref routing_key, .. } if routing_key == "nobody.listens"),
        "{err:?}"
    );

    // Through the outbox, the relay records it on the row instead of losing track of it.
    #[derive(Serialize, Deserialize)]
    struct Orphan;
    impl EventPayload for Orphan {
        const TYPE: &'static str = "orphan.event";
        fn subject(&self) -> String {
            String::new()
        }
    }
    let mut tx = bench.pool.begin().await.unwrap();
    outbox::enqueue(&mut tx, CloudEvent::new("test", Orphan))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stats = bench.relay.publish_due().await.unwrap();
    assert_eq!((stats.published, stats.unroutable), (0, 1));
    let error: Option<String> = sqlx::query_scalar("SELECT last_error FROM outbox")
        .fetch_one(&bench.pool)
        .await
        .unwrap();
    assert!(error.unwrap().starts_with("unroutable"));
}

#[tokio::test]
async fn an_event_type_found_unroutable_is_not_published_again_until_its_recheck() {
    #[derive(Serialize, Deserialize)]
    struct Stray;
    impl EventPayload for Stray {
        const TYPE: &'static str = "stray.event";
        fn subject(&self) -> String {
            String::new()
        }
    }
    let bench = Bench::new().await;
    let stray = async || {
        let mut tx = bench.pool.begin().await.unwrap();
        outbox::enqueue(&mut tx, CloudEvent::new("test", Stray))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let relay_with = |recheck_ms: u64| {
        let mut config = bench.env.config.outbox.clone();
        config.unroutable_recheck_ms = recheck_ms;
        Relay::new(
            bench.pool.clone(),
            Publisher::new(bench.broker.clone()),
            config,
        )
    };
    let patient = relay_with(3_600_000);
    stray().await;
    let stats = patient.publish_due().await.unwrap();
    assert_eq!((stats.published, stats.unroutable), (0, 1));

    // A queue is bound now, but within the recheck window the relay does not look again.
    let late = QueueSpec::new(&bench.broker, "late-consumer", &bench.env.config.consumer)
        .bind(Stray::TYPE);
    let channel = bench.broker.channel().await.unwrap();
    late.declare(&bench.broker, &channel).await.unwrap();
    stray().await;
    let stats = patient.publish_due().await.unwrap();
    assert_eq!((stats.published, stats.unroutable), (0, 1));
    assert_eq!(
        bench.ready_count(&late.name).await,
        0,
        "skipped, not published"
    );

    // With the recheck at 0 every row is published, and the bound queue gets it.
    let eager = relay_with(0);
    stray().await;
    let stats = eager.publish_due().await.unwrap();
    assert_eq!((stats.published, stats.unroutable), (1, 0));
    eventually("the event in the late queue", WAIT, || async {
        (bench.ready_count(&late.name).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn in_a_mixed_batch_exactly_the_unroutable_messages_are_reported() {
    let bench = Bench::new().await;
    let publisher = Publisher::new(bench.broker.clone());
    let channel = bench.broker.channel().await.unwrap();
    bench.queue.declare(&bench.broker, &channel).await.unwrap();
    let routable = bench.queue.bindings[0].clone();
    // Many messages in one pipelined batch, so the broker acks several at once.
    let messages: Vec<OutgoingMessage> = (0..200)
        .map(|i| {
            let key = if i % 3 == 0 {
                "nobody.listens"
            } else {
                routable.as_str()
            };
            let mut message =
                OutgoingMessage::new(bench.broker.events_exchange(), key, b"{}".to_vec());
            message.message_id = Some(format!("m{i}"));
            message
        })
        .collect();
    let results = publisher.publish_batch(&messages).await.unwrap();
    for (i, result) in results.iter().enumerate() {
        if i % 3 == 0 {
            assert!(
                matches!(result, Err(PublishError::Unroutable { .. })),
                "m{i}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "m{i}: {result:?}");
        }
    }
}

#[tokio::test]
async fn a_delayed_event_waits_for_its_time_and_the_running_relay_wakes_for_it() {
    let bench = Bench::new().await;
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let mut tx = bench.pool.begin().await.unwrap();
    outbox::enqueue_at(&mut tx, CloudEvent::new("test", Ping { n: 9 }), Some(due))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(bench.relay.drain().await.unwrap(), 0, "not due yet");

    tokio::spawn(bench.relay.clone().run(bench.shutdown.clone()));
    eventually("the delayed event in the queue", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 1).then_some(())
    })
    .await;
    assert!(
        chrono::Utc::now() >= due,
        "published before its available_at"
    );
}

#[tokio::test]
async fn the_running_relay_publishes_a_commit_without_being_asked() {
    let bench = Bench::new().await;
    tokio::spawn(bench.relay.clone().run(bench.shutdown.clone()));
    bench.commit_ping(3).await;
    eventually("the event in the queue", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_delivery_limit_dead_letters_a_message_that_keeps_crashing_its_consumer() {
    use lapin::options::{BasicConsumeOptions, BasicNackOptions};
    let bench = Bench::new().await;
    bench.commit_ping(13).await;
    bench.relay.drain().await.unwrap();

    // A consumer that "crashes" on every delivery: the message goes back unacknowledged.
    let channel = bench.broker.channel().await.unwrap();
    let mut deliveries = channel
        .basic_consume(
            &bench.queue.name,
            "crashing",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dlq = bench.queue.dead_letter_queue();
    let mut redeliveries = 0;
    while bench.ready_count(&dlq).await == 0 {
        let next = tokio::time::timeout(
            Duration::from_millis(500),
            futures::StreamExt::next(&mut deliveries),
        )
        .await;
        if let Ok(Some(Ok(delivery))) = next {
            redeliveries += 1;
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        assert!(
            redeliveries <= bench.queue.delivery_limit + 1,
            "still redelivered after {redeliveries} deliveries"
        );
    }
    assert!(
        redeliveries >= bench.queue.delivery_limit,
        "dead-lettered after only {redeliveries}"
    );
}

#[tokio::test]
async fn published_rows_past_retention_are_deleted_and_pending_ones_kept() {
    let bench = Bench::new().await;
    bench.commit_ping(1).await;
    bench.relay.drain().await.unwrap();
    let due = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut tx = bench.pool.begin().await.unwrap();
    outbox::enqueue_at(&mut tx, CloudEvent::new("test", Ping { n: 2 }), Some(due))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    sqlx::query("UPDATE outbox SET published_at = now() - interval '25 hours' WHERE published_at IS NOT NULL")
        .execute(&bench.pool)
        .await
        .unwrap();

    let deleted = bench.relay.cleanup().await.unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("SELECT published_at FROM outbox")
            .fetch_all(&bench.pool)
            .await
            .unwrap();
    assert_eq!(left, vec![None], "the pending row stays");
}

/// Holds each delivery until released, so a test can shut down with work in flight.
struct Slow {
    inner: IdempotentEffect,
    started: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl Handler for Slow {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.started.notify_one();
        self.release.notified().await;
        self.inner.handle(message).await
    }
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_messages_and_acks_them() {
    let bench = Bench::new().await;
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let consumer = Consumer::new(
        bench.broker.clone(),
        bench.queue.clone(),
        Slow {
            inner: IdempotentEffect {
                pool: bench.pool.clone(),
                calls: Arc::default(),
            },
            started: started.clone(),
            release: release.clone(),
        },
    )
    .with_prefetch(1);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(consumer.run(shutdown.clone()));
    bench.commit_ping(5).await;
    bench.relay.drain().await.unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("the handler started");

    shutdown.cancel();
    assert!(!running.is_finished(), "stopped with a message in flight");
    release.notify_one();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the consumer stopped")
        .unwrap();
    assert_eq!(
        bench.effects().await,
        1,
        "the in-flight message was applied"
    );
    assert_eq!(
        bench.ready_count(&bench.queue.name).await,
        0,
        "and acked, not requeued"
    );
}

/// Holds every delivery until the test hands out permits, counting how many run at once.
struct Gate {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    permits: tokio::sync::Semaphore,
}

struct Gated(Arc<Gate>);

impl Handler for Gated {
    async fn handle(&self, _: &Incoming) -> Result<(), HandlerError> {
        use std::sync::atomic::Ordering::SeqCst;
        let gate = &self.0;
        let now = gate.running.fetch_add(1, SeqCst) + 1;
        gate.most.fetch_max(now, SeqCst);
        gate.permits.acquire().await.unwrap().forget();
        gate.running.fetch_sub(1, SeqCst);
        gate.done.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_runs_at_most_its_concurrency_of_handlers_and_the_rest_wait() {
    use std::sync::atomic::Ordering::SeqCst;
    let bench = Bench::new().await;
    let gate = Arc::new(Gate {
        running: Default::default(),
        most: Default::default(),
        done: Default::default(),
        permits: tokio::sync::Semaphore::new(0),
    });
    // The prefetch (64) would let all six start at once; the bound lets two.
    let consumer = Consumer::new(
        bench.broker.clone(),
        bench.queue.clone(),
        Gated(gate.clone()),
    )
    .with_concurrency(2);
    tokio::spawn(consumer.run(bench.shutdown.clone()));
    for n in 0..6 {
        bench.commit_ping(n).await;
    }
    bench.relay.drain().await.unwrap();
    eventually("two handlers running", WAIT, || async {
        (gate.running.load(SeqCst) == 2).then_some(())
    })
    .await;
    gate.permits.add_permits(6);
    eventually("all six handled", WAIT, || async {
        (gate.done.load(SeqCst) == 6).then_some(())
    })
    .await;
    assert_eq!(gate.most.load(SeqCst), 2, "handlers running at once");
}

/// Records the size of every batch it is handed.
struct Batches(Arc<Mutex<Vec<usize>>>);

impl Handler for Batches {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(message)).await
    }
}

impl BatchHandler for Batches {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(messages.len());
        Ok(())
    }
}

/// A bench whose consumer takes batches of up to five, lingering `linger` for company; the
/// sizes of the batches it handled.
async fn lingering(linger: Duration) -> (Bench, Arc<Mutex<Vec<usize>>>) {
    let bench = Bench::new().await;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let consumer = Consumer::new(
        bench.broker.clone(),
        bench.queue.clone(),
        Batches(batches.clone()),
    )
    .with_linger(linger);
    tokio::spawn(consumer.run_batched(5, bench.shutdown.clone()));
    (bench, batches)
}

#[tokio::test]
async fn a_lingering_batch_takes_in_what_arrives_after_its_first_message() {
    let (bench, batches) = lingering(Duration::from_secs(30)).await;
    bench.commit_ping(0).await;
    bench.relay.drain().await.unwrap();
    // The first message is with the consumer (none ready in the queue), and its batch waits.
    eventually("the first message delivered", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 0).then_some(())
    })
    .await;
    assert!(batches.lock().unwrap().is_empty(), "{batches:?}");
    for n in 1..5 {
        bench.commit_ping(n).await;
    }
    bench.relay.drain().await.unwrap();
    // Full (five) before the linger is out: handled at once, as one batch.
    eventually("one batch of five", WAIT, || async {
        (!batches.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(*batches.lock().unwrap(), [5]);
}

#[tokio::test]
async fn an_awaited_message_is_handled_without_lingering_for_company() {
    let (bench, batches) = lingering(Duration::from_secs(600)).await;
    let ping = CloudEvent::new("test", Ping { n: 1 });
    let mut message = OutgoingMessage::new(
        bench.broker.events_exchange(),
        Ping::TYPE,
        serde_json::to_vec(&ping).unwrap(),
    )
    .with_header(
        shared::broker::HEADER_AWAITED,
        lapin::types::AMQPValue::ShortShortUInt(1),
    );
    message.message_id = Some(ping.id.to_string());
    Publisher::new(bench.broker.clone())
        .publish(&message)
        .await
        .unwrap();
    // Alone, long before its ten-minute linger is out.
    eventually("the awaited message handled", WAIT, || async {
        (!batches.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(*batches.lock().unwrap(), [1]);
}

#[tokio::test]
async fn consumer_and_relay_recover_when_the_broker_drops_their_connections() {
    let bench = Bench::new().await;
    let calls = Arc::new(Mutex::new(0));
    bench.consume(IdempotentEffect {
        pool: bench.pool.clone(),
        calls: calls.clone(),
    });
    tokio::spawn(bench.relay.clone().run(bench.shutdown.clone()));
    bench.commit_ping(1).await;
    eventually("the first event applied", WAIT, || async {
        (bench.effects().await == 1).then_some(())
    })
    .await;

    // Close every connection of this broker handle from the server side, as a broker restart would.
    // The management API lists a new connection only after its next statistics round.
    let name = format!("test-{}", bench.env.id);
    eventually(
        "the management API to list the connection",
        WAIT,
        || async { (close_connections(&bench.env.config, &name).await > 0).then_some(()) },
    )
    .await;

    bench.commit_ping(2).await;
    eventually("the event after the reconnect applied", WAIT, || async {
        (bench.effects().await == 2).then_some(())
    })
    .await;
}

/// Closes the broker connections named `name` through the management API; returns how many.
async fn close_connections(config: &Config, name: &str) -> usize {
    let http = reqwest::Client::new();
    let base = config.amqp.management_url.trim_end_matches('/');
    let connections: Vec<serde_json::Value> = http
        .get(format!("{base}/api/connections"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut closed = 0;
    for connection in connections {
        if connection["client_properties"]["connection_name"] == name {
            let id = connection["name"].as_str().unwrap();
            let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            http.delete(format!("{base}/api/connections/{encoded}"))
                .basic_auth("guest", Some("guest"))
                .send()
                .await
                .unwrap();
            closed += 1;
        }
    }
    closed
}

/// Fails each event's first delivery once `fail_first` is set on a `test.ping` numbered 2;
/// records (event id, n, attempt) of every event it is handed, then applies it once.
struct Records {
    seen: Arc<Mutex<Vec<(uuid::Uuid, u32, u32)>>>,
    inner: IdempotentEffect,
}

impl Handler for Records {
    async fn handle(&self, message: &Incoming) -> Result<(), HandlerError> {
        let ping: Ping = message
            .event
            .decode()
            .map_err(|e| HandlerError::Reject(e.into()))?;
        self.seen
            .lock()
            .unwrap()
            .push((message.event.id, ping.n, message.attempt));
        if ping.n == 2 && message.attempt == 1 {
            return Err(HandlerError::Retry(anyhow::anyhow!(
                "the second event fails once"
            )));
        }
        self.inner.handle(message).await
    }
}

impl BatchHandler for Records {
    async fn handle_batch(&self, messages: &[Incoming]) -> Result<(), HandlerError> {
        for message in messages {
            self.handle(message).await?;
        }
        Ok(())
    }
}

/// An `events.batch` of three pings and an event of a type the queue does not want.
async fn publish_batch(bench: &Bench) -> Vec<uuid::Uuid> {
    let pings: Vec<CloudEvent> = (1..=3)
        .map(|n| CloudEvent::new("test", Ping { n }).into_untyped().unwrap())
        .collect();
    let mut events = pings.clone();
    events.insert(
        1,
        CloudEvent::new("test", Unwanted {}).into_untyped().unwrap(),
    );
    let batch = CloudEvent::new("test", EventsBatch { events });
    let mut message = OutgoingMessage::new(
        bench.broker.events_exchange(),
        "test.batch",
        serde_json::to_vec(&batch).unwrap(),
    );
    message.message_id = Some(batch.id.to_string());
    Publisher::new(bench.broker.clone())
        .publish(&message)
        .await
        .unwrap();
    pings.iter().map(|e| e.id).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Unwanted {}

impl EventPayload for Unwanted {
    const TYPE: &'static str = "other.unwanted";
    fn subject(&self) -> String {
        String::new()
    }
}

#[tokio::test]
async fn a_batch_of_events_is_applied_event_by_event_and_retried_as_one() {
    for batched in [false, true] {
        let bench = Bench::new().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Records {
            seen: seen.clone(),
            inner: IdempotentEffect {
                pool: bench.pool.clone(),
                calls: Arc::default(),
            },
        };
        let consumer = Consumer::new(bench.broker.clone(), bench.queue.clone(), handler);
        match batched {
            true => tokio::spawn(consumer.run_batched(10, bench.shutdown.clone())),
            false => tokio::spawn(consumer.run(bench.shutdown.clone())),
        };
        let ids = publish_batch(&bench).await;
        eventually("the three pings applied", WAIT, || async {
            (bench.effects().await == 3).then_some(())
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        // In the batch's order, without the unwanted type; the whole batch again after the
        // second failed (the first seen again, applied once), each under its own id. A
        // failed batch of deliveries is first tried delivery by delivery, at the same attempt.
        let order: Vec<(u32, u32)> = seen.iter().map(|(_, n, a)| (*n, *a)).collect();
        let mut expected = vec![(1, 1), (2, 1)];
        if batched {
            expected.extend([(1, 1), (2, 1)]);
        }
        expected.extend([(1, 2), (2, 2), (3, 2)]);
        assert_eq!(order, expected, "batched: {batched}");
        assert_eq!(seen[0].0, ids[0]);
        assert_eq!(seen.last().unwrap().0, ids[2]);
        let applied: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT event_id FROM effects ORDER BY n")
                .fetch_all(&bench.pool)
                .await
                .unwrap();
        assert_eq!(applied, ids);
        eventually("the queue to drain", WAIT, || async {
            (bench.ready_count(&bench.queue.name).await == 0).then_some(())
        })
        .await;
        assert_eq!(bench.ready_count(&bench.queue.dead_letter_queue()).await, 0);
    }
}

#[tokio::test]
async fn a_relay_round_goes_out_as_one_batch_and_an_upgraded_queue_drops_its_single_bindings() {
    let bench = Bench::new().await;
    let config = &bench.env.config.consumer;
    let channel = bench.broker.channel().await.unwrap();
    // As an earlier version declared it: one message per event.
    QueueSpec::new(&bench.broker, "upgraded", config)
        .bind("test.ping")
        .declare(&bench.broker, &channel)
        .await
        .unwrap();
    let upgraded =
        QueueSpec::new(&bench.broker, "upgraded", config).batches_of("test", &["test.ping"]);
    upgraded.declare(&bench.broker, &channel).await.unwrap();
    let relay = Relay::new(
        bench.pool.clone(),
        Publisher::new(bench.broker.clone()),
        bench.env.config.outbox.clone(),
    )
    .batching("test");
    for n in 0..3 {
        bench.commit_ping(n).await;
    }
    assert_eq!(relay.drain().await.unwrap(), 3);
    // The confirms are in: the three singles went to the `test.#` queue only, and the
    // upgraded queue holds one message, the batch of all three.
    assert_eq!(bench.ready_count(&bench.queue.name).await, 3);
    assert_eq!(bench.ready_count(&upgraded.name).await, 1);
    let got = channel
        .basic_get(&upgraded.name, BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the batch");
    let batch: CloudEvent = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(got.delivery.routing_key.as_str(), "events.batch.test");
    let events = batch.decode::<EventsBatch>().unwrap().events;
    let numbers: Vec<u32> = events
        .iter()
        .map(|e| e.decode::<Ping>().unwrap().n)
        .collect();
    assert_eq!(numbers, [0, 1, 2]);
}

#[tokio::test]
async fn a_transactions_messages_share_rows_and_a_refused_one_is_retried_alone() {
    outbox::set_grouping(true);
    let bench = Bench::new().await;
    // A command for a pool whose queue does not exist yet, then 300 events, in one transaction.
    let dispatch = outbox::Pending::new(
        CloudEvent::new("test", Ping { n: 0 }),
        outbox::Route {
            routing_key: Some("job.dispatch.later".into()),
            priority: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    let dispatch_id = dispatch.event.id;
    let mut pending = vec![dispatch];
    for n in 1..=300 {
        pending.push(
            outbox::Pending::new(CloudEvent::new("test", Ping { n }), Default::default()).unwrap(),
        );
    }
    let mut tx = bench.pool.begin().await.unwrap();
    outbox::enqueue_all(&mut tx, pending).await.unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT routing_key, messages FROM outbox ORDER BY seq")
            .fetch_all(&bench.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            (outbox::GROUP_KEY.to_string(), outbox::GROUP_MAX as i32),
            (
                outbox::GROUP_KEY.to_string(),
                301 - outbox::GROUP_MAX as i32
            )
        ]
    );
    let listed: i64 = sqlx::query_scalar("SELECT count(DISTINCT id) FROM outbox_messages")
        .fetch_one(&bench.pool)
        .await
        .unwrap();
    assert_eq!(listed, 301, "the view shows every message");

    // Every event goes out; the command nobody can take yet is split out, to be retried.
    assert_eq!(bench.relay.drain().await.unwrap(), 300);
    eventually("the 300 events in the queue", WAIT, || async {
        (bench.ready_count(&bench.queue.name).await == 300).then_some(())
    })
    .await;
    let left: Vec<(uuid::Uuid, i32, Option<String>, Option<i16>)> = sqlx::query_as(
        "SELECT id, attempts, last_error, priority FROM outbox WHERE published_at IS NULL",
    )
    .fetch_all(&bench.pool)
    .await
    .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].0, left[0].1, left[0].3), (dispatch_id, 1, Some(3)));
    assert!(left[0]
        .2
        .as_deref()
        .unwrap_or_default()
        .contains("unroutable"));

    // Once its queue exists, the retry delivers it, with its priority.
    let pool_queue = QueueSpec::new(&bench.broker, "pool-later", &bench.env.config.consumer)
        .bind("job.dispatch.later");
    let channel = bench.broker.channel().await.unwrap();
    pool_queue.declare(&bench.broker, &channel).await.unwrap();
    sqlx::query("UPDATE outbox SET available_at = now() WHERE published_at IS NULL")
        .execute(&bench.pool)
        .await
        .unwrap();
    assert_eq!(bench.relay.drain().await.unwrap(), 1);
    let got = channel
        .basic_get(&pool_queue.name, BasicGetOptions::default())
        .await
        .unwrap()
        .expect("the dispatch reached its queue");
    assert_eq!(got.properties.priority(), &Some(3));
    assert_eq!(
        got.properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        Some(dispatch_id.to_string())
    );
}
