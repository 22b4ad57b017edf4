"""A thinking fold applied in the round it was planned gets the policy's allotment, like an extractive fold of the
same plan; a thinker that fails leaves exactly that extractive fold (not one of the config's default size)."""

from __future__ import annotations

from agentmem import MemorySession, Store
from agentmem.policies import BudgetPolicy
from agentmem.primitives import SummarizeConfig
from agentmem.testing import ScriptedThinker, synthetic_history
from histories import COUNTER

NOTE = "Invoices are read one file at a time."


def _first_fold(tmp_path, name, *, fold_mode, thinker=None):
    policy = BudgetPolicy(budget_tokens=5000, fold_mode=fold_mode)
    session = MemorySession(Store(tmp_path / f"{name}.db"), name, policy=policy, thinker=thinker,
                            summarize_config=SummarizeConfig(max_block_tokens=200))
    history = synthetic_history(40, output_chars=600)
    for end in range(2, len(history) + 1):
        last, after = history[end - 1], (history[end] if end < len(history) else None)
        if last["role"] == "assistant" or (last["role"] == "tool" and after is not None and after["role"] == "tool"):
            continue  # the model is called after a user turn or after the last result of a round
        session.prepare(history[:end])
        events = [e for e in session.store.load_events(name) if e.kind in ("fold", "summarize")]
        if events:
            session.close()
            return events[0]
    raise AssertionError("no fold")


def test_a_thinking_block_fills_the_planned_allotment(tmp_path):
    extractive = _first_fold(tmp_path, "x", fold_mode="extractive")
    thinking = _first_fold(tmp_path, "t", fold_mode="think", thinker=ScriptedThinker([NOTE]))
    assert thinking.kind == "summarize" and len(thinking.covers) == len(extractive.covers)
    body = thinking.text.split("\n", 1)[1]
    assert f"- {NOTE}" in body
    # far beyond the thinking block's own cap (200), within what the plan gave the extractive block
    assert 200 < COUNTER.text(body) <= extractive.meta["block_tokens"] + 2
    assert thinking.meta["lines_merged"] > 5


def test_a_failed_thinker_leaves_the_extractive_fold_of_the_plan(tmp_path):
    extractive = _first_fold(tmp_path, "x", fold_mode="extractive")
    fallback = _first_fold(tmp_path, "f", fold_mode="think", thinker=ScriptedThinker([RuntimeError("down")]))
    assert fallback.kind == "fold" and "fallback" in fallback.meta
    assert len(fallback.covers) == len(extractive.covers)
    assert fallback.text.split("\n", 1)[1] == extractive.text.split("\n", 1)[1]  # the header names the ids
