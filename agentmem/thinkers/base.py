"""The one protocol every model call in agentmem goes through.

Model calls happen only at the edge: primitives and policies are pure, and receive the thinker's text as data.
Sync and async callers share the same request/result types; only the call differs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ThinkRequest", "ThinkResult", "Thinker", "ThinkerError"]


class ThinkerError(RuntimeError):
    """A thinker could not produce text (load failure, timeout, server error, empty output)."""


class ThinkRequest(BaseModel):
    """What to ask the model: chat messages plus a hard cap on generated tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[dict] = Field(description="OpenAI-style chat messages (role, content).")
    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    timeout_s: float | None = Field(default=None, gt=0)
    purpose: str = Field(default="summarize", description="fold | summarize | policy; for logs only.")


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
