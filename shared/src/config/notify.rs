//! notify-svc's settings: how mail leaves (`smtp`), what notifications link to and how often
//! a person may be mailed (`notifications`), outgoing webhooks (`webhooks`) and the SMS provider
//! (`sms`).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::ConfigError;

/// Outgoing mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The SMTP server, e.g. `smtp://user:pass@mail.example.com:587?tls=required` (STARTTLS),
    /// `smtps://user:pass@mail.example.com:465` (TLS) or `smtp://127.0.0.1:1025` (plain, local
    /// catchers). Unset: every mail is written as an `.eml` file into `mail_dir` instead.
    pub url: Option<SecretString>,
    /// The `From` of every mail.
    pub from: String,
    /// Where mail goes without an SMTP server (one `<message-id hash>.eml` per mail).
    pub mail_dir: String,
    /// Longest wait for the SMTP server, per command.
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            url: None,
            from: "Taskmesh <taskmesh@localhost>".into(),
            mail_dir: ".taskmesh/mail".into(),
            timeout_secs: 10,
        }
    }
}

/// What notifications link to and how much mail one person gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The platform's public base URL: links in notifications and unsubscribe links point here.
    pub public_url: String,
    /// Mails one person gets per hour; the rest wait for one digest mail.
    pub email_hourly_cap: u32,
    /// How often held mails are checked for a digest.
    pub digest_interval_secs: u64,
    /// Key of the HMAC that signs unsubscribe links. Unset: a random key made once and kept in
    /// notify-svc's database (shared by its replicas). At least 32 bytes.
    pub link_secret: Option<SecretString>,
    /// Days an unsubscribe link works after its mail was sent.
    pub unsubscribe_link_days: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            email_hourly_cap: 20,
            digest_interval_secs: 60,
            link_secret: None,
            unsubscribe_link_days: 90,
        }
    }
}

/// Outgoing webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Hosts, IP addresses or CIDR ranges endpoints may use although they are loopback, private
    /// or link-local (refused by default: SSRF guard), like `workers.http_allow`.
    pub allow: Vec<String>,
    /// Longest wait for one delivery (connect and answer).
    pub timeout_secs: u64,
    /// Delay before each attempt, in seconds; the first is normally 0. After the last, the
    /// delivery has failed. Default: Svix's schedule (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
    pub schedule_secs: Vec<u64>,
    /// An endpoint whose deliveries have all failed for this long is disabled and its owner told.
    pub disable_after_secs: u64,
    /// After a secret rotation, how long deliveries are also signed with the previous secret.
    pub secret_overlap_secs: u64,
    /// Deliveries in flight at once, over all endpoints.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint (a slow endpoint holds only these).
    pub per_endpoint: usize,
    /// Deliveries in flight at once to one user's endpoints together (many slow endpoints of
    /// one user hold only these).
    pub per_user: usize,
    /// Endpoints one user may register.
    pub max_endpoints_per_user: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout_secs: 10,
            schedule_secs: vec![0, 5, 300, 1800, 7200, 18000, 36000, 36000],
            disable_after_secs: 5 * 24 * 3600,
            secret_overlap_secs: 24 * 3600,
            concurrency: 64,
            per_endpoint: 4,
            per_user: 16,
            max_endpoints_per_user: 20,
        }
    }
}

/// The SMS provider (a Twilio-style HTTP API). Off while `base_url` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// e.g. `https://api.twilio.com`; messages are POSTed to
    /// `<base_url>/2010-04-01/Accounts/<account>/Messages.json`.
    pub base_url: String,
    pub account: String,
    pub token: Option<SecretString>,
    /// The sending number (E.164).
    pub from: String,
    /// Longest wait for the provider.
    pub timeout_secs: u64,
    /// Texts one person gets per hour; past it they are not sent (texts cost money, and a
    /// person could otherwise make the platform text any number without end).
    pub hourly_cap: u32,
    /// Number prefixes (E.164) refused as SMS numbers: premium-rate and shared-cost ranges,
    /// satellite and international networks, where a text costs the platform money someone
    /// else earns.
    pub refused_prefixes: Vec<String>,
}

/// Premium-rate and costly ranges refused by default: North America's 900 and 976, the UK's
/// 09 and 087, Germany's 0900 and 0137, France's 089, Italy's 899, Spain's 803/806/807/905,
/// Australia's 19, and the international and satellite codes (+800's free phones excepted).
pub const PREMIUM_PREFIXES: &[&str] = &[
    "+1900", "+1976", "+449", "+4487", "+49900", "+49137", "+3389", "+39899", "+34803", "+34806",
    "+34807", "+34905", "+6119", "+870", "+881", "+882", "+883", "+979", "+991",
];

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            account: String::new(),
            token: None,
            from: String::new(),
            timeout_secs: 10,
            hourly_cap: 10,
            refused_prefixes: PREMIUM_PREFIXES.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl SmsConfig {
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty()
    }
}

pub(super) fn validate(
    smtp: &SmtpConfig,
    notifications: &NotificationsConfig,
    webhooks: &WebhooksConfig,
    sms: &SmsConfig,
) -> Result<(), ConfigError> {
    if let Some(url) = &smtp.url {
        let parsed = url::Url::parse(url.expose_secret())
            .map_err(|e| ConfigError(format!("smtp.url is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") {
            return Err(ConfigError("smtp.url must use smtp:// or smtps://".into()));
        }
    }
    if smtp.from.parse::<lettre_free::Mailbox>().is_err() {
        return Err(ConfigError(format!(
            "smtp.from is not a mailbox: {:?}",
            smtp.from
        )));
    }
    url::Url::parse(&notifications.public_url)
        .map_err(|e| ConfigError(format!("notifications.public_url is not a URL: {e}")))?;
    if notifications.unsubscribe_link_days == 0 {
        return Err(ConfigError(
            "notifications.unsubscribe_link_days must be at least 1".into(),
        ));
    }
    if notifications.email_hourly_cap == 0 {
        return Err(ConfigError(
            "notifications.email_hourly_cap must be at least 1".into(),
        ));
    }
    let hooks = webhooks;
    if hooks.schedule_secs.is_empty()
        || hooks.concurrency == 0
        || hooks.per_endpoint == 0
        || hooks.per_user == 0
    {
        return Err(ConfigError(
            "webhooks.schedule_secs, webhooks.concurrency, webhooks.per_endpoint and webhooks.per_user must not be empty or 0".into(),
        ));
    }
    if sms.enabled() {
        url::Url::parse(&sms.base_url)
            .map_err(|e| ConfigError(format!("sms.base_url is not a URL: {e}")))?;
    }
    Ok(())
}

/// A light check of `Name <addr@host>` or `addr@host` (lettre, which parses it for real, is not
/// a dependency of every service).
mod lettre_free {
    pub struct Mailbox;

    impl std::str::FromStr for Mailbox {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let addr = match (s.rfind('<'), s.rfind('>')) {
                (Some(open), Some(close)) if open < close => &s[open + 1..close],
                (None, None) => s.trim(),
                _ => return Err(()),
            };
            match addr.split_once('@') {
                Some((local, host)) if !local.is_empty() && !host.is_empty() => Ok(Mailbox),
                _ => Err(()),
            }
        }
    }
}
