#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("worker", |c| c.worker.bind, worker::run).await
}
