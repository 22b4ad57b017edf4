"""WindowPolicy: the sliding-window baseline (what `trim_messages(strategy="last")` does), expressed in agentmem.

Keeps the pinned head (system message + task) and the newest whole rounds that fit in the budget. Everything
older is *folded into one pointer block* rather than silently dropped: dropping has no honest equivalent in a
lossless store, and evicting (stubbing) every old message would grow the view by one stub per message, which a
window never does. The block is the session's extractive fold, so for a true window give the session a minimal
fold config (`WindowPolicy.fold_config`: no values, one short step line; `agentmem replay` and the benchmark do
this) — the view is then head + a ~70-token pointer + the newest rounds, like trim_messages plus a recall hint.
Each round that overflows slides the window: the previous pointer block and the newly old rounds are re-folded
into one block, so the view never holds more than one.
"""

from __future__ import annotations

from pydantic import Field

from agentmem.actions import Action, FoldAction
from agentmem.primitives import FoldConfig
from agentmem.view import BlockItem, View

from .base import Policy, PolicyConfig, PolicyContext, pinned_head, recent_start

__all__ = ["WindowPolicy", "WindowConfig", "WINDOW_FOLD_CONFIG"]

# A pointer block: the header (ids + how to recall) and at most a line or two.
WINDOW_FOLD_CONFIG = FoldConfig(max_block_tokens=32)


class WindowConfig(PolicyConfig):
    budget_tokens: int = Field(default=8000, ge=256, description="The view is cut back to this whenever it exceeds it.")
    keep_recent_rounds: int = Field(default=1, ge=1,
                                    description="Newest assistant turns always kept, even over budget.")
    block_tokens: int = Field(default=80, ge=16, description="Expected size of the pointer block (for planning).")


class WindowPolicy(Policy):
    name = "window"
    Config = WindowConfig
    fold_config = WINDOW_FOLD_CONFIG  # what a session should fold with for a true window (see module docstring)

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list[Action]:
        cfg: WindowConfig = self.config  # type: ignore[assignment]
        if view.tokens <= cfg.budget_tokens:
            return []
        head = pinned_head(view)
        recent = recent_start(view, cfg.keep_recent_rounds)
        if recent <= head:
            return []
        # the pointer block (if any) is the first item after the head; it is always re-folded with what follows
        has_block = isinstance(view.items[head], BlockItem)
        projected = view.tokens + (0 if has_block else cfg.block_tokens)  # a re-folded block keeps its size
        span: list[str] = [view.items[head].key] if has_block else []
        for ustart, uend in view.units():
            if ustart < head + has_block or uend > recent:
                continue
            if projected <= cfg.budget_tokens:
                break
            for it in view.items[ustart:uend]:
                span.append(it.key)
                projected -= it.tokens
        if len(span) < 2 and not (span and not has_block):
            return []  # nothing new to drop (only the old block, or nothing at all)
        return [FoldAction(span=tuple(span), mode="extractive", reason="window: older rounds do not fit")]
