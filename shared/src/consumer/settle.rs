//! Settling a delivery that goes elsewhere: a copy to a delay queue or the dead letters,
//! published with confirms before the original is acked.

use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions},
    types::{AMQPValue, LongString},
};

use crate::broker::{
    OutgoingMessage, Publisher, HEADER_ATTEMPT, HEADER_FAILED_AT, HEADER_LAST_ERROR,
    HEADER_ORIGIN_QUEUE,
};

/// Acks `delivery` once `copy` is confirmed; if the copy cannot be published, requeues the
/// original instead (the delivery limit stops an endless loop).
pub(super) async fn settle_after_publish(
    publisher: &Publisher,
    delivery: &Delivery,
    copy: OutgoingMessage,
) -> Result<(), lapin::Error> {
    match publisher.publish(&copy).await {
        Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await,
        Err(err) => {
            tracing::warn!(target_queue = %copy.routing_key, error = %err, "could not move message; requeueing it");
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await
        }
    }
}

/// The message again, addressed to `queue` through the default exchange, with its attempt count
/// and last error in headers.
pub(super) fn copy_of(
    delivery: &Delivery,
    queue: &str,
    attempt: u32,
    error: &str,
    dead_lettered_from: Option<&str>,
) -> OutgoingMessage {
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    let mut message = OutgoingMessage::new("", queue, delivery.data.clone());
    if let Some(headers) = delivery.properties.headers() {
        message.headers = headers.clone();
    }
    if let Some(content_type) = delivery.properties.content_type() {
        message.content_type = content_type.as_str().to_string();
    }
    message.message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str().to_string());
    // Errors can be long (HTTP bodies); headers must stay small.
    let error: String = error.chars().take(1000).collect();
    let mut message = message
        .with_header(HEADER_ATTEMPT, AMQPValue::LongLongInt(i64::from(attempt)))
        .with_header(HEADER_LAST_ERROR, text(&error));
    if let Some(origin) = dead_lettered_from {
        message = message
            .with_header(HEADER_FAILED_AT, text(&chrono::Utc::now().to_rfc3339()))
            .with_header(HEADER_ORIGIN_QUEUE, text(origin));
    }
    message
}
