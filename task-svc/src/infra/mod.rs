//! Redis and RabbitMQ helpers.

pub mod amqp_pools;
pub mod dispatch_marks;
pub mod list_cache;
pub mod pauses;
pub mod workers;
