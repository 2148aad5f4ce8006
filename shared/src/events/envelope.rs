//! The CloudEvents envelope and the typed-payload trait.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

/// A typed event body.
pub trait EventPayload: Serialize + DeserializeOwned + Send + Sync {
    /// The CloudEvents `type`, also the routing key on `<namespace>.events`.
    const TYPE: &'static str;
    /// Schema version of this payload; bump on a breaking change.
    const VERSION: u32 = 1;
    /// The CloudEvents `subject`: the id of the thing the event is about.
    fn subject(&self) -> String;
}

/// A CloudEvents 1.0 structured-mode event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudEvent<T = serde_json::Value> {
    pub specversion: String,
    /// UUIDv7: unique and time-ordered; consumers deduplicate on it.
    pub id: Uuid,
    /// The publishing service, e.g. `/taskmesh/task-svc`.
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub dataversion: u32,
    /// W3C trace context of the request that caused the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: T,
}

impl<T: EventPayload> CloudEvent<T> {
    /// Wraps `data` in a new envelope from `service`.
    pub fn new(service: &str, data: T) -> Self {
        Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: format!("/taskmesh/{service}"),
            event_type: T::TYPE.into(),
            subject: Some(data.subject()),
            time: Utc::now(),
            datacontenttype: "application/json".into(),
            dataversion: T::VERSION,
            traceparent: crate::trace::current(),
            data,
        }
    }

    /// The same event with an untyped body, as stored in the outbox.
    pub fn into_untyped(self) -> Result<CloudEvent, serde_json::Error> {
        Ok(CloudEvent {
            specversion: self.specversion,
            id: self.id,
            source: self.source,
            event_type: self.event_type,
            subject: self.subject,
            time: self.time,
            datacontenttype: self.datacontenttype,
            dataversion: self.dataversion,
            traceparent: self.traceparent,
            data: serde_json::to_value(self.data)?,
        })
    }
}

impl CloudEvent {
    /// Reads the body as `T`, refusing another type or an unknown version.
    pub fn decode<T: EventPayload>(&self) -> Result<T, DecodeError> {
        self.check::<T>()?;
        // Read from the body in place: no copy of the whole tree first.
        T::deserialize(&self.data).map_err(DecodeError::Body)
    }

    /// Like [`CloudEvent::decode`], taking the body instead of copying it (a batch's events).
    pub fn into_payload<T: EventPayload>(self) -> Result<T, DecodeError> {
        self.check::<T>()?;
        serde_json::from_value(self.data).map_err(DecodeError::Body)
    }

    fn check<T: EventPayload>(&self) -> Result<(), DecodeError> {
        if self.event_type != T::TYPE {
            return Err(DecodeError::WrongType {
                expected: T::TYPE,
                found: self.event_type.clone(),
            });
        }
        if self.dataversion != T::VERSION {
            return Err(DecodeError::UnknownVersion {
                event_type: T::TYPE,
                version: self.dataversion,
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected a {expected} event, found {found}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("{event_type} version {version} is not known to this consumer")]
    UnknownVersion {
        event_type: &'static str,
        version: u32,
    },
    #[error("event body does not match its type: {0}")]
    Body(serde_json::Error),
}
