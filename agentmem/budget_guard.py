"""The budget guard: after the policy, every round, the whole request (view + tool schemas + a system prompt sent
outside the view) must fit the budget.

A policy keeps its own watermarks and, by design, never touches the newest round; a single 2 MB tool output in
that round would otherwise be sent whole. The guard decides ordinary `EvictAction`s (largest tool outputs first,
the newest round included) that the session applies through the evict primitive, so the event log records them
like any other action. What still does not fit after that is irreducible here (the system prompt, the task, tool
schemas, assistant turns, blocks): `check_budget` then warns (`OverBudgetWarning`) or raises (`OverBudgetError`),
as configured. Never a silent overshoot.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmem.actions import EvictAction
from agentmem.view import MessageItem, View

RECALL_TOOL_NAME = "recall_memory"  # the same name agentmem.session defines (imported there from here would cycle)

__all__ = ["BudgetGuardConfig", "OverBudgetError", "OverBudgetWarning", "guard_actions", "check_budget"]


class BudgetGuardConfig(BaseModel):
    """The request budget and what to do when its irreducible part does not fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_tokens: int = Field(ge=1, description="Tokens the whole request may use: view, tool schemas, system.")
    on_over_budget: Literal["warn", "raise"] = Field(
        default="warn", description="warn: OverBudgetWarning and send; raise: OverBudgetError before sending.")
    stub_tokens: int = Field(default=80, ge=1, description="Expected size of an evict stub (for planning).")


class OverBudgetError(RuntimeError):
    """The request exceeds the budget even with every tool output evicted (on_over_budget="raise").

    Raised before the model is called; the evictions already made are recorded and nothing stored is lost.
    """

    def __init__(self, report: dict[str, Any]):
        self.report = report
        super().__init__(_explain(report))


class OverBudgetWarning(UserWarning):
    """The request exceeds the budget even with every tool output evicted (on_over_budget="warn")."""


def _explain(report: dict[str, Any]) -> str:
    return (f"request is {report['request_tokens']} tokens against a budget of {report['budget_tokens']} "
            f"(view {report['view_tokens']}, tool schemas and system prompt {report['outside_tokens']}); every tool "
            "output is already a stub, the rest (system prompt, task, tool schemas, assistant turns, blocks) cannot "
            "be evicted: raise budget_tokens, shorten the prompt or tools, or fold more (lower low_ratio)")


def guard_actions(view: View, config: BudgetGuardConfig, *, outside_tokens: int = 0) -> list[EvictAction]:
    """Evictions that bring view + outside tokens within the budget.

    Tool outputs of older rounds go first, then those of the newest round; largest first within each. The newest
    round's `recall_memory` answer stays: the agent just asked for it (its size is bounded by the recall budget).
    """
    projected = view.tokens + outside_tokens
    if projected <= config.budget_tokens:
        return []
    newest = _newest_round_start(view)
    candidates = []
    for i, it in enumerate(view.items):
        if not (isinstance(it, MessageItem) and it.message.role == "tool" and it.tokens > config.stub_tokens):
            continue
        in_newest = i >= newest
        if in_newest and _tool_name(view, newest, it) == RECALL_TOOL_NAME:
            continue
        candidates.append((in_newest, -it.tokens, it.pos, it.key, it.tokens))
    chosen: list[str] = []
    for _, _, _, key, tokens in sorted(candidates):
        if projected <= config.budget_tokens:
            break
        chosen.append(key)
        projected -= tokens - config.stub_tokens
    if not chosen:
        return []
    return [EvictAction(ids=tuple(chosen), reason="budget guard: request over budget")]


def _newest_round_start(view: View) -> int:
    """Index of the newest assistant turn (its tool results follow it); len(items) when there is none."""
    for i in range(len(view.items) - 1, -1, -1):
        msg = getattr(view.items[i], "message", None)
        if msg is not None and msg.role == "assistant":
            return i
    return len(view.items)


def _tool_name(view: View, newest: int, item: MessageItem) -> str | None:
    call = getattr(view.items[newest], "message", None) if newest < len(view.items) else None
    for tc in getattr(call, "tool_calls", ()):
        if tc.id == item.message.tool_call_id:
            return tc.name
    return item.message.name


def check_budget(view: View, config: BudgetGuardConfig, *, outside_tokens: int = 0) -> dict[str, Any]:
    """The request's size against the budget; warns or raises (per config) when it does not fit."""
    request = view.tokens + outside_tokens
    report = {"budget_tokens": config.budget_tokens, "request_tokens": request, "view_tokens": view.tokens,
              "outside_tokens": outside_tokens, "over_by": max(0, request - config.budget_tokens)}
    if report["over_by"]:
        if config.on_over_budget == "raise":
            raise OverBudgetError(report)
        # no per-round figures in the text: Python's warning filter then shows it once, not every round
        warnings.warn(f"the request exceeds the budget of {config.budget_tokens} tokens with every tool output "
                      "evicted (system prompt, task, tool schemas, assistant turns and blocks remain); the figures "
                      "are in last_round['budget']", OverBudgetWarning, stacklevel=4)
    return report
