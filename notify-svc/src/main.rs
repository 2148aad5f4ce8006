#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("notify-svc", |c| c.notify.bind, notify_svc::run).await
}
