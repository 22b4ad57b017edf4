"""A local chat endpoint with tool calls: the shipped GGUF model run in-process by llama.cpp (`xllamacpp`).

Why: LLMAgent needs a chat completion that returns OpenAI-style ``tool_calls``. llama.cpp's server parses them
from the model's own output when it renders the prompt with the model's jinja chat template (``use_jinja``), so
the in-process server (no HTTP, no port) is such an endpoint::

    from agentmem.envs.agents import LLMAgent
    from agentmem.envs.llamacpp_chat import LlamaCppChat

    agent = LLMAgent("local", completion=LlamaCppChat())   # the shipped Qwen2.5-Coder-1.5B GGUF

A GGUF path picks another model. The same server over HTTP (``llama-server --jinja -m model.gguf``) works through
litellm as ``LLMAgent("openai/local", api_base="http://127.0.0.1:8080/v1", api_key="none")``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from agentmem.thinkers._thinking import plain_message

__all__ = ["LlamaCppChat", "call_in_text"]


class LlamaCppChat:
    """``completion(model, messages, tools=None, **kw) -> OpenAI chat.completion dict``, on a local GGUF.

    model        a GGUF path, or None for the shipped default model (agentmem.thinkers.model_files)
    n_ctx        context window (tokens) of the one slot
    max_tokens   cap on each reply (a turn is one short thought and one tool call)
    text_calls   also accept a call the model wrote as text - a JSON object ``{"name": <one of the tools>,
                 "arguments": {...}}``, bare or in a ```json fence - when llama.cpp parsed no tool call (small
                 models often write that instead of their template's <tool_call> tags); `recovered` counts them
    The model loads on the first call; `turn_seconds` keeps each call's wall time."""

    def __init__(self, model: str | os.PathLike | None = None, *, n_ctx: int = 8192, max_tokens: int = 256,
                 n_threads: int | None = None, temperature: float = 0.0, text_calls: bool = False) -> None:
        self.model = None if model is None else Path(model)
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.temperature = temperature
        self.load_seconds: float | None = None
        self.text_calls = text_calls
        self.recovered = 0
        self.turn_seconds: list[float] = []
        self.usage: list[dict] = []
        self._server: Any = None
        self._lock = threading.Lock()

    def gguf_path(self) -> Path:
        if self.model is not None:
            if not self.model.is_file():
                raise FileNotFoundError(f"no GGUF file at {self.model}")
            return self.model
        from agentmem.thinkers import model_files

        return model_files.default_gguf_path(None)

    def _load(self) -> Any:
        """One slot with the model's jinja chat template (the thinker's engine settings otherwise)."""
        from agentmem.thinkers.llamacpp import _Engine

        with self._lock:
            if self._server is None:
                engine = _Engine(self.gguf_path(), n_ctx_per_slot=self.n_ctx, n_parallel=1,
                                 n_threads=self.n_threads, n_threads_batch=self.n_threads, n_gpu_layers=-1,
                                 n_batch=512, flash_attn=None, use_jinja=True)
                self.load_seconds = engine.load_seconds
                self._server = engine.server
        return self._server

    def __call__(self, model: str | None = None, messages: list[dict] | None = None,
                 tools: list[dict] | None = None, **kw: Any) -> dict:
        server = self._server or self._load()
        body: dict[str, Any] = {"messages": [_plain(m) for m in messages or []],
                                "max_tokens": int(kw.get("max_tokens") or self.max_tokens),
                                "temperature": float(kw.get("temperature", self.temperature))}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = kw.get("tool_choice", "auto")
        t0 = time.perf_counter()
        resp = server.handle_chat_completions(body)
        self.turn_seconds.append(time.perf_counter() - t0)
        if not isinstance(resp, dict) or "choices" not in resp:
            raise RuntimeError(f"llama.cpp returned no completion: {str(resp)[:500]}")
        self.usage.append(dict(resp.get("usage") or {}))
        if self.text_calls and tools:
            msg = (resp["choices"][0] or {}).get("message") or {}
            call = None if msg.get("tool_calls") else call_in_text(msg.get("content"), tools)
            if call is not None:
                self.recovered += 1
                msg["tool_calls"] = [{"id": f"call_text_{self.recovered}", "type": "function", "function": call}]
                resp["choices"][0]["finish_reason"] = "tool_calls"
        return resp


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def call_in_text(content: Any, tools: list[dict]) -> dict | None:
    """A tool call written as text: the first JSON object naming one of `tools` with dict arguments, as
    ``{"name", "arguments"}`` for an OpenAI tool call (arguments as a JSON string); None when there is none."""
    if not isinstance(content, str) or "{" not in content:
        return None
    names = {(t.get("function") or {}).get("name") for t in tools}
    candidates = [m.group(1) for m in _FENCE.finditer(content)] or [content[content.index("{"):]]
    for text in candidates:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text.strip())
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("name") in names and isinstance(obj.get("arguments"), dict):
            return {"name": obj["name"], "arguments": json.dumps(obj["arguments"])}
    return None


def _plain(m: dict) -> dict:
    """A message as the chat template expects it: only the chat keys, text content (None -> "")."""
    return plain_message({k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "tool_call_id",
                                                                  "name")})
