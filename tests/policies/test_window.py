"""WindowPolicy: the newest whole rounds within the budget, everything older behind one small pointer block."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentmem import MemorySession, Store
from agentmem.actions import FoldAction
from agentmem.policies import REGISTRY, WindowPolicy, make_policy
from agentmem.policies.base import PolicyContext
from agentmem.policies.window import WINDOW_FOLD_CONFIG
from agentmem.replay import Trajectory, replay
from agentmem.testing import synthetic_history
from agentmem.view import BlockItem, MessageItem


def _session(policy, **kw):
    return MemorySession(Store(":memory:"), "w", policy=policy, **kw)


def test_registered_and_config_is_strict():
    assert REGISTRY["window"] is WindowPolicy
    assert make_policy("window", budget_tokens=3000).config.budget_tokens == 3000
    with pytest.raises(ValidationError):
        WindowPolicy(budget_tokens=3000, low_ratio=0.5)


def test_under_budget_does_nothing():
    s = _session(WindowPolicy(budget_tokens=100_000))
    s.ingest(synthetic_history(10))
    assert s.policy.decide(s.view, PolicyContext()) == []


def test_decides_one_fold_of_the_oldest_rounds_without_touching_the_view():
    s = _session(WindowPolicy(budget_tokens=3000))
    s.ingest(synthetic_history(30, output_chars=600))
    keys = s.view.keys()
    actions = s.policy.decide(s.view, PolicyContext())
    assert s.view.keys() == keys  # a policy never mutates the view
    assert len(actions) == 1 and isinstance(actions[0], FoldAction) and actions[0].mode == "extractive"
    span = actions[0].span
    assert span[0] == keys[2]  # right after the pinned system message and task
    kept = sum(it.tokens for it in s.view.items if it.key not in span)
    assert kept + 80 <= 3000 < kept + 80 + s.view.items[keys.index(span[-1])].tokens + 200


def test_window_slides_with_one_small_pointer_block_and_stays_in_budget():
    traj = Trajectory.from_messages("w", synthetic_history(80, output_chars=600))
    rounds = list(replay(traj, policy="window", budget_tokens=3000))
    assert max(r.record["view_tokens"] for r in rounds) <= 3000
    last = rounds[-1].view
    assert last[0]["role"] == "system" and last[1]["content"].startswith("Reconcile")  # pinned head
    blocks = [m for m in last if str(m.get("content", "")).startswith("[agentmem")]
    assert len(blocks) == 1  # one pointer block, re-folded as the window slides
    # the pointer is small: the header, at most one value and one short step line
    assert len(blocks[0]["content"]) < 400 and blocks[0]["content"].count(",") <= 2
    assert sum(1 for r in rounds if r.record["actions"]) > 20  # slides nearly every round once full


def test_session_with_window_fold_config_keeps_the_newest_rounds_verbatim():
    s = _session(WindowPolicy(budget_tokens=3000), fold_config=WINDOW_FOLD_CONFIG)
    history = synthetic_history(40, output_chars=600)
    s.prepare(history)
    items = s.view.items
    assert isinstance(items[2], BlockItem) and all(isinstance(it, MessageItem) for it in items[3:])
    assert items[-1].message.content == history[-1]["content"]
    s.view.validate(allow_open_tail=False)


def test_live_sessions_fold_with_the_window_pointer_config(tmp_path):
    """AgentMemory(policy="window") folds like replay does: a pointer block, not a summary."""
    from agentmem import AgentMemory
    from agentmem.policies.window import WINDOW_FOLD_CONFIG

    memory = AgentMemory(policy="window", budget_tokens=2000, store=tmp_path / "w.db")
    assert memory.session.fold_config == WINDOW_FOLD_CONFIG
    budget_memory = AgentMemory(policy="budget", store=tmp_path / "b.db")
    assert budget_memory.session.fold_config != WINDOW_FOLD_CONFIG
