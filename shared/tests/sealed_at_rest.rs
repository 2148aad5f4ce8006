//! Secrets kept in a database: what an earlier version kept in the clear, or sealed under a key
//! being rotated out, is sealed under the current key at start, and still opens.

use shared::seal::AtRest;
use shared::testkit::TestEnv;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn values_kept_in_the_clear_or_under_an_old_key_are_sealed_again_and_still_open() {
    let env = TestEnv::new();
    let shutdown = CancellationToken::new();
    let pool = shared::db::connect(
        &env.config.postgres,
        &env.config.notify.database,
        &sqlx::migrate::Migrator::DEFAULT,
        &shutdown,
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE hooks (id uuid PRIMARY KEY, secret text)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE secrets (name text PRIMARY KEY, value bytea NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let old = AtRest::new(b"the old key, thirty-two bytes long", &[]);
    let rotated = AtRest::new(
        b"the new key, thirty-two bytes long",
        &[b"the old key, thirty-two bytes long"],
    );
    let under_old = old.seal(b"whsec_old");
    for (secret, n) in [
        (Some("whsec_plain"), 1u8),
        (Some(under_old.as_str()), 2),
        (None, 3),
    ] {
        sqlx::query("INSERT INTO hooks (id, secret) VALUES ($1, $2)")
            .bind(uuid::Uuid::from_bytes([n; 16]))
            .bind(secret)
            .execute(&pool)
            .await
            .unwrap();
    }
    // A link key an earlier version kept: 32 raw bytes.
    sqlx::query("INSERT INTO secrets (name, value) VALUES ('links', $1)")
        .bind(vec![7u8; 32])
        .execute(&pool)
        .await
        .unwrap();

    let changed = shared::db::reseal_column(&pool, &rotated, "hooks", "secret")
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT secret FROM hooks WHERE secret IS NOT NULL ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let only_new = AtRest::new(b"the new key, thirty-two bytes long", &[]);
    let opened: Vec<String> = kept
        .iter()
        .map(|k| only_new.open_text(k).unwrap())
        .collect();
    assert_eq!(opened, ["whsec_plain", "whsec_old"]);
    assert_eq!(
        shared::db::reseal_column(&pool, &rotated, "hooks", "secret")
            .await
            .unwrap(),
        0,
        "nothing left to seal"
    );

    let key = shared::db::shared_secret(&pool, &rotated, "links", vec![9u8; 32])
        .await
        .unwrap();
    assert_eq!(key, vec![7u8; 32], "the key kept, not the fresh one");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = 'links'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let stored = String::from_utf8(stored).unwrap();
    assert_eq!(only_new.open(&stored).unwrap(), vec![7u8; 32]);
    shutdown.cancel();
}
