"""AgentMemory: wrap any litellm-style completion callable so the model always gets a managed view.

    memory = AgentMemory(completion=litellm.completion, policy="budget", budget_tokens=8000)
    response = memory.completion(model="gpt-4o", messages=history, tools=tools)

The agent keeps passing its whole raw history; agentmem stores it losslessly, applies the policy, sends the view,
stores the reply, and returns the response unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentmem.messages import response_message
from agentmem.primitives import EvictConfig, FoldConfig, RecallConfig, SummarizeConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.thinkers.base import Thinker

__all__ = ["AgentMemory", "RECALL_TOOL_NAME", "recall_tool_schema", "resolve_thinker", "build_policy"]

from agentmem.session import RECALL_TOOL_NAME  # noqa: E402  (one definition of the tool's name)


def recall_tool_schema() -> dict[str, Any]:
    """The OpenAI tool the agent can call to read archived (folded or evicted) content back."""
    return {
        "type": "function",
        "function": {
            "name": RECALL_TOOL_NAME,
            "description": (
                "Read back earlier messages that were folded or evicted from your context; nothing is ever lost. "
                "Pass the ids shown in an '[agentmem' block or stub (message ids, or block ids like blk-3 for "
                "every message the block covers), and/or a query. Exact look-ups are ranked first: ids, a call "
                "name with its arguments ('show_playlist_songs playlist_id 17 page_index 1'; name fewer "
                "arguments to get every such call, oldest first, so the newest reading comes last), quoted "
                "phrases and identifier-like values; then a full-text search of the remaining words. Each match "
                "comes with its round (the call and its result). Long answers come in pages: the answer ends "
                "with 'N more … call recall_memory again with the same arguments and page=K' when there is more; "
                "nothing is cut without such a note."),
            "parameters": {
                "type": "object",
                "properties": {
                    "ids": {"type": "array", "items": {"type": "string"},
                            "description": "message or block ids to read back (a block id returns all it covers)"},
                    "query": {"type": "string",
                              "description": "a call name with arguments, quoted phrases, values or words to "
                                             "search the archive for"},
                    "page": {"type": "integer", "minimum": 1, "default": 1,
                             "description": "which page of a long answer (the answer says how many more)"},
                },
            },
        },
    }


def resolve_thinker(spec: Thinker | str | None) -> Thinker | None:
    """None or "extractive" → no model; a string → agentmem.thinkers.make_thinker; a Thinker → itself."""
    if spec is None or spec == "extractive":
        return None
    if isinstance(spec, str):
        from agentmem.thinkers import make_thinker

        return make_thinker(spec)
    return spec


def build_policy(spec: Any, *, thinker: Thinker | None, budget_tokens: int | None = None, **config: Any) -> Any:
    """make_policy, except that a policy named by a string folds with the thinker when one is given."""
    from agentmem.policies import REGISTRY, make_policy

    if (thinker is not None and isinstance(spec, str) and spec in REGISTRY
            and "fold_mode" in REGISTRY[spec].Config.model_fields):
        config.setdefault("fold_mode", "think")
    return make_policy(spec, budget_tokens=budget_tokens, **config)


def _litellm_completion() -> Callable[..., Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm.completion


def _litellm_acompletion() -> Callable[..., Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm.acompletion


class AgentMemory:
    """Memory middleware around a litellm-style `completion(model=, messages=, tools=, **kw)` callable.

    Args:
        completion: the client to call (default: litellm.completion, imported lazily).
        acompletion: async client (default: litellm.acompletion).
        policy: a policy name ("budget", "noop", …) or a Policy instance.
        budget_tokens: token budget for policies that have one.
        store: a Store, a URL/path, or None for the default embedded SQLite file.
        session_id: resume this session (its view is rebuilt from the log) or name a new one.
        thinker: a Thinker, a spec ("extractive", "local", "smollm2", a litellm model) or None.
        model: model name for token counting when it differs from the `model=` passed per call.
        recall_tool: add the `recall_memory` tool to every call's tools.
        verify: "ends" (default, O(1)) or "full" (every re-sent message is compared with the store).
        background: run thinking folds in a worker once the view passes the policy's soft watermark; the agent
            waits only when the hard budget would otherwise be exceeded.
    """

    def __init__(
        self,
        completion: Callable[..., Any] | None = None,
        *,
        acompletion: Callable[..., Any] | None = None,
        policy: Any = "budget",
        budget_tokens: int | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        session_id: str | None = None,
        thinker: Thinker | str | None = None,
        model: str | None = None,
        recall_tool: bool = False,
        fold_config: FoldConfig | None = None,
        summarize_config: SummarizeConfig | None = None,
        evict_config: EvictConfig | None = None,
        recall_config: RecallConfig | None = None,
        thinker_timeout_s: float | None = None,
        background: bool = False,
        verify: str = "ends",
        **policy_config: Any,
    ):
        self._completion = completion
        self._acompletion = acompletion
        self.store = store if isinstance(store, Store) else Store(store)
        self.thinker = resolve_thinker(thinker)
        self.policy = build_policy(policy, thinker=self.thinker, budget_tokens=budget_tokens, **policy_config)
        self.recall_tool = recall_tool
        self.session = MemorySession(self.store, session_id, policy=self.policy, thinker=self.thinker, model=model,
                                     fold_config=fold_config, summarize_config=summarize_config,
                                     evict_config=evict_config, recall_config=recall_config,
                                     thinker_timeout_s=thinker_timeout_s, background=background,
                                     verify=verify)
        self._model_for_tokens = model

    # --- public surface -------------------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.session.session_id

    @property
    def recall_tool_schema(self) -> dict[str, Any]:
        return recall_tool_schema()

    @property
    def last_round(self) -> dict[str, Any]:
        """Stats of the last call: raw_tokens, view_tokens, actions, bookkeeping_ms, thinker_ms…"""
        return self.session.last.as_dict()

    def view(self) -> list[dict[str, Any]]:
        """The current managed view (what the model would get now)."""
        return self.session.view.render()

    def _tools(self, tools: Sequence[Mapping[str, Any]] | None) -> list[Any] | None:
        if not self.recall_tool:
            return list(tools) if tools is not None else None
        tools = list(tools or [])
        if not any((t.get("function") or {}).get("name") == RECALL_TOOL_NAME for t in tools):
            tools.append(recall_tool_schema())
        return tools

    def completion(self, model: str | None = None, messages: Sequence[Any] = (), tools: Any = None,
                   **kwargs: Any) -> Any:
        """Managed litellm.completion: same arguments, same response."""
        view = self.session.prepare(messages)
        call = self._completion or _litellm_completion()
        tools = self._tools(tools)
        if tools is not None:
            kwargs["tools"] = tools
        response = call(model=model, messages=view, **kwargs)
        if not kwargs.get("stream"):
            self.session.record_response(response_message(response))
        return response

    async def acompletion(self, model: str | None = None, messages: Sequence[Any] = (), tools: Any = None,
                          **kwargs: Any) -> Any:
        """Async twin of completion(); shares the same planning code."""
        view = await self.session.aprepare(messages)
        call = self._acompletion or _litellm_acompletion()
        tools = self._tools(tools)
        if tools is not None:
            kwargs["tools"] = tools
        response = await call(model=model, messages=view, **kwargs)
        if not kwargs.get("stream"):
            self.session.record_response(response_message(response))
        return response

    # --- the recall tool ------------------------------------------------------------------------------------
    def execute_recall(self, arguments: Mapping[str, Any] | str) -> str:
        """Answer one `recall_memory` call from the archive. Bad arguments get a clear message, not an exception."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                return f"[agentmem: recall_memory arguments are not valid JSON: {exc.msg}]"
        if not isinstance(arguments, Mapping):
            return "[agentmem: recall_memory takes an object with 'ids' and/or 'query']"
        ids = arguments.get("ids") or []
        if isinstance(ids, str):
            ids = [ids]
        query = arguments.get("query")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return "[agentmem: recall_memory 'ids' must be a list of strings]"
        if query is not None and not isinstance(query, str):
            return "[agentmem: recall_memory 'query' must be a string]"
        if not ids and not query:
            return "[agentmem: recall_memory needs 'ids' or a 'query']"
        page = arguments.get("page", 1)
        if isinstance(page, str) and page.strip().isdigit():
            page = int(page)
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            return "[agentmem: recall_memory 'page' must be a whole number from 1]"
        return self.session.recall_text(ids=ids, query=query, page=page)

    def answer_recall_calls(self, response_or_message: Any) -> list[dict[str, Any]]:
        """Tool-result messages answering every recall_memory call in a model reply (others are left to you)."""
        msg = response_or_message
        if not (isinstance(msg, Mapping) and msg.get("role") == "assistant"):
            msg = response_message(response_or_message)
        out = []
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            if fn.get("name") == RECALL_TOOL_NAME:
                out.append({"role": "tool", "tool_call_id": tc["id"], "name": RECALL_TOOL_NAME,
                            "content": self.execute_recall(fn.get("arguments") or "{}")})
        return out
