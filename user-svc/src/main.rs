#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("user-svc", |c| c.user.bind, user_svc::run).await
}
