//! What notify-svc knows without a database: the kinds of notification, the channels they go
//! out on with their defaults, and who hears about what ([`recipients`]).

pub mod recipients;
mod texts;

use serde::{Deserialize, Serialize};

/// A kind of notification: the event type that causes it (plus `webhook.disabled`, which
/// notify-svc raises itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Kind {
    #[serde(rename = "task.assigned")]
    TaskAssigned,
    #[serde(rename = "task.mentioned")]
    TaskMentioned,
    #[serde(rename = "task.status_changed")]
    TaskStatusChanged,
    #[serde(rename = "task.completed")]
    TaskCompleted,
    #[serde(rename = "task.due_soon")]
    TaskDueSoon,
    #[serde(rename = "task.failed")]
    TaskFailed,
    #[serde(rename = "task.dead")]
    TaskDead,
    #[serde(rename = "workflow.failed")]
    WorkflowFailed,
    #[serde(rename = "channel.joined")]
    ChannelJoined,
    #[serde(rename = "user.created")]
    Welcome,
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// The link that verifies an address: mailed to it whatever the preferences, not a kind
    /// anyone chooses or subscribes to.
    #[serde(rename = "email.verification")]
    EmailVerification,
    /// The code that verifies an SMS number: texted to it whatever the preferences.
    #[serde(rename = "sms.verification")]
    SmsVerification,
}

shared::text_enum!(Kind, "notification kind", {
    TaskAssigned = "task.assigned",
    TaskMentioned = "task.mentioned",
    TaskStatusChanged = "task.status_changed",
    TaskCompleted = "task.completed",
    TaskDueSoon = "task.due_soon",
    TaskFailed = "task.failed",
    TaskDead = "task.dead",
    WorkflowFailed = "workflow.failed",
    ChannelJoined = "channel.joined",
    Welcome = "user.created",
    WebhookDisabled = "webhook.disabled",
    EmailVerification = "email.verification",
    SmsVerification = "sms.verification",
});

impl Kind {
    /// The kinds people choose channels for and webhooks subscribe to: all but the platform's
    /// own verification messages.
    pub fn choosable() -> impl Iterator<Item = Kind> {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| !matches!(k, Kind::EmailVerification | Kind::SmsVerification))
    }

    /// The choosable kind named `name`.
    pub fn parse_choosable(name: &str) -> Option<Kind> {
        name.parse()
            .ok()
            .filter(|k| Kind::choosable().any(|c| c == *k))
    }

    /// Whether `channel` is on for a person who has not chosen: in-app for everything but job
    /// attempts that will be retried; email for what needs acting on (assignment, a mention, due soon, a
    /// dead job, a failed workflow, welcome, a disabled webhook); webhooks for every kind an
    /// endpoint subscribes to; SMS never (opt-in).
    pub fn default_on(self, channel: Channel) -> bool {
        match channel {
            Channel::InApp => self != Kind::TaskFailed,
            Channel::Email => matches!(
                self,
                Kind::TaskAssigned
                    | Kind::TaskMentioned
                    | Kind::TaskDueSoon
                    | Kind::TaskDead
                    | Kind::WorkflowFailed
                    | Kind::Welcome
                    | Kind::WebhookDisabled
            ),
            Channel::Webhook => true,
            Channel::Sms => false,
        }
    }
}

/// A way a notification reaches a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    InApp,
    Email,
    Webhook,
    Sms,
}

shared::text_enum!(Channel, "channel", {
    InApp = "in_app",
    Email = "email",
    Webhook = "webhook",
    Sms = "sms",
});

/// Whether `phone` starts with one of `refused` (premium-rate and costly ranges).
pub fn refused_phone(phone: &str, refused: &[String]) -> bool {
    refused
        .iter()
        .any(|prefix| phone.starts_with(prefix.as_str()))
}

/// Whether `phone` is an E.164 number: `+`, a country code not starting with 0, 7 to 15 digits.
pub fn valid_phone(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for &kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>().ok(), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert!("task.created".parse::<Kind>().is_err());
        assert_eq!(
            Kind::parse_choosable("task.assigned"),
            Some(Kind::TaskAssigned)
        );
        assert_eq!(Kind::parse_choosable("email.verification"), None);
        shared::text_enum::assert_serde_names(Channel::ALL, |c| c.as_str());
    }

    #[test]
    fn defaults_mail_what_needs_acting_on_and_never_text() {
        assert!(Kind::TaskAssigned.default_on(Channel::Email));
        assert!(Kind::TaskDueSoon.default_on(Channel::InApp));
        assert!(!Kind::TaskStatusChanged.default_on(Channel::Email));
        assert!(!Kind::TaskFailed.default_on(Channel::InApp));
        assert!(Kind::ALL.iter().all(|k| !k.default_on(Channel::Sms)));
    }

    #[test]
    fn premium_ranges_are_refused_by_default() {
        let refused: Vec<String> = shared::config::PREMIUM_PREFIXES
            .iter()
            .map(|p| p.to_string())
            .collect();
        for premium in [
            "+19005550100",
            "+449098790000",
            "+4990012345678",
            "+881612345678",
        ] {
            assert!(refused_phone(premium, &refused), "{premium}");
        }
        for ordinary in [
            "+15551234567",
            "+447700900123",
            "+4915112345678",
            "+8005551234",
        ] {
            assert!(!refused_phone(ordinary, &refused), "{ordinary}");
        }
    }

    #[test]
    fn phones_are_e164() {
        assert!(valid_phone("+15551234567"));
        assert!(!valid_phone("15551234567"));
        assert!(!valid_phone("+0555123"));
        assert!(!valid_phone("+1555-123"));
        assert!(!valid_phone("+1234567890123456"));
    }
}
