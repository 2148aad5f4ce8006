//! The MCP server itself: initialisation, and each MCP request turned into the REST calls of
//! [`super::tools`], [`super::tasks`] and [`super::content`], acting for the agent whose token
//! came with the HTTP request.

use std::net::SocketAddr;

use axum::{extract::ConnectInfo, Router};
use rmcp::{
    model::*,
    service::{RequestContext, RoleServer},
    ErrorData as McpError, ServerHandler,
};
use serde_json::{json, Value};

use super::rest::{Problem, Rest};
use super::{content, schemas::Schemas, tasks, tools};
use crate::AppState;

#[derive(Clone)]
pub struct Mcp {
    state: AppState,
    api: Router,
}

impl Mcp {
    pub fn new(state: AppState, api: Router) -> Self {
        Self { state, api }
    }

    /// The API as the agent of this MCP request reaches it.
    fn rest(&self, context: &RequestContext<RoleServer>) -> Result<Rest, McpError> {
        let parts = context
            .extensions
            .get::<axum::http::request::Parts>()
            .ok_or_else(|| McpError::internal_error("no HTTP request", None))?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(Rest::new(self.api.clone(), &parts.headers, peer))
    }
}

/// A refusal as a tool's error: the problem's title (and code and detail), never more.
fn tool_error(problem: Problem) -> CallToolResult {
    CallToolResult::structured_error(json!({
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
    }))
}

/// A refusal outside a tool: invalid params for a bad request or something not found, the
/// problem's title otherwise.
fn protocol_error(problem: Problem) -> McpError {
    let message = problem.to_string();
    match problem.status {
        // 409: a job that has ended cannot be cancelled, one still working has no result yet.
        400 | 404 | 409 | 422 => McpError::invalid_params(message, None),
        _ => McpError::internal_error(message, None),
    }
}

/// Structured content is an object: a list goes under `items`.
fn structured(value: Value) -> CallToolResult {
    match value {
        Value::Object(_) => CallToolResult::structured(value),
        Value::Null => CallToolResult::structured(json!({})),
        other => CallToolResult::structured(json!({ "items": other })),
    }
}

impl ServerHandler for Mcp {
    fn get_info(&self) -> ServerInfo {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_tasks_with(TasksCapability::server_default())
            .build();
        ServerInfo::new(capabilities)
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_server_info(Implementation::new("taskmesh", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Taskmesh: tasks for people and jobs for workers. You act as the owner of the \
                 personal access token you were given, within its scopes; a refusal names the \
                 scope or rule that refused it.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schemas = Schemas::new(crate::docs::document(&self.state).await);
        Ok(ListToolsResult::with_all_items(tools::list(&schemas)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        if tools::find(&request.name).is_none() {
            return Err(McpError::invalid_params(
                format!("there is no tool `{}`", request.name),
                None,
            ));
        }
        let rest = self.rest(&context)?;
        let args = request.arguments.unwrap_or_default();
        Ok(match tools::call(&rest, &request.name, args).await {
            Ok(value) => structured(value),
            Err(problem) => tool_error(problem),
        })
    }

    async fn enqueue_task(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CreateTaskResult, McpError> {
        let rest = self.rest(&context)?;
        let args = request.arguments.unwrap_or_default();
        // A cron template never ends: it makes a job at each tick.
        if args.get("job").is_some_and(|j| !j["cron"].is_null()) {
            let detail = "a cron template never ends; create it without `task`";
            return Err(McpError::invalid_params(detail, None));
        }
        let job = tools::call(&rest, &request.name, args)
            .await
            .map_err(protocol_error)?;
        Ok(CreateTaskResult::new(tasks::task_of(&job)))
    }

    async fn get_task_info(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let rest = self.rest(&context)?;
        let job = tasks::job(&rest, &request.task_id)
            .await
            .map_err(protocol_error)?;
        Ok(GetTaskResult::new(tasks::task_of(&job)))
    }

    async fn get_task_result(
        &self,
        request: GetTaskPayloadParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskPayloadResult, McpError> {
        let rest = self.rest(&context)?;
        let result = tasks::result(&rest, &request.task_id, &context.ct).await;
        Ok(GetTaskPayloadResult::new(result.map_err(protocol_error)?))
    }

    async fn list_tasks(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListTasksResult, McpError> {
        let rest = self.rest(&context)?;
        let page = rest
            .get("/api/v1/tasks?limit=100")
            .await
            .map_err(protocol_error)?;
        let jobs = page["items"].as_array().cloned().unwrap_or_default();
        let tasks = jobs
            .iter()
            .filter(|t| !t["job"].is_null())
            .map(tasks::task_of);
        Ok(ListTasksResult::new(tasks.collect()))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CancelTaskResult, McpError> {
        let rest = self.rest(&context)?;
        let job = tasks::job(&rest, &request.task_id)
            .await
            .map_err(protocol_error)?;
        let id = job["id"].as_str().unwrap_or_default();
        let cancelled = rest
            .post(&format!("/api/v1/tasks/{id}/cancel"), &json!({}))
            .await;
        Ok(CancelTaskResult::new(tasks::task_of(
            &cancelled.map_err(protocol_error)?,
        )))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let rest = self.rest(&context)?;
        let resources = content::list(&rest).await.map_err(protocol_error)?;
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            content::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, McpError> {
        let rest = self.rest(&context)?;
        let contents = content::read(&rest, &request.uri)
            .await
            .map_err(|p| match p.status {
                404 => McpError::resource_not_found(p.to_string(), None),
                _ => protocol_error(p),
            })?;
        Ok(ReadResourceResult::new(vec![contents]))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(content::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, McpError> {
        let rest = self.rest(&context)?;
        content::prompt(&rest, &request.name)
            .await
            .map_err(protocol_error)
    }
}
