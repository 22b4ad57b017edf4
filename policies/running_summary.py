"""RunningSummaryPolicy: one running summary of everything older (LangMem `summarize_messages` style).

When the view exceeds the budget, the previous summary block and every round older than the kept recent tail are
folded into one new block: a summary of (summary + new rounds), so the view holds at most one block after the
pinned head. The fold is summarize-by-thinking when the session has a thinker (AgentMemory sets
`fold_mode="think"` then), else the extractive fold. Unlike BudgetPolicy it re-summarizes its own summary on every
fold (facts pass through the summarizer again and again) and never evicts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentmem.actions import Action, FoldAction
from agentmem.view import BlockItem, View

from .base import Policy, PolicyConfig, PolicyContext, pinned_head, recent_start

__all__ = ["RunningSummaryPolicy", "RunningSummaryConfig"]


class RunningSummaryConfig(PolicyConfig):
    budget_tokens: int = Field(default=8000, ge=256, description="Summarize when the view exceeds this.")
    keep_ratio: float = Field(default=0.5, gt=0, lt=1,
                              description="Newest rounds kept verbatim: up to this share of the budget.")
    keep_recent_rounds: int = Field(default=2, ge=1, description="Newest assistant turns never summarized.")
    fold_mode: Literal["extractive", "think"] = "extractive"


class RunningSummaryPolicy(Policy):
    name = "running_summary"
    Config = RunningSummaryConfig

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list[Action]:
        cfg: RunningSummaryConfig = self.config  # type: ignore[assignment]
        if view.tokens <= cfg.budget_tokens:
            return []
        head = pinned_head(view)
        limit = recent_start(view, cfg.keep_recent_rounds)
        units = [(s, e) for s, e in view.units() if s >= head and e <= limit]
        if not units:
            return []
        # keep the newest units that fit in keep_ratio * budget; everything before them is summarized
        keep_tokens = int(cfg.budget_tokens * cfg.keep_ratio)
        tail = sum(it.tokens for it in view.items[limit:])
        cut = limit
        for s, e in reversed(units):
            size = sum(it.tokens for it in view.items[s:e])
            if tail + size > keep_tokens or isinstance(view.items[s], BlockItem):
                break
            tail += size
            cut = s
        span = [it.key for it in view.items[head:cut]]
        if len(span) < 2 and not (span and not isinstance(view.items[head], BlockItem)):
            return []
        return [FoldAction(span=tuple(span), mode=cfg.fold_mode, reason="running summary over budget")]
