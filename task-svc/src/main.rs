#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::startup::service_main("task-svc", |c| c.task.bind, task_svc::run).await
}
