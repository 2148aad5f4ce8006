//! `taskmesh worker-amqp-user`: the workers' own RabbitMQ user, made (or brought up to date)
//! through the management API as the services' user, or the `rabbitmqctl` commands that make it.

use std::time::Duration;

use shared::backoff::Stopped;
use shared::config::AmqpConfig;
use shared::topology::management::{self, ManagementError};
use tokio_util::sync::CancellationToken;

/// The variable that holds the password of the workers' user: never an argument, which every
/// process of the machine can read, and never logged.
pub const PASSWORD_VAR: &str = "RABBITMQ_WORKER_PASSWORD";

/// How long the management API may take to answer: it comes up after the broker's AMQP port,
/// which is what a container's health check sees.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Makes the workers' user `user` with the password in [`PASSWORD_VAR`] and the permissions of
/// `shared::topology::worker_permissions` for `amqp.namespace`, on the vhost of `amqp.url`, as
/// that URL's user (an administrator). While the API does not answer it tries again for up to
/// [`DEADLINE`], told once every few seconds; a refusal (a wrong password, a user without the
/// administrator tag, no such vhost) fails at once. Idempotent.
pub async fn ensure(
    amqp: &AmqpConfig,
    user: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let password = std::env::var(PASSWORD_VAR)
        .ok()
        .filter(|password| !password.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "set {PASSWORD_VAR} to the password of the workers' RabbitMQ user {user} (the one \
                 in their TASKMESH_AMQP__URL)"
            )
        })?;
    let password = password.as_str();
    let url = amqp.management_url.as_str();
    let policy = shared::unreachable::STORE.give_up_after(DEADLINE);
    let retryable = |error: &ManagementError| {
        if error.is_transient() {
            let error = error.to_string();
            shared::unreachable::report("rabbitmq-management", url, "worker-amqp-user", &error);
        }
        error.is_transient()
    };
    let made = shared::backoff::retry(policy, shutdown, retryable, || {
        management::ensure_worker_user(amqp, user, password)
    })
    .await;
    match made {
        Ok(()) => {
            let vhost = management::vhost(amqp)?;
            tracing::info!(user, %vhost, "the workers' RabbitMQ user is in place");
            Ok(())
        }
        Err(Stopped::Final(error)) => Err(error.into()),
        Err(Stopped::GaveUp(error)) => Err(anyhow::anyhow!(
            "gave up after {}s: {error}",
            DEADLINE.as_secs()
        )),
        Err(Stopped::Shutdown) => Err(anyhow::anyhow!(
            "stopped while waiting for the RabbitMQ management API"
        )),
    }
}

/// The `rabbitmqctl` commands that make the workers' user `user` (its password from
/// `$RABBITMQ_WORKER_PASSWORD` in the shell that runs them, given on standard input so that no
/// process list shows it; for a user that exists already, `change_password` the same way) and
/// give it its permissions, one a line, for a broker whose management API cannot be reached.
pub fn rabbitmqctl_commands(amqp: &AmqpConfig, user: &str) -> anyhow::Result<String> {
    let vhost = quote(&management::vhost(amqp)?);
    let can = shared::topology::worker_permissions(&amqp.namespace);
    let user = quote(user);
    Ok(format!(
        "printf '%s\\n' \"${PASSWORD_VAR}\" | rabbitmqctl add_user {user}\n\
         rabbitmqctl set_permissions -p {vhost} {user} {} {} {}\n\
         rabbitmqctl set_topic_permissions -p {vhost} {user} {} {} {}\n",
        quote(&can.configure),
        quote(&can.write),
        quote(&can.read),
        quote(&can.exchange),
        quote(&can.topic_write),
        quote(&can.topic_read),
    ))
}

/// `text` as one word for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_give_the_workers_their_permissions_on_the_urls_vhost() {
        let amqp = AmqpConfig {
            url: "amqp://taskmesh:s3cret@mq:5672/taskmesh".into(),
            ..AmqpConfig::default()
        };
        let commands = rabbitmqctl_commands(&amqp, "taskmesh-worker").unwrap();
        let lines: Vec<_> = commands.lines().collect();
        assert_eq!(
            lines[0],
            "printf '%s\\n' \"$RABBITMQ_WORKER_PASSWORD\" | rabbitmqctl add_user 'taskmesh-worker'"
        );
        assert!(lines[1].starts_with(
            "rabbitmqctl set_permissions -p 'taskmesh' 'taskmesh-worker' '^taskmesh\\.(events|"
        ));
        assert!(lines[2].starts_with(
            "rabbitmqctl set_topic_permissions -p 'taskmesh' 'taskmesh-worker' 'taskmesh.events' '^job\\."
        ));
        assert!(!commands.contains("s3cret"));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
