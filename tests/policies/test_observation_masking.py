"""ObservationMaskingPolicy: tool outputs older than the newest K turns become stubs (evict)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentmem import MemorySession, Store
from agentmem.actions import EvictAction
from agentmem.policies import REGISTRY, ObservationMaskingPolicy, make_policy
from agentmem.policies.base import PolicyContext
from agentmem.replay import Trajectory, replay
from agentmem.testing import synthetic_history
from agentmem.view import MessageItem, StubItem


def _view(rounds, **cfg):
    s = MemorySession(Store(":memory:"), "o", policy=ObservationMaskingPolicy(**cfg))
    s.ingest(synthetic_history(rounds, output_chars=600))
    return s


def test_registered_and_config_is_strict():
    assert REGISTRY["observation_masking"] is ObservationMaskingPolicy
    assert make_policy("observation_masking", budget_tokens=5000).config.budget_tokens == 5000
    assert make_policy("observation_masking").config.budget_tokens is None
    with pytest.raises(ValidationError):
        ObservationMaskingPolicy(window=3)


def test_masks_only_old_large_tool_outputs():
    s = _view(20, keep_recent_rounds=5)
    actions = s.policy.decide(s.view, PolicyContext())
    assert len(actions) == 1 and isinstance(actions[0], EvictAction)
    ids = set(actions[0].ids)
    tools = [it for it in s.view.items if isinstance(it, MessageItem) and it.message.role == "tool"]
    # the newest 5 turns (with their results) are kept; every older tool output is masked
    kept_turns = [it for it in s.view.items if getattr(it, "message", None) and it.message.role == "assistant"][-5:]
    recent_calls = {tc.id for it in kept_turns for tc in it.message.tool_calls}
    assert ids == {it.key for it in tools if it.message.tool_call_id not in recent_calls}
    assert all(s.view.get(i).message.role == "tool" for i in ids)
    small = _view(20, keep_recent_rounds=5, min_tokens=10_000)
    assert small.policy.decide(small.view, PolicyContext()) == []


def test_budget_gates_masking_and_masks_in_one_batch():
    s = _view(20, keep_recent_rounds=5, budget_tokens=100_000)
    assert s.policy.decide(s.view, PolicyContext()) == []
    traj = Trajectory.from_messages("o", synthetic_history(60, output_chars=600))
    rounds = [r.record for r in replay(traj, policy="observation_masking", budget_tokens=4000, keep_recent_rounds=5)]
    acting = [r for r in rounds if r["actions"]]
    assert acting and all(a["kind"] == "evict" for r in acting for a in r["actions"])
    first = acting[0]["round"]
    assert all(r["raw_tokens"] <= 4000 for r in rounds[:first]) and rounds[first]["raw_tokens"] > 4000
    # the first batch masks every old output at once; masking alone cannot bound the view (assistant turns stay)
    assert acting[0]["actions"][0]["covers"] > 5


def test_every_round_without_budget_and_view_stays_valid():
    traj = Trajectory.from_messages("o", synthetic_history(30, output_chars=600))
    rounds = list(replay(traj, policy="observation_masking", keep_recent_rounds=3))
    last = rounds[-1].view
    stubs = [m for m in last if m["role"] == "tool" and m["content"].startswith("[agentmem: evicted")]
    assert stubs and all(m["role"] != "assistant" or not str(m["content"]).startswith("[agentmem") for m in last)
    assert rounds[-1].record["view_tokens"] < rounds[-1].record["raw_tokens"]


def test_stubs_are_never_evicted_again():
    s = MemorySession(Store(":memory:"), "o2", policy=ObservationMaskingPolicy(keep_recent_rounds=3))
    history = synthetic_history(12, output_chars=600)
    s.prepare(history)
    assert any(isinstance(it, StubItem) for it in s.view.items)
    assert s.policy.decide(s.view, PolicyContext()) == []  # nothing new is old yet


def test_bounded_masking_drops_the_oldest_rounds_behind_one_pointer_block():
    traj = Trajectory.from_messages("ob", synthetic_history(80, output_chars=600))
    rounds = list(replay(traj, policy="observation_masking", budget_tokens=3000, bounded=True, keep_recent_rounds=4))
    assert max(r.record["view_tokens"] for r in rounds) <= 3000 + 700  # the newest round may overshoot
    assert rounds[-1].record["view_tokens"] <= 3000
    last = [m for m in rounds[-1].view if str(m.get("content") or "").startswith("[agentmem: fold block")]
    assert len(last) == 1 and len(last[0]["content"]) < 400  # one pointer, not a summary
    unbounded = list(replay(traj, policy="observation_masking", budget_tokens=3000))
    assert unbounded[-1].record["view_tokens"] > 3000  # masking alone does not bound a long run
