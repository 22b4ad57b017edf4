"""BudgetPolicy: keep the view under a token budget with as few, as large interventions as possible.

The view is pinned task + memory (blocks) + recent raw rounds. The memory gets an explicit allotment: a share
(`memory_ratio`) of what the budget leaves after the pinned task. Nothing happens under the budget; crossing it
evicts oversized old tool outputs, then folds the oldest raw rounds in one large chunk into a new block sized by
the room left in the allotment, until only `keep_ratio` of that space is raw. When the allotment is full, the
newest blocks (as few as needed) are merged with the new rounds into one block (their lines compete by score
again, nothing is summarised twice); older blocks stay where they are.
Large, rare folds and blocks that stay in place keep the view's prefix unchanged for long stretches, which
provider prompt caches and KV caches reuse.
Above a soft watermark a thinking fold can be planned ahead and run in the background (see MemorySession).
With auto_recall, the newest messages are used as a query over the archive each round, so values from folded or
evicted spans come back when the conversation turns to them again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agentmem.actions import Action, EvictAction, FoldAction, RecallAction
from agentmem.archive import RECALL_TOOL_NAME
from agentmem.messages import message_text
from agentmem.values import extract_values
from agentmem.view import BlockItem, MessageItem, RecalledItem, StubItem, View

from .base import Policy, PolicyConfig, PolicyContext, pinned_head, recent_start

__all__ = ["BudgetPolicy", "BudgetConfig", "recall_query", "recall_streak_start"]


class BudgetConfig(PolicyConfig):
    budget_tokens: int = Field(default=8000, ge=256, description="High watermark: act when the view exceeds it.")
    low_ratio: float = Field(default=0.6, gt=0.05, lt=1, description="Fold down to this share of the budget.")
    soft_ratio: float = Field(default=0.85, gt=0.05, le=1,
                              description="Above this share a thinking fold is planned ahead (background).")
    keep_recent_rounds: int = Field(default=2, ge=1, description="Newest assistant turns never folded or evicted "
                                    "(the newest always; older ones only while they fit in recent_share).")
    recent_share: float = Field(default=0.15, gt=0, le=1,
                                description="The recent rounds before the newest stay raw only while they hold at "
                                            "most this share of the space after the pinned task: at a tight budget "
                                            "the memory gets the room instead.")
    evict_tool_tokens: int = Field(default=4000, ge=64,
                                   description="Tool outputs above this are evicted (stubbed) before any fold; "
                                               "smaller ones are folded with their content, so their lines can "
                                               "stay in memory. At 1,500 an output the agent had just read left "
                                               "the view at the next round and its block was sized by the stub: "
                                               "SWE@6000 values last seen 10+ rounds back 71.2 -> 71.9 %, "
                                               "held-out 80.0 -> 81.0 %, SWE@8000 81.8 -> 84.0 %.")
    fold_mode: Literal["extractive", "think"] = "extractive"
    block_tokens: int = Field(default=500, ge=32, description="Expected size of a thinking block (for planning).")
    memory_ratio: float = Field(default=0.8, gt=0, lt=1,
                                description="Share of the budget left after the pinned task that blocks may hold.")
    keep_ratio: float = Field(default=0.05, gt=0, lt=1,
                              description="Share of that space left to raw rounds right after a fold.")
    max_block_share: float = Field(default=0.7, gt=0, le=1,
                                   description="A new block is at most this share of the raw tokens it replaces.")
    max_new_block_ratio: float = Field(default=0.6, gt=0, le=1,
                                       description="A new (unmerged) block holds at most this share of the allotment, "
                                                   "so no early block can hog the memory. 0.4 -> 0.6: the first "
                                                   "fold of a session (the exploration the agent comes back to) "
                                                   "was squeezed while the allotment stood empty; values last seen "
                                                   "10+ rounds back SWE@6000 77.5 -> 80.9 %, SWE@8000 85.2 -> 86.4 "
                                                   "%, tau@4000 87.9 -> 98.5 %, held-out SWE@6000 85.3 -> 84.9 %, "
                                                   "@8000 93.8 (same).")
    min_memory_ratio: float = Field(default=0.3, ge=0, le=1,
                                    description="Memory gives way to large newest rounds down to this share of "
                                                "its allotment, no further (low enough that a huge newest round "
                                                "still fits the budget beside a large pinned task).")
    merge_share: float = Field(default=0.6, gt=0, le=1,
                               description="A merged block takes this share of the room it frees.")
    min_new_block_ratio: float = Field(default=0.15, gt=0, le=1,
                                       description="Merge the blocks when less than this share of the allotment "
                                                   "is left for a new one.")
    regrow_block_ratio: float = Field(default=0.1, ge=0, lt=1,
                                      description="The newest block, when smaller than this share of the allotment "
                                                  "(squeezed by a large newest round, or folded from a short span), "
                                                  "is merged into the next fold, which selects again from the "
                                                  "messages it stands for with the room the fold has. 0 -> 0.1: "
                                                  "held-out SWE@6000 values last seen 10+ rounds back 86.7 -> "
                                                  "89.7 %, SWE@8000 87.7 -> 87.9 %, SWE@6000 81.4 (same).")
    keep_recall_ratio: float = Field(default=0.9, ge=0, lt=1,
                                     description="Share of the space after the pinned task that a trailing run of "
                                                 "recall rounds (answers the agent is still reading) may hold "
                                                 "unfolded, the keep_recent_rounds included (0.75 -> 0.9: an "
                                                 "answer of four 1,200-token pages stays whole at 6,000; "
                                                 "appworld-lite phone_texts_summary_note 0 -> 2 of 3 seeds).")
    working_ratio: float = Field(default=0.7, ge=0, lt=1,
                                 description="Share of the space after the pinned task kept for raw rounds (the "
                                             "agent's working set): memory holds at most the rest, and a fold "
                                             "leaves at least half of this share raw. A live agent pages and "
                                             "re-reads what it is working on. Applies while a recall round is raw in "
                                             "the view (the agent recalls: memory did not carry its working set); "
                                             "0 lets memory_ratio/keep_ratio rule always.")
    recall_memory_ratio: float = Field(default=0.0, ge=0, le=1,
                                       description="While such a run is over budget, memory gives way down to this "
                                                   "share of its allotment (instead of min_memory_ratio): the agent "
                                                   "is reading answers from the archive, where memory's content "
                                                   "stays (0.2 -> 0: appworld-lite hard tasks 87.2 -> 89.7 % at "
                                                   "6,000, 51.3 -> 64.1 % at 4,000, all 39).")
    auto_recall: bool = Field(default=False, description="Query the archive with the newest messages each round.")
    recall_tokens: int = Field(default=300, ge=32, description="Budget of one auto-recalled snippet.")

    @model_validator(mode="after")
    def _check(self) -> BudgetConfig:
        if self.block_tokens >= self.budget_tokens * self.low_ratio:
            raise ValueError("block_tokens must be well below budget_tokens * low_ratio")
        if self.soft_ratio < self.low_ratio:
            raise ValueError("soft_ratio must not be below low_ratio")
        if self.memory_ratio + self.keep_ratio >= 0.95:
            raise ValueError("memory_ratio + keep_ratio must leave room for new rounds between folds")
        return self


def recall_streak_start(view: View, recent: int, cap_tokens: int) -> int:
    """Where the trailing run of recall rounds before `recent` begins (at most `cap_tokens` of them).

    An agent that pages through recall answers, or recalls several look-ups before it can act, reads them together
    in a later round: folding the oldest of them while it still asks for the next one undoes its own recall (and
    it asks again, round after round). The agent's next real step ends the run and the answers may be folded."""
    start, used = recent, 0
    for ustart, uend in reversed(view.units()):
        if uend > recent:
            continue
        msg = getattr(view.items[ustart], "message", None)
        if msg is None or msg.role != "assistant" or not msg.tool_calls or \
                any(tc.name != RECALL_TOOL_NAME for tc in msg.tool_calls):
            break
        used += sum(it.tokens for it in view.items[ustart:uend])
        if used > cap_tokens:
            break
        start = ustart
    return start


