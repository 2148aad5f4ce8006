//! The Taskmesh platform crate: what every service shares, so each service holds only its domain.
//!
//! # Layout
//! - [`config`]: layered, typed configuration (defaults, `TASKMESH_CONFIG` TOML, `TASKMESH_*`).
//! - [`telemetry`]: JSON or pretty logs, `RUST_LOG`, the Prometheus recorder.
//! - [`problem`]: [`problem::ApiError`], the one problem+json error type for HTTP answers.
//! - [`events`]: the CloudEvents envelope and typed event payloads.
//! - [`broker`]: RabbitMQ connection with reconnect, topology names, the confirming publisher.
//! - [`consumer`]: the consumer loop with retries through delay queues and dead letters.
//! - [`topology`]: every exchange and consumer queue of the deployment, declared by all; what
//!   the workers' own user may do, made through the management API ([`topology::management`]).
//! - [`outbox`]: the transactional outbox and its relay.
//! - [`idempotency`]: `processed_events`, so redelivered events have one effect.
//! - [`identity`]: the verified caller and its [`identity::Role`], passed from the gateway to
//!   services.
//! - [`text_enum`](mod@text_enum): states kept as `text`, each with one checked conversion.
//! - [`paging`]: page sizes (clamped or refused, as each route says) and the next-page rule.
//! - [`openapi`]: the answers every operation shares, added to each service's API description.
//! - [`calls`]: one service calling another's internal routes (assertion, trace, time limit).
//! - [`tasks_api`]: task-svc's routes for other services (paths, limits, types).
//! - [`sessions`]: the Redis mirror of live sessions (written by user-svc, read by the gateway).
//! - [`heartbeat`]: workers' heartbeats in Redis (written by workers, listed by task-svc).
//! - [`db`], [`cache`]: PostgreSQL pools with migrations, Redis connections.
//! - [`health`], [`http`]: `/healthz`, `/readyz`, `/metrics`, common layers, serving.
//! - [`signing`]: HMAC-SHA256 tags for signed links and webhooks; [`seal`]: authenticated
//!   encryption for what is kept where others can read it.
//! - [`trace`]: W3C `traceparent` from the request through the events it causes.
//! - [`startup`], [`shutdown`]: the common start of a service, signals.
//! - [`unreachable`](mod@unreachable): waiting for a store with backoff ([`unreachable::retry`]), told to a
//!   person once every few seconds.
//! - [`backoff`]: waiting between tries ([`backoff::retry`], [`backoff::Backoff`]);
//!   [`background`]: the one periodic loop; [`outbound`]: requests to addresses users give;
//!   [`text`]: one-line text rules; [`batch`]: concurrent calls coalesced into batches;
//!   [`crash`]: crash points the tests trigger (`TASKMESH_CRASH`); [`commands`]: the `command`
//!   kind's templates and payloads (below `config`).
//!
//! Modules depend one way (CI runs `scripts/check-modules`): `problem`, `trace`, `unreachable`
//! and `config` at the bottom; `identity`, `internal`, `db`, `cache`, `broker` and `telemetry`
//! on them; then `outbox`, `consumer`, `topology`, `openapi`, `http`, `health`; `startup` on
//! top.
//! - `testkit` (feature `testkit`): isolated test environments on the real services.

pub mod access_tokens;
pub mod background;
pub mod backoff;
pub mod batch;
pub mod broker;
pub mod cache;
pub mod calls;
pub mod commands;
pub mod config;
pub mod consumer;
pub mod crash;
pub mod db;
pub mod events;
pub mod health;
pub mod heartbeat;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod internal;
pub mod openapi;
pub mod outbound;
pub mod outbox;
pub mod paging;
pub mod problem;
pub mod scopes;
pub mod seal;
pub mod sessions;
pub mod shutdown;
pub mod signing;
pub mod startup;
pub mod tasks_api;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod text;
pub mod text_enum;
pub mod topology;
pub mod trace;
pub mod unreachable;

pub use config::Config;
pub use problem::ApiError;
