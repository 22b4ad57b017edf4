"""RunningSummaryPolicy: one running summary of everything older (LangMem style), think mode with a thinker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentmem import AgentMemory, MemorySession, Store
from agentmem.actions import FoldAction
from agentmem.policies import REGISTRY, RunningSummaryPolicy, make_policy
from agentmem.policies.base import PolicyContext
from agentmem.replay import Trajectory, replay
from agentmem.testing import ScriptedThinker, synthetic_history
from agentmem.view import BlockItem


def test_registered_and_config_is_strict():
    assert REGISTRY["running_summary"] is RunningSummaryPolicy
    assert make_policy("running_summary", budget_tokens=3000).config.budget_tokens == 3000
    with pytest.raises(ValidationError):
        RunningSummaryPolicy(summary_tokens=100)


def test_folds_everything_older_than_the_kept_tail():
    s = MemorySession(Store(":memory:"), "r", policy=RunningSummaryPolicy(budget_tokens=3000, keep_ratio=0.5))
    s.ingest(synthetic_history(30, output_chars=600))
    actions = s.policy.decide(s.view, PolicyContext())
    assert len(actions) == 1 and isinstance(actions[0], FoldAction) and actions[0].mode == "extractive"
    keys = s.view.keys()
    span = actions[0].span
    assert list(span) == keys[2: 2 + len(span)]  # from right after the pinned head, contiguous
    tail = sum(it.tokens for it in s.view.items[2 + len(span):])
    assert tail <= 1500 + 400  # the verbatim tail is about keep_ratio * budget


def test_one_block_that_resummarizes_itself():
    traj = Trajectory.from_messages("r", synthetic_history(100, output_chars=600))
    rounds = list(replay(traj, policy="running_summary", budget_tokens=3000))
    assert max(r.record["view_tokens"] for r in rounds) <= 3000
    folds = [a for r in rounds for a in r.record["actions"]]
    assert len(folds) >= 3 and all(a["kind"] == "fold" for a in folds)
    for r in rounds:
        blocks = [m for m in r.view if str(m.get("content", "")).startswith("[agentmem")]
        assert len(blocks) <= 1
    last = rounds[-1].view
    assert last[2]["content"].startswith("[agentmem") and "## lines kept from tool outputs" in last[2]["content"]


def test_think_mode_when_a_thinker_is_configured():
    thinker = ScriptedThinker(["- read invoices /data/invoices/0_0.json … totals pending"])
    memory = AgentMemory(store=Store(":memory:"), policy="running_summary", budget_tokens=3000, thinker=thinker)
    assert memory.policy.config.fold_mode == "think"
    memory.session.prepare(synthetic_history(30, output_chars=600))
    acts = memory.session.last.actions
    assert acts and acts[0]["kind"] == "summarize" and thinker.requests
    assert isinstance(memory.session.view.items[2], BlockItem)
