//! SMS: a provider trait and one provider, a Twilio-style HTTP API
//! (`POST <base>/2010-04-01/Accounts/<account>/Messages.json`, form `To`, `From`, `Body`,
//! basic auth with the account and token).

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use shared::config::SmsConfig;

/// Why a text did not leave.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider cannot be reached: the text waits for it without spending attempts.
    #[error("{0}")]
    Unreachable(String),
    /// The provider answered "later" (5xx, 429): retried a limited number of times.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// Something that sends a text to an E.164 number.
pub trait Provider: Send + Sync {
    fn send<'a>(
        &'a self,
        to: &'a str,
        body: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), SmsError>>;
}

/// The configured provider, `None` while SMS is off.
pub fn from_config(config: &SmsConfig) -> anyhow::Result<Option<Arc<dyn Provider>>> {
    if !config.enabled() {
        return Ok(None);
    }
    Ok(Some(Arc::new(TwilioStyle {
        endpoint: format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url.trim_end_matches('/'),
            config.account
        ),
        account: config.account.clone(),
        token: config.token.clone(),
        from: config.from.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    })))
}

struct TwilioStyle {
    endpoint: String,
    account: String,
    token: Option<SecretString>,
    from: String,
    client: reqwest::Client,
}

impl Provider for TwilioStyle {
    fn send<'a>(
        &'a self,
        to: &'a str,
        body: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), SmsError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.endpoint)
                .basic_auth(
                    &self.account,
                    self.token.as_ref().map(|t| t.expose_secret().to_string()),
                )
                .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
                .send()
                .await
                .map_err(|e| {
                    // Not connected: the text surely did not leave. Anything later (a timeout
                    // waiting for the answer) may have sent it: retried a limited number of times.
                    let connect = e.is_connect();
                    let why = format!("sms provider: {}", e.without_url());
                    if connect {
                        SmsError::Unreachable(why)
                    } else {
                        SmsError::Transient(why)
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            let message = format!("sms provider answered {status}: {text}");
            if status.is_server_error() || status.as_u16() == 429 {
                Err(SmsError::Transient(message))
            } else {
                Err(SmsError::Permanent(message))
            }
        })
    }
}
