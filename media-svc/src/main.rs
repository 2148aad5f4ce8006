#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("media-svc", |c| c.media.bind, media_svc::run).await
}
