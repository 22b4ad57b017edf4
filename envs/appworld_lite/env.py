"""The `appworld-lite` environment: task ids, task instances (tools, messages, step, evaluate)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .framework import PAGE_SIZE, TOKEN_TTL, World
from .scripted import ScriptedAgent
from .tasks import SEEDS, TEMPLATES, EvalResult, TaskTemplate, evaluate

__all__ = ["AppWorldLite", "TaskInstance", "TOOLS", "SYSTEM_PROMPT"]


def _fn(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


TOOLS: list[dict] = [
    _fn("call_api", "Call one API of one app. The observation is JSON: {app, api, args, status, response|error}.",
        {"app": {"type": "string", "description": "App name, e.g. 'music'."},
         "api": {"type": "string", "description": "API name, e.g. 'show_playlist_library'."},
         "arguments": {"type": "object", "description": "The API's arguments (see show_api_doc)."}},
        ["app", "api"]),
    _fn("show_app_descriptions", "List all apps.", {}, []),
    _fn("show_api_descriptions", "List the APIs of an app.", {"app_name": {"type": "string"}}, ["app_name"]),
    _fn("show_api_doc", "Show one API's full documentation.",
        {"app_name": {"type": "string"}, "api_name": {"type": "string"}}, ["app_name", "api_name"]),
]

SYSTEM_PROMPT = f"""You are an autonomous agent that completes tasks for your supervisor by calling app APIs.
Apps: supervisor (profile, account passwords, complete_task), api_docs, email, music, payments, expenses, phone,
notes, todo, file_system. Use the tools: call_api(app, api, arguments) and the documentation tools.
Rules:
- Log in to an app with its `login` API (username = the supervisor's email; for phone, their phone number;
  passwords from supervisor.show_account_passwords). Pass the returned access_token to every other API of
  that app. Tokens expire after {TOKEN_TTL} API calls: log in again when told so.
- List APIs are paginated ({PAGE_SIZE} items per page, page_index from 0); keep reading while has_more is true.
- Amounts are in dollars; dates are YYYY-MM-DD.
- Make only the changes the task asks for.
- When done, call call_api(app="supervisor", api="complete_task", arguments={{"answer": ...}}) - with an answer
  only if the task asks a question (a bare number or name)."""


@dataclass
class TaskInstance:
    """One task: a seeded world the agent acts on through tools."""

    task_id: str
    template: type[TaskTemplate]
    seed: int
    world: World
    params: dict
    before: dict

    @property
    def instruction(self) -> str:
        return self.params["instruction"]

    @property
    def difficulty(self) -> str:
        return self.template.difficulty

    @property
    def scenario(self) -> str:
        return self.template.name

    @property
    def tools(self) -> list[dict]:
        return [json.loads(json.dumps(t)) for t in TOOLS]

    @property
    def done(self) -> bool:
        return self.world.completed

    def initial_messages(self) -> list[dict]:
        first = self.world.q("SELECT first_name FROM supervisor_profile WHERE id = 1")[0]["first_name"]
        today = self.world.today.strftime("%A, %Y-%m-%d")
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"I am {first}, your supervisor. Today is {today}.\n"
                                            f"Task: {self.instruction}"}]

    def step(self, tool_name: str, arguments: Any) -> str:
        """Execute one tool call; always returns a JSON observation (errors included)."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as e:
                return json.dumps({"status": "error", "error": {"type": "InvalidArguments",
                                                                "message": f"arguments are not valid JSON: {e}"}})
        if not isinstance(arguments, dict):
            return json.dumps({"status": "error", "error": {"type": "InvalidArguments",
                                                            "message": "arguments must be a JSON object"}})
        if tool_name == "call_api":
            inner = arguments.get("arguments", {})
            if isinstance(inner, str):
                try:
                    inner = json.loads(inner) if inner.strip() else {}
                except ValueError:
                    inner = None
            extra = set(arguments) - {"app", "api", "arguments"}
            if not isinstance(inner, dict) or extra or not isinstance(arguments.get("app"), str) or \
                    not isinstance(arguments.get("api"), str):
                return json.dumps({"status": "error", "error": {
                    "type": "InvalidArguments",
                    "message": "call_api takes {app: str, api: str, arguments: object}"}})
            env = self.world.call(arguments["app"], arguments["api"], inner)
        elif tool_name in ("show_app_descriptions", "show_api_descriptions", "show_api_doc"):
            env = self.world.call("api_docs", tool_name, arguments)
        else:
            return json.dumps({"status": "error", "error": {"type": "UnknownTool",
                                                            "message": f"No tool named '{tool_name}'."}})
        return json.dumps(env, ensure_ascii=False)

    def evaluate(self) -> EvalResult:
        return evaluate(self.template, self.seed, self.world, self.before)

    def scripted_agent(self) -> ScriptedAgent:
        return ScriptedAgent(self.template.plan(self.params), name=f"scripted:{self.task_id}")


class AppWorldLite:
    """Offline, deterministic AppWorld-style environment: 9 apps, 30+ templates x seeds."""

    name = "appworld-lite"

    def __init__(self, seeds: tuple[int, ...] = SEEDS):
        from . import templates  # noqa: F401  (registers the templates)

        self.seeds = tuple(seeds)

    def templates(self) -> dict[str, type[TaskTemplate]]:
        return dict(TEMPLATES)

    def task_ids(self, difficulty: str | None = None) -> list[str]:
        return [f"{name}-{s}" for name, t in TEMPLATES.items() if difficulty in (None, t.difficulty)
                for s in self.seeds]

    def parse_task_id(self, task_id: str) -> tuple[type[TaskTemplate], int]:
        name, _, seed = task_id.rpartition("-")
        if name not in TEMPLATES or not seed.isdigit():
            raise KeyError(f"unknown appworld-lite task {task_id!r} (ids look like 'music_most_common_song-0')")
        return TEMPLATES[name], int(seed)

    def load(self, task_id: str) -> TaskInstance:
        template, seed = self.parse_task_id(task_id)
        ctx, params = template.build(seed)
        return TaskInstance(task_id, template, seed, ctx.world, params, ctx.world.snapshot())

    def scripted_agent(self, task: TaskInstance) -> ScriptedAgent:
        return task.scripted_agent()
