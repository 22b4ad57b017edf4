"""NoOpPolicy: the unmanaged baseline. The view is the raw history."""

from __future__ import annotations

from agentmem.view import View

from .base import Policy, PolicyConfig, PolicyContext

__all__ = ["NoOpPolicy", "NoOpConfig"]


class NoOpConfig(PolicyConfig):
    pass


class NoOpPolicy(Policy):
    name = "noop"
    Config = NoOpConfig

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list:
        return []
