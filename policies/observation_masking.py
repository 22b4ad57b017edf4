"""ObservationMaskingPolicy: old tool outputs beyond the newest K rounds become placeholders (evict → stub).

The baseline of "The Complexity Trap" (Lindenbauer et al., 2025): keep every assistant turn (reasoning and calls)
verbatim, mask observations older than a window of K turns. With `budget_tokens` set, masking happens only when
the view exceeds the budget, and then in one batch (a stable prefix between batches, which prompt caches reuse);
with `budget_tokens=None` it masks every round, as in the paper. It never folds, so the assistant turns and the
stubs keep growing: the view is not bounded by the budget on long runs, and the benchmark shows that. With
`bounded=True` (the benchmark's "masking + window" row, to compare at the same peak) the oldest rounds that still
do not fit after masking are dropped behind one pointer block, exactly as WindowPolicy does.
"""

from __future__ import annotations

from pydantic import Field

from agentmem.actions import Action, EvictAction, FoldAction
from agentmem.view import BlockItem, MessageItem, View

from .base import Policy, PolicyConfig, PolicyContext, pinned_head, recent_start
from .window import WINDOW_FOLD_CONFIG

__all__ = ["ObservationMaskingPolicy", "ObservationMaskingConfig"]


class ObservationMaskingConfig(PolicyConfig):
    keep_recent_rounds: int = Field(default=10, ge=1, description="Tool outputs of the newest K turns stay verbatim.")
    budget_tokens: int | None = Field(default=None, ge=256,
                                      description="Mask only when the view exceeds this; None masks every round.")
    min_tokens: int = Field(default=100, ge=0,
                            description="Outputs this small are left alone: a stub (~60 tokens) would not save.")
    bounded: bool = Field(default=False, description="With budget_tokens: drop the oldest rounds behind a pointer "
                                                     "block when masking alone leaves the view over budget.")


class ObservationMaskingPolicy(Policy):
    name = "observation_masking"
    Config = ObservationMaskingConfig
    fold_config = WINDOW_FOLD_CONFIG  # folds only when bounded, and then as a pointer block (a dropped span)

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list[Action]:
        cfg: ObservationMaskingConfig = self.config  # type: ignore[assignment]
        if cfg.budget_tokens is not None and view.tokens <= cfg.budget_tokens:
            return []
        head = pinned_head(view)
        recent = recent_start(view, cfg.keep_recent_rounds)
        masked = [it for it in view.items[head:recent]
                  if isinstance(it, MessageItem) and it.message.role == "tool" and it.tokens > cfg.min_tokens]
        actions: list[Action] = []
        if masked:
            actions.append(EvictAction(ids=tuple(it.key for it in masked),
                                       reason=f"observation older than {cfg.keep_recent_rounds} turns"))
        if cfg.bounded and cfg.budget_tokens is not None:
            projected = view.tokens - sum(it.tokens - 60 for it in masked)
            fold = self._drop_oldest(view, head, projected, cfg.budget_tokens, {it.key for it in masked})
            if fold is not None:
                actions.append(fold)
        return actions

    @staticmethod
    def _drop_oldest(view: View, head: int, projected: int, budget: int, masked: set[str]) -> FoldAction | None:
        """The oldest whole rounds (and the previous pointer block) that must go for the view to fit."""
        if projected <= budget:
            return None
        newest = recent_start(view, 1)
        has_block = head < len(view.items) and isinstance(view.items[head], BlockItem)
        span: list[str] = [view.items[head].key] if has_block else []
        projected += 0 if has_block else 80
        for ustart, uend in view.units():
            if ustart < head + has_block or uend > newest:
                continue
            if projected <= budget:
                break
            for it in view.items[ustart:uend]:
                span.append(it.key)
                projected -= 60 if it.key in masked else it.tokens
        if len(span) < 2 and not (span and not has_block):
            return None
        return FoldAction(span=tuple(span), mode="extractive", reason="masking + window: older rounds do not fit")
