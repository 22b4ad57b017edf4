"""Scripted fakes for tests and examples: real implementations of the protocols that record every call.

They are deterministic stand-ins for a model, not mocks: ScriptedThinker answers ThinkRequests from a script,
ScriptedCompletion answers chat completions like litellm would (an OpenAI-shaped response dict).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agentmem.thinkers.base import ThinkerError, ThinkRequest, ThinkResult

__all__ = ["ScriptedThinker", "ScriptedCompletion", "make_response", "synthetic_history"]


class ScriptedThinker:
    """A Thinker whose answers come from a list (cycled) or a function of the request; records every request.

    An answer that is an Exception instance is raised (as ThinkerError unless it already is one), so tests can
    script failures and timeouts.
    """

    def __init__(self, answers: Sequence[str | BaseException] | Callable[[ThinkRequest], str] = ("notes",),
                 *, name: str = "scripted", delay_s: float = 0.0):
        self.name = name
        self._answers = answers
        self._cycle = itertools.cycle(answers) if not callable(answers) else None
        self.delay_s = delay_s
        self.requests: list[ThinkRequest] = []

    def _answer(self, request: ThinkRequest) -> ThinkResult:
        self.requests.append(request)
        answer = self._answers(request) if callable(self._answers) else next(self._cycle)  # type: ignore[arg-type]
        if isinstance(answer, BaseException):
            raise answer if isinstance(answer, ThinkerError) else ThinkerError(str(answer)) from answer
        if request.timeout_s is not None and self.delay_s > request.timeout_s:
            raise ThinkerError(f"timed out after {request.timeout_s}s")
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        return ThinkResult(text=answer, model=self.name, tokens_in=prompt_words, tokens_out=len(answer.split()),
                           seconds=self.delay_s)

    def think(self, request: ThinkRequest) -> ThinkResult:
        if self.delay_s:
            import time

            time.sleep(min(self.delay_s, request.timeout_s or self.delay_s))
        return self._answer(request)

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        if self.delay_s:
            await asyncio.sleep(min(self.delay_s, request.timeout_s or self.delay_s))
        return self._answer(request)


def make_response(content: str | None = None, tool_calls: Iterable[tuple[str, str, dict]] = (),
                  *, prompt_tokens: int = 0) -> dict[str, Any]:
    """An OpenAI/litellm-shaped chat completion response dict."""
    calls = [{"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
             for cid, name, args in tool_calls]
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = calls
    return {"id": "resp", "object": "chat.completion", "choices": [{"index": 0, "message": msg,
                                                                      "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}}


class ScriptedCompletion:
    """A litellm-style completion callable that records what it was sent and replies from a script.

    `script` is a function (messages, tools) → response dict, or a list of response dicts used in turn.
    """

    def __init__(self, script: Callable[[list[dict], list | None], dict] | Sequence[dict]):
        self._script = script
        self._iter = iter(script) if not callable(script) else None
        self.calls: list[dict[str, Any]] = []

    def __call__(self, model: str | None = None, messages: Sequence[dict] = (), tools: Any = None,
                 **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"model": model, "messages": [dict(m) for m in messages], "tools": tools, **kwargs})
        if callable(self._script):
            return self._script(list(messages), tools)
        try:
            return next(self._iter)  # type: ignore[arg-type]
        except StopIteration:
            raise AssertionError("ScriptedCompletion ran out of scripted responses") from None

    async def acall(self, model: str | None = None, messages: Sequence[dict] = (), tools: Any = None,
                    **kwargs: Any) -> dict[str, Any]:
        return self(model=model, messages=messages, tools=tools, **kwargs)


def synthetic_history(rounds: int, *, output_chars: int = 600, parallel_every: int = 5,
                      seed: int = 0) -> list[dict[str, Any]]:
    """A deterministic agent history: system, task, then `rounds` tool-calling turns with JSON observations.

    Every 5th turn makes two parallel calls. Values (ids, paths, amounts) appear in outputs and are reused later,
    like a real agent carrying state.
    """
    import random

    rng = random.Random(seed)
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an agent that uses tools."},
        {"role": "user", "content": "Reconcile every invoice in /data/invoices and report the total."},
    ]
    for r in range(rounds):
        n_calls = 2 if parallel_every and r % parallel_every == parallel_every - 1 else 1
        calls = []
        for k in range(n_calls):
            cid = f"call_{r}_{k}"
            prev = f"inv_{rng.randrange(10_000):04d}" if r else "start"
            calls.append({"id": cid, "type": "function",
                          "function": {"name": "read_file",
                                       "arguments": json.dumps({"path": f"/data/invoices/{r}_{k}.json",
                                                                "after": prev})}})
        msgs.append({"role": "assistant", "content": f"Step {r}: reading the next invoice.", "tool_calls": calls})
        for c in calls:
            payload = {"invoice_id": f"inv_{rng.randrange(10_000):04d}", "amount": round(rng.uniform(5, 900), 2),
                       "path": json.loads(c["function"]["arguments"])["path"],
                       "notes": "lorem ipsum " * max(1, output_chars // 12)}
            msgs.append({"role": "tool", "tool_call_id": c["id"], "name": "read_file",
                         "content": json.dumps(payload)})
    return msgs
