"""The one protocol every model call in agentmem goes through.

Model calls happen only at the edge: primitives and policies are pure, and receive the thinker's text as data.
Sync and async callers share the same request/result types; only the call differs.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ThinkRequest", "ThinkResult", "Thinker", "ThinkerError", "ThinkerStats"]


class ThinkerError(RuntimeError):
    """A thinker could not produce text (load failure, timeout, server error, empty output)."""


class ThinkRequest(BaseModel):
    """What to ask the model: chat messages plus a hard cap on generated tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[dict] = Field(description="OpenAI-style chat messages (role, content).")
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    timeout_s: float | None = Field(default=None, gt=0)
    purpose: str = Field(default="summarize", description="fold | summarize | policy; for logs only.")
    json_schema: dict | None = Field(default=None, description="Constrain the answer to JSON of this schema where "
                                     "the backend can (llama.cpp grammar, OpenAI response_format); parse anyway.")


class ThinkResult(BaseModel):
    """What came back. `text` is what agentmem uses (for a thinking model, the thinking trace itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    answer: str = ""  # the visible answer after the thinking, when the model separates the two
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0  # time spent loading the model for this call (first call only)
    prefill_seconds: float = 0.0  # time to the first new token, when the backend reports it (0 = unknown)
    decode_seconds: float = 0.0  # time for the remaining new tokens, when the backend reports it
    cached_tokens: int = 0  # prompt tokens reused from the KV cache (prefix reuse), when reported


@runtime_checkable
class Thinker(Protocol):
    """A model that can be asked to think. Implementations: ScriptedThinker (tests), LocalThinker, LiteLLMThinker."""

    name: str

    def think(self, request: ThinkRequest) -> ThinkResult:
        """Blocking call. Raises ThinkerError on any failure."""
        ...

    async def athink(self, request: ThinkRequest) -> ThinkResult:
        """Async call with the same contract as think()."""
        ...


class ThinkerStats:
    """Running totals of one thinker's calls (thread-safe): what summary.json reports as its speed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.failures = 0
        self.seconds = 0.0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cached_tokens = 0
        self.prefill_seconds = 0.0
        self.prefill_tokens = 0  # prompt tokens actually computed (cached ones excluded) in timed calls
        self.decode_seconds = 0.0
        self.decode_tokens = 0

    def record(self, result: ThinkResult) -> None:
        with self._lock:
            self.calls += 1
            self.seconds += result.seconds
            self.tokens_in += result.tokens_in
            self.tokens_out += result.tokens_out
            self.cached_tokens += result.cached_tokens
            if result.prefill_seconds > 0:
                self.prefill_seconds += result.prefill_seconds
                self.prefill_tokens += max(0, result.tokens_in - result.cached_tokens)
            if result.decode_seconds > 0 and result.tokens_out > 1:
                self.decode_seconds += result.decode_seconds
                self.decode_tokens += result.tokens_out - 1

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "seconds_per_call": round(self.seconds / self.calls, 3) if self.calls else None,
                "prefill_tok_s": round(self.prefill_tokens / self.prefill_seconds, 1) if self.prefill_seconds else None,
                "decode_tok_s": round(self.decode_tokens / self.decode_seconds, 1) if self.decode_seconds else None,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cached_tokens": self.cached_tokens,
                "failures": self.failures,
            }
