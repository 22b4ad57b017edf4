"""ThinkerPolicy: strict JSON decisions from a scripted thinker, validated against the view, with fallbacks."""

from __future__ import annotations

import json

import pytest

from agentmem import MemorySession, Store
from agentmem.policies import ThinkerPolicy
from agentmem.policies.thinker import DecisionError, parse_decision
from agentmem.testing import ScriptedThinker, synthetic_history


def _session(tmp_path, answers, **cfg):
    policy = ThinkerPolicy(budget_tokens=4000, keep_recent_rounds=3, **cfg)
    thinker = ScriptedThinker(answers)
    return MemorySession(Store(tmp_path / "t.db"), "t", policy=policy, thinker=thinker), thinker


def _fold_answer(req):
    """Fold every movable item: read the index the policy showed and answer with its first..last movable key."""
    user = req.messages[-1]["content"]
    movable = [line.split(" | ")[0].strip() for line in user.splitlines() if line.startswith("  ")]
    return "Thinking about it...\n" + json.dumps({"actions": [{"op": "fold", "from": movable[0], "to": movable[-1]}]})


def test_valid_decision_is_applied(tmp_path):
    session, thinker = _session(tmp_path, _fold_answer)
    session.prepare(synthetic_history(40, output_chars=400))
    assert thinker.requests and thinker.requests[0].purpose == "policy"
    prompt = thinker.requests[0].messages[-1]["content"]
    assert "never follow" in thinker.requests[0].messages[0]["content"]
    assert '"' in prompt  # previews are quoted data
    folds = [a for a in session.last.actions if a["kind"] == "fold"]
    assert folds and folds[0]["reason"] == "thinker decision"
    assert session.view.tokens <= 4000
    session.view.validate()


@pytest.mark.parametrize("answer, why", [
    ("I would fold some things.", "no JSON"),
    ('{"actions": [{"op": "fold", "from": "nope", "to": "nope2"}]}', "unknown keys"),
    ('{"actions": [{"op": "delete", "ids": ["x"]}]}', "grammar"),
    ('{"actions": [{"op": "none"}]}', "over the budget"),
    ('{"actions": [{"op": "evict", "ids": ["SYSTEM"]}]}', "pinned"),
])
def test_invalid_decisions_fall_back_to_budget(tmp_path, answer, why):
    history = synthetic_history(40, output_chars=400)
    session, thinker = _session(tmp_path, [answer.replace("SYSTEM", "m-sys")])
    history[0]["id"] = "m-sys"
    session.prepare(history)
    assert thinker.requests, "the thinker was not consulted"
    acts = session.last.actions
    assert acts, f"no fallback actions ({why})"
    assert all("fallback: invalid thinker decision" in a["reason"] for a in acts)
    assert session.view.tokens <= 4000
    session.view.validate()


def test_thinker_failure_and_no_thinker_fall_back(tmp_path):
    session, _ = _session(tmp_path, [RuntimeError("timeout")])
    session.prepare(synthetic_history(40, output_chars=400))
    assert session.last.rejected and "policy thinker failed" in session.last.rejected[0]
    assert session.view.tokens <= 4000
    no_thinker = MemorySession(Store(tmp_path / "n.db"), "n", policy=ThinkerPolicy(budget_tokens=4000))
    no_thinker.prepare(synthetic_history(40, output_chars=400))
    assert all("fallback: no thinker decision" in a["reason"] for a in no_thinker.last.actions)
    assert no_thinker.view.tokens <= 4000


def test_parse_decision_is_strict():
    d = parse_decision('<think>hmm {not json}</think> {"actions": [{"op": "recall", "query": "inv_1"}]}')
    assert d.actions[0].op == "recall"
    with pytest.raises(DecisionError):
        parse_decision('{"actions": [{"op": "fold", "from": "a", "to": "b", "extra": 1}]}')
    with pytest.raises(DecisionError):
        parse_decision('{"actions": [')
