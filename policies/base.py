"""What a policy is: it looks at a view and returns actions. It never touches the store or mutates the view.

A policy that wants a model's opinion (ThinkerPolicy) first returns a ThinkRequest from `thinking_request`; the
session calls the thinker at the edge and hands the text back to `decide`. Sync and async share that one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from agentmem.actions import Action
from agentmem.thinkers.base import ThinkRequest
from agentmem.view import BlockItem, RecalledItem, View

__all__ = ["Policy", "PolicyConfig", "PolicyContext", "pinned_head", "recent_start"]


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyContext(BaseModel):
    """What a policy may know besides the view."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = ""
    model: str | None = None
    round: int = 0  # assistant turns so far
    budget_tokens: int | None = None
    recall_ids: tuple[str, ...] = ()  # ids the agent asked for through the recall tool this round


class Policy:
    """Base class. Subclasses set `name` and `Config`, and implement `decide`."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type[PolicyConfig]] = PolicyConfig
    uses_thinker: ClassVar[bool] = False

    def __init__(self, config: PolicyConfig | dict[str, Any] | None = None, **overrides: Any):
        if config is None:
            config = self.Config(**overrides)
        elif isinstance(config, dict):
            config = self.Config(**{**config, **overrides})
        elif overrides:
            config = config.model_copy(update=overrides)
            config = self.Config.model_validate(config.model_dump())
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    def thinking_request(self, view: View, ctx: PolicyContext) -> ThinkRequest | None:
        """A question for the thinker before deciding, or None (the default: no model needed)."""
        return None

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> Sequence[Action]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def pinned_head(view: View) -> int:
    """Index of the first foldable item: the leading system message and the first user message (the task) stay."""
    i = 0
    items = view.items
    if items and items[0].key == view.system_id:
        i = 1
    if i < len(items) and getattr(items[i], "message", None) is not None and items[i].message.role == "user":
        i += 1
    return i


def recent_start(view: View, keep_rounds: int) -> int:
    """Index where the newest `keep_rounds` assistant turns (and what follows them) begin; never folded."""
    units = view.units()
    seen = 0
    for start, _end in reversed(units):
        it = view.items[start]
        msg = getattr(it, "message", None)
        if msg is not None and msg.role == "assistant":
            seen += 1
            if seen >= keep_rounds:
                return start
    return units[0][0] if units else 0


def is_memory_item(item: object) -> bool:
    return isinstance(item, (BlockItem, RecalledItem))


__all__.append("is_memory_item")
