//! Redis and RabbitMQ helpers.

pub mod amqp_pools;
pub mod workers;