def recalled_in_view(view: View, head: int) -> bool:
    """Whether the agent called the recall tool in a round still raw in the view.

    An agent that recalls is saying that memory did not carry what it works on: while it does, its working set
    (raw rounds) gets `working_ratio` of the space. An agent that never recalls keeps the larger memory allotment."""
    for it in view.items[head:]:
        msg = getattr(it, "message", None)
        if isinstance(it, MessageItem) and msg.role == "assistant" and \
                any(tc.name == RECALL_TOOL_NAME for tc in msg.tool_calls or ()):
            return True
    return False


def recall_query(view: View, *, max_terms: int = 12) -> str | None:
    """A query from the newest messages (since the last assistant turn, and that turn's arguments)."""
    texts: list[str] = []
    for it in reversed(view.items):
        msg = getattr(it, "message", None)
        if msg is None:
            break
        texts.append(message_text(msg)[:4000])
        if msg.role == "assistant":
            break
    values = extract_values("\n".join(texts), limit=max_terms)
    return " ".join(values) if values else None


class BudgetPolicy(Policy):
    name = "budget"
    Config = BudgetConfig

    def decide(self, view: View, ctx: PolicyContext, thinking: str | None = None) -> list[Action]:
        cfg: BudgetConfig = self.config  # type: ignore[assignment]
        actions: list[Action] = []
        if view.tokens > cfg.budget_tokens:
            actions.extend(self.plan(view))
        if cfg.auto_recall and any(isinstance(it, (BlockItem, StubItem)) for it in view.items):
            query = recall_query(view)
            last = view.items[-1] if view.items else None
            if query and not isinstance(last, RecalledItem):
                actions.append(RecallAction(query=query, budget_tokens=cfg.recall_tokens, reason="auto-recall"))
        return actions

    def plan_ahead(self, view: View, ctx: PolicyContext) -> FoldAction | None:
        """The thinking fold to start in the background once the view passes the soft watermark."""
        cfg: BudgetConfig = self.config  # type: ignore[assignment]
        if cfg.fold_mode != "think" or view.tokens <= cfg.budget_tokens * cfg.soft_ratio:
            return None
        folds = [a for a in self.plan(view, evict=False, over=int(cfg.budget_tokens * cfg.soft_ratio))
                 if isinstance(a, FoldAction)]
        return folds[0] if folds else None

    def plan(self, view: View, *, target: int | None = None, evict: bool = True,
             over: int | None = None) -> list[Action]:
        """Evictions and one fold that leave the memory within its allotment and `keep_ratio` of the space raw.

        `target` (tokens) overrides how many raw tokens may stay after the fold; the fold is planned only when the
        view (after evictions) exceeds `over` (default: the budget; plan_ahead uses the soft watermark)."""
        cfg: BudgetConfig = self.config  # type: ignore[assignment]
        head = pinned_head(view)
        recent = recent_start(view, cfg.keep_recent_rounds)
        newest = recent_start(view, 1)
        space = max(0, cfg.budget_tokens - sum(it.tokens for it in view.items[:head]))
        if sum(it.tokens for it in view.items[recent:newest]) > space * cfg.recent_share:
            recent = newest
        # recall answers the agent is still reading stay raw; memory gives way to them (see recall_streak_start)
        streak = recall_streak_start(view, recent, int(space * cfg.keep_recall_ratio)
                                     - sum(it.tokens for it in view.items[recent:]))
        reading = streak < recent
        recent = streak
        working = cfg.working_ratio if recalled_in_view(view, head) else 0.0
        allotment = max(64, int(space * min(cfg.memory_ratio, 1 - working)))
        floor = int(allotment * (cfg.recall_memory_ratio if reading else cfg.min_memory_ratio))
        raw_keep = int(space * max(cfg.keep_ratio, working / 2)) if target is None else target
        actions: list[Action] = []
        saved: dict[str, int] = {}
        # oversized outputs go first, from the recent rounds too (only the newest round is untouchable): large
        # recent outputs are what would otherwise keep the view over budget and force a tiny fold every round
        big = [it for it in view.items[head:newest]
               if isinstance(it, MessageItem) and it.message.role == "tool" and it.tokens > cfg.evict_tool_tokens]
        if big and evict:
            for it in big:
                saved[it.key] = it.tokens - 60
            actions.append(EvictAction(ids=tuple(it.key for it in big), reason="oversized tool outputs"))
        if view.tokens - sum(saved.values()) <= (cfg.budget_tokens if over is None else over) or recent <= head:
            return actions
        # leading blocks stay put (stable prefix) while the allotment has room for a new block; when it has not,
        # the newest blocks are merged with the new rounds (the fewest needed), so the oldest stay in place
        start = head
        blocks: list[tuple[int, int]] = []
        while start < recent and isinstance(view.items[start], BlockItem):
            blocks.append((start, view.items[start].tokens))
            start += 1
        room = allotment - sum(t for _i, t in blocks)
        first = start
        while blocks and room < allotment * cfg.min_new_block_ratio:
            first, tokens = blocks.pop()
            room += tokens
        if first == start and blocks and blocks[-1][1] < allotment * cfg.regrow_block_ratio:
            first, tokens = blocks.pop()  # a small newest block re-grows: merged, it selects again from its originals
            room += tokens
        raw_left = sum(it.tokens - saved.get(it.key, 0) for it in view.items[start:])
        raw_span: list[str] = []
        span_raw = 0
        for ustart, uend in view.units():
            if ustart < start or uend > recent:
                continue
            for it in view.items[ustart:uend]:
                raw_span.append(it.key)
                size = it.tokens - saved.get(it.key, 0)
                span_raw += size
                raw_left -= size
            if raw_left <= raw_keep:
                break
        # the view after the fold, without its memory (112: the block's header, data wrapper and message overhead)
        base = view.tokens - sum(saved.values()) - span_raw + 112

        def sized(first: int, room: int) -> tuple[int, int]:
            """(block size, tokens over budget) when the blocks from `first` on are merged into the new block."""
            merge = first < start
            size = int(room * cfg.merge_share) if merge else \
                min(room, int(span_raw * cfg.max_block_share), int(allotment * cfg.max_new_block_ratio))
            kept = sum(it.tokens for it in view.items[head:first])
            return size, base - sum(it.tokens for it in view.items[head:start]) + kept + size - cfg.budget_tokens

        size, overshoot = sized(first, room)
        # when the newest rounds are large, memory gives way (more blocks merged, a smaller block) rather than the
        # view overshooting the budget: first the blocks above the floor, then the new block shrinks
        while overshoot > 0 and blocks and sum(t for _i, t in blocks[:-1]) >= floor:
            first, tokens = blocks.pop()
            room += tokens
            size, overshoot = sized(first, room)

        def fitted(first: int, size: int, overshoot: int) -> int:
            kept = sum(it.tokens for it in view.items[head:first])
            return max(min(size, floor - kept), size - overshoot) if overshoot > 0 else size

        # still over with the smallest block the floor allows: the newest remaining block gives way too, merged
        # down to what the budget needs (never below the floor); rare (a huge newest round), so the older blocks
        # are not re-folded on ordinary rounds
        while blocks and max(32, fitted(first, size, overshoot)) > size - overshoot and \
                sum(it.tokens for it in view.items[head:first]) > floor:
            first, tokens = blocks.pop()
            room += tokens
            size, overshoot = sized(first, room)
        size = fitted(first, size, overshoot)  # beyond the floor the budget guard acts
        merge = first < start
        span = [it.key for it in view.items[first:start]] + raw_span
        shrink = reading and merge and overshoot > 0  # the newest block shrinks for the answers being read
        if span_raw == 0 and not (merge and (len(span) >= 2 or shrink)):
            return actions
        if len(span) >= 2 or span_raw > size * 2 or shrink:  # folding one item into a block of its size gains nothing
            actions.append(FoldAction(span=tuple(span), mode=cfg.fold_mode, block_tokens=max(32, size),
                                      reason="memory allotment full: merge the newest blocks" if merge
                                      else "over budget"))
        return actions
