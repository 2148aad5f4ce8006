"""An AI agent's side of Taskmesh's MCP endpoint, with the official MCP Python SDK as the client.

Usage: python agent.py <scenario> <gateway URL> <personal access token> [more]
  main <pool>                 everything an agent does with a full token (prints the ids made)
  no-jobs                     a token without jobs:write: create_job refused naming the scope
  revoked <session> <id>      a call works, the token is revoked (as its owner), the next fails

Prints one JSON line of results and exits 0 only when every check passed."""

import json
import sys

import anyio
import httpx
import mcp.types as types
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "search_tasks", "get_task", "create_task", "update_task", "assign_task", "complete_task",
    "comment_task", "create_job", "get_job", "cancel_job", "list_dead_jobs", "replay_dead_jobs",
    "list_notifications", "mark_notifications_read",
}


def check(condition, what):
    if not condition:
        raise SystemExit(f"check failed: {what}")


def session_for(base, token):
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return http, streamable_http_client(f"{base}/mcp", http_client=http)


async def main_scenario(base, token, pool):
    http, transport = session_for(base, token)
    async with http, transport as (read, write, _), ClientSession(read, write) as s:
        init = await s.initialize()
        check(init.protocolVersion == "2025-11-25", f"protocol {init.protocolVersion}")
        check(init.capabilities.tasks is not None, "the server offers tasks")
        tools = {t.name: t for t in (await s.list_tools()).tools}
        check(TOOLS <= set(tools), f"tools {sorted(tools)}")
        create = tools["create_task"].inputSchema
        check("title" in create["properties"] and "job" not in create["properties"], f"{create}")
        check(create["properties"]["title"].get("maxLength") == 200, "the API's own bounds")
        check("job" in tools["create_job"].inputSchema["required"], "create_job needs a job")

        made = await s.call_tool("create_task", {"title": "from an agent", "priority": "high"})
        check(not made.isError, f"create_task: {made}")
        task_id = made.structuredContent["id"]
        bad = await s.call_tool("create_task", {"title": ""})
        check(bad.isError, "an empty title is refused")
        check(bad.structuredContent["title"] == "Unprocessable Entity", f"{bad.structuredContent}")
        check("Traceback" not in json.dumps(bad.model_dump()), "no stack trace")
        commented = await s.call_tool("comment_task", {"id": task_id, "body": "noted by the agent"})
        check(not commented.isError, f"comment_task: {commented}")
        done = await s.call_tool("complete_task", {"id": task_id})
        check(not done.isError and done.structuredContent["status"] == "done", f"{done}")
        got = await s.call_tool("get_task", {"id": task_id})
        check(len(got.structuredContent["comments"]["items"]) == 1, "the comment is there")
        found = await s.call_tool("search_tasks", {"q": "agent"})
        check(any(t["id"] == task_id for t in found.structuredContent["items"]), "found by text")

        # A job as an MCP Task, followed until its job has run.
        job = {"kind": "noop", "pool": pool}
        created = await s.experimental.call_tool_as_task(
            "create_job", {"title": "an agent's job", "job": job}, ttl=60000)
        job_id = created.task.taskId
        statuses = [created.task.status]
        async for status in s.experimental.poll_task(job_id):
            statuses.append(status.status)
        check(statuses[-1] == "completed", f"statuses {statuses}")
        listed = await s.experimental.list_tasks()
        check(any(t.taskId == job_id for t in listed.tasks), "tasks/list has it")
        result = await s.experimental.get_task_result(job_id, types.CallToolResult)
        check(not result.isError and result.structuredContent["status"] == "completed", f"{result}")
        attempts = await s.call_tool("get_job", {"id": job_id})
        check(len(attempts.structuredContent["attempts"]["items"]) == 1, f"{attempts.structuredContent}")

        resource = await s.read_resource(f"taskmesh://tasks/{task_id}")
        check(json.loads(resource.contents[0].text)["task"]["title"] == "from an agent", "resource")
        templates = await s.list_resource_templates()
        check({t.uriTemplate for t in templates.resourceTemplates} ==
              {"taskmesh://tasks/{id}", "taskmesh://jobs/{id}"}, "templates")
        prompts = {p.name for p in (await s.list_prompts()).prompts}
        check(prompts == {"summarise_my_week", "triage_dead_jobs"}, f"prompts {prompts}")
        week = await s.get_prompt("summarise_my_week")
        check("from an agent" in week.messages[0].content.text, "the week has the task")
        return {"task_id": task_id, "job_id": job_id, "statuses": statuses}


async def no_jobs_scenario(base, token):
    http, transport = session_for(base, token)
    async with http, transport as (read, write, _), ClientSession(read, write) as s:
        await s.initialize()
        job = {"title": "not allowed", "job": {"kind": "noop", "pool": "inproc"}}
        refused = await s.call_tool("create_job", job)
        check(refused.isError, "create_job refused")
        check("jobs:write" in refused.structuredContent["detail"], f"{refused.structuredContent}")
        check(refused.structuredContent["code"] == "insufficient_scope", "named as a scope")
        allowed = await s.call_tool("create_task", {"title": "allowed"})
        check(not allowed.isError, f"{allowed}")
        return {"refused": refused.structuredContent}


async def revoked_scenario(base, token, session, token_id):
    answers = []
    try:
        http, transport = session_for(base, token)
        async with http, transport as (read, write, _), ClientSession(read, write) as s:
            await s.initialize()
            answers.append(len((await s.list_tools()).tools))
            async with httpx.AsyncClient() as owner:
                gone = await owner.delete(f"{base}/api/v1/tokens/{token_id}",
                                          headers={"Authorization": f"Bearer {session}"})
                check(gone.status_code == 204, f"revoked: {gone.status_code}")
            await s.call_tool("search_tasks", {})
            answers.append("served")
    except* httpx.HTTPStatusError as group:
        answers.append(group.exceptions[0].response.status_code)
    check(answers == [len(TOOLS), 401], f"answers {answers}")
    # What a client without a token is told: where to learn how to get one.
    async with httpx.AsyncClient() as anonymous:
        refused = await anonymous.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                       headers={"Accept": "application/json, text/event-stream"})
        challenge = refused.headers.get("www-authenticate", "")
        check(refused.status_code == 401 and "resource_metadata=" in challenge, f"{challenge}")
        url = challenge.split('resource_metadata="')[1].split('"')[0]
        path = url.split("://", 1)[1].split("/", 1)[1]
        metadata = (await anonymous.get(f"{base}/{path}")).json()
        check(metadata["resource"].endswith("/mcp") and metadata["authorization_servers"], f"{metadata}")
        check("jobs:write" in metadata["scopes_supported"], "scopes listed")
    return {"answers": answers}


async def run(argv):
    scenario, base, token, *rest = argv
    if scenario == "main":
        return await main_scenario(base, token, *rest)
    if scenario == "no-jobs":
        return await no_jobs_scenario(base, token)
    if scenario == "revoked":
        return await revoked_scenario(base, token, *rest)
    raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    print(json.dumps(anyio.run(run, sys.argv[1:])))
