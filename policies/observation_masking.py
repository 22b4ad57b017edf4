"""ObservationMaskingPolicy: old tool outputs beyond the newest K rounds become placeholders (evict → stub).

The baseline of "The Complexity Trap" (Lindenbauer et al., 2025): keep every assistant turn (reasoning and calls)
verbatim, mask observations older than a window of K turns. With `budget_tokens` set, masking happens only when
the view exceeds the budget, and then in one batch (a stable prefix between batches, which prompt caches reuse);
with `budget_tokens=None` it masks every round, as in the paper. It never folds, so the assistant turns and the
stubs keep growing: the view is not bounded by the budget on long runs, and the benchmark shows that.
"""

from __future__ import annotations

from pydantic import Field

from agentmem.actions import Action, EvictAction
from agentmem.view import MessageItem, View

from .base import Policy, PolicyConfig, PolicyContext, pinned_head, recent_start

__all__ = ["ObservationMaskingPolicy", "ObservationMaskingConfig"]


class ObservationMaskingConfig(PolicyConfig):
    keep_recent_rounds: int = Field(default=10, ge=1, description="Tool outputs of the newest K turns stay verbatim.")
    budget_tokens: int | None = Field(default=None, ge=256,
                                      description="Mask only when the view exceeds this; None masks every round.")
    min_tokens: int = Field(default=100, ge=0,
                            description="Outputs this small are left alone: a stub (~60 tokens) would not save.")


class ObservationMaskingPolicy(Policy):
    name = "observation_masking"
    Config = ObservationMaskingConfig

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list[Action]:
        cfg: ObservationMaskingConfig = self.config  # type: ignore[assignment]
        if cfg.budget_tokens is not None and view.tokens <= cfg.budget_tokens:
            return []
        head = pinned_head(view)
        recent = recent_start(view, cfg.keep_recent_rounds)
        old = [it.key for it in view.items[head:recent]
               if isinstance(it, MessageItem) and it.message.role == "tool" and it.tokens > cfg.min_tokens]
        if not old:
            return []
        return [EvictAction(ids=tuple(old), reason=f"observation older than {cfg.keep_recent_rounds} turns")]
