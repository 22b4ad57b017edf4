"""LLMAgent: a litellm completion callable with the environment's tools (OpenAI, vLLM, Ollama, ...)."""

from __future__ import annotations

import os
from typing import Any, Callable

__all__ = ["LLMAgent"]


class LLMAgent:
    """``agent(model, messages, tools=None, **kw) -> response dict`` backed by ``litellm.completion``.

    model       any litellm model string ("gpt-4o-mini", "hosted_vllm/Qwen/...", "ollama_chat/llama3.1", ...)
    completion  the function to call (default: litellm.completion); tests pass a fake that records calls
    **defaults  extra litellm kwargs (api_base, temperature, mock_response, ...)
    """

    def __init__(self, model: str, completion: Callable[..., Any] | None = None, **defaults: Any):
        self.model = model
        self.name = model
        self._completion = completion
        self._completion_is_custom = completion is not None
        self.defaults = {"temperature": 0.0, **defaults}
        self.calls = 0

    def _fn(self) -> Callable[..., Any]:
        if self._completion is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import
            import litellm

            self._completion = litellm.completion
        return self._completion

    def __call__(self, model: str | None = None, messages: list[dict] | None = None,
                 tools: list[dict] | None = None, **kw: Any) -> dict:
        self.calls += 1
        params = {**self.defaults, **kw}
        if tools:
            params["tools"] = tools
            params.setdefault("tool_choice", "auto")
        fn = self._fn()
        call = dict(model=self.model if model in (None, "", "scripted") else model, messages=list(messages or []),
                    **params)
        try:
            resp = fn(**call)
        except ModuleNotFoundError as e:
            # litellm >= 1.7x imports its MCP handler (the optional `mcp` package) whenever tools are passed;
            # without that extra, skip the handler (we never use MCP tools).
            if e.name != "mcp" or self._completion_is_custom:
                raise
            resp = fn(**call, _skip_mcp_handler=True)
        return _as_dict(resp)


def _as_dict(resp: Any) -> dict:
    if isinstance(resp, dict):
        return resp
    dump = getattr(resp, "model_dump", None)
    if callable(dump):
        return dump()
    to_dict = getattr(resp, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return dict(resp)
