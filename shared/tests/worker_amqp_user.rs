//! The workers' RabbitMQ user made through this machine's RabbitMQ management API (the
//! rabbitmq_management plugin, which `scripts/test` turns on).

use reqwest::Method;
use serde_json::json;
use shared::topology::management::{encode, ensure_worker_user, Management, ManagementError};

/// Against this machine's RabbitMQ: a user with tags keeps them (`--user` naming an
/// administrator by mistake changes nothing), a plain one is taken.
#[tokio::test]
async fn a_user_with_tags_is_never_made_the_workers() {
    let mut amqp = shared::config::AmqpConfig::default();
    if let Ok(url) = std::env::var("TASKMESH_AMQP__URL") {
        amqp.url = url.into();
    }
    let api = Management::of(&amqp).unwrap();
    let name = format!("test-tagged-{}", uuid::Uuid::new_v4().simple());
    let path = format!("users/{}", encode(&name));
    let tagged = json!({"password": "before", "tags": "monitoring"});
    api.send(Method::PUT, &path, Some(tagged)).await.unwrap();

    let refused = ensure_worker_user(&amqp, &name, "after").await.unwrap_err();
    let user: serde_json::Value = api
        .send(Method::GET, &path, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plain = json!({"password": "before", "tags": ""});
    api.send(Method::PUT, &path, Some(plain)).await.unwrap();
    let taken = ensure_worker_user(&amqp, &name, "after").await;
    api.send(Method::DELETE, &path, None).await.unwrap();
    assert!(matches!(refused, ManagementError::Invalid(_)), "{refused}");
    assert!(refused.to_string().contains("with tags"), "{refused}");
    assert!(user["tags"].to_string().contains("monitoring"), "{user}");
    taken.unwrap();
}
