#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("api-gateway", |c| c.gateway.bind, api_gateway::run).await
}
