"""ThinkerPolicy: the model is asked at the soft watermark, answers with schema-constrained JSON, its decision is
validated per action, repaired by the budget rule when it would end over budget, and logged every time."""

from __future__ import annotations

import json
import time

import pytest

from agentmem import MemorySession, Store
from agentmem.policies import ThinkerPolicy
from agentmem.policies.thinker import DecisionError, decision_schema, parse_decision
from agentmem.testing import ScriptedThinker, synthetic_history


def _session(tmp_path, answers, *, background=False, **cfg):
    policy = ThinkerPolicy(**{"budget_tokens": 4000, "keep_recent_rounds": 3, **cfg})
    thinker = ScriptedThinker(answers)
    return MemorySession(Store(tmp_path / "t.db"), "t", policy=policy, thinker=thinker,
                         background=background), thinker


def _index_keys(req):
    """The keys of the movable items the policy listed (the lines between the heading and the closing line)."""
    user = req.messages[-1]["content"]
    body = user.split("Movable items, oldest first:\n", 1)[1].rsplit("\nAnswer with", 1)[0]
    return [line.strip().split(" | ")[0] for line in body.splitlines() if " | " in line]


def _fold_all(req):
    keys = _index_keys(req)
    return "Thinking about it...\n" + json.dumps({"actions": [{"op": "fold", "from": keys[0], "to": keys[-1]}]})


def _decisions(session):
    return [a for a in session.last.actions if a["kind"] == "decision"]


def test_valid_decision_is_applied_and_logged(tmp_path):
    session, thinker = _session(tmp_path, _fold_all)
    session.prepare(synthetic_history(70, output_chars=300))
    req = thinker.requests[0]
    assert req.purpose == "policy" and "never follow" in req.messages[0]["content"]
    keys = _index_keys(req)
    assert len(keys) > 120  # every movable item is listed (the old index showed the newest 120 items)
    schema = req.json_schema
    fold = schema["properties"]["actions"]["items"]["anyOf"][0]
    assert fold["properties"]["from"]["enum"] == keys  # a constrained model can only name movable keys
    folds = [a for a in session.last.actions if a["kind"] == "fold"]
    assert folds and folds[0]["reason"] == "thinker decision"
    (d,) = _decisions(session)
    assert d["valid"] and d["applied"] == 1 and not d["repaired"] and not d["fallback"] and d["errors"] == []
    assert keys == [f"i{n}" for n in range(1, len(keys) + 1)]  # short names, not the long message ids
    assert d["ops"][0].startswith("fold m-") and len(d["ops"]) == 1 and d["background"] is False  # logged as keys
    assert session.view.tokens <= 4000
    session.view.validate()


def test_asked_at_the_soft_watermark_not_only_past_the_budget(tmp_path):
    history = synthetic_history(60, output_chars=300)
    probe, _ = _session(tmp_path / "p", ['{"actions": [{"op": "keep"}]}'])
    # find a prefix whose view is between the soft watermark (0.85 * 4000) and the budget
    cut = next(n for n in range(10, len(history)) if history[n]["role"] == "assistant"
               and 3400 < probe.counter.messages(history[:n]) <= 4000)
    session, thinker = _session(tmp_path, _fold_all)
    session.prepare(history[:cut])
    assert session.view.tokens < 4000 and len(thinker.requests) == 1  # asked below the budget
    assert _decisions(session)[0]["applied"] == 1


def test_keep_is_not_asked_again_until_the_view_grows(tmp_path):
    session, thinker = _session(tmp_path, ['{"actions": [{"op": "keep"}]}'], budget_tokens=8000, ask_step_ratio=0.2)
    history = synthetic_history(80, output_chars=300)
    asks, rounds_above_soft = [], 0
    for n in range(20, len(history)):
        if history[n]["role"] != "assistant":
            continue
        before = len(thinker.requests)
        session.prepare(history[:n])
        if len(thinker.requests) > before:
            asks.append(_decisions(session)[0])
        if asks and asks[-1]["repaired"]:  # went over the budget: asked at once, and the budget rule folded
            break
        rounds_above_soft += session.view.tokens > 0.85 * 8000
    # soft watermark..budget is 1,200 tokens, less than one ask step (1,600): one ask there, however many rounds
    assert rounds_above_soft >= 3 and len(asks) == 2
    assert not asks[0]["applied"] and not asks[0]["repaired"] and asks[1]["repaired"]


@pytest.mark.parametrize("answer, error", [
    ('{"actions": [{"op": "fold", "from": "nope", "to": "nope2"}]}', "unknown keys"),
    ('{"actions": [{"op": "evict", "ids": ["m-sys"]}]}', "cannot evict"),
    ('{"actions": [{"op": "keep"}]}', None),
])
def test_decision_over_budget_is_repaired_by_the_budget_rule(tmp_path, answer, error):
    history = synthetic_history(40, output_chars=400)
    history[0]["id"] = "m-sys"
    session, thinker = _session(tmp_path, [answer])
    session.prepare(history)
    (d,) = _decisions(session)
    assert d["repaired"] and d["valid"] is (error is None)
    if error:
        assert error in d["errors"][0]
    acts = [a for a in session.last.actions if a["kind"] in ("fold", "evict")]
    assert acts and all("budget rule completes" in a["reason"] for a in acts)
    assert session.view.tokens <= 4000
    session.view.validate()


def test_partly_valid_decision_keeps_the_valid_actions_and_completes_them(tmp_path):
    def answer(req):
        keys = _index_keys(req)
        tool_keys = [k for k in keys if k.startswith("m-")][:0]
        return json.dumps({"actions": [{"op": "fold", "from": keys[0], "to": keys[5]},
                                       {"op": "evict", "ids": ["no-such-key"] + tool_keys}]})

    session, _ = _session(tmp_path, answer)
    session.prepare(synthetic_history(40, output_chars=400))
    (d,) = _decisions(session)
    assert not d["valid"] and d["applied"] == 1 and d["repaired"] and "no-such-key" in d["errors"][0]
    reasons = [a["reason"] for a in session.last.actions if a["kind"] == "fold"]
    assert reasons[0] == "thinker decision" and any("budget rule completes" in r for r in reasons[1:])
    assert session.view.tokens <= 4000


def test_fold_is_widened_to_whole_turns(tmp_path):
    def answer(req):  # names a tool result as the start: the fold must take its call too
        lines = req.messages[-1]["content"].split("Movable items, oldest first:\n", 1)[1].splitlines()
        tool = next(ln.strip().split(" | ")[0] for ln in lines if ln.startswith("  "))
        keys = _index_keys(req)
        return json.dumps({"actions": [{"op": "fold", "from": tool, "to": keys[-1]}]})

    session, _ = _session(tmp_path, answer)
    session.prepare(synthetic_history(40, output_chars=400))
    (d,) = _decisions(session)
    assert d["valid"] and d["applied"] == 1
    session.view.validate()


def test_unparseable_answer_and_thinker_failure_fall_back(tmp_path):
    session, _ = _session(tmp_path, ["I would fold some things."])
    session.prepare(synthetic_history(40, output_chars=400))
    (d,) = _decisions(session)
    assert not d["valid"] and d["fallback"] and "no JSON" in d["errors"][0]
    assert all("fallback: invalid thinker decision" in a["reason"] for a in session.last.actions
               if a["kind"] != "decision")
    assert session.view.tokens <= 4000

    failing, _ = _session(tmp_path / "f", [RuntimeError("timeout")])
    failing.prepare(synthetic_history(40, output_chars=400))
    (d,) = _decisions(failing)
    assert d["fallback"] and "thinker failed" in d["errors"][0]
    assert failing.view.tokens <= 4000

    no_thinker = MemorySession(Store(tmp_path / "n.db"), "n", policy=ThinkerPolicy(budget_tokens=4000))
    no_thinker.prepare(synthetic_history(40, output_chars=400))
    assert all("fallback: no thinker decision" in a["reason"] for a in no_thinker.last.actions)
    assert no_thinker.view.tokens <= 4000


def test_background_decision_runs_off_the_critical_path(tmp_path):
    def slow_fold_all(req):
        time.sleep(0.3)
        return _fold_all(req)

    session, thinker = _session(tmp_path, slow_fold_all, background=True, budget_tokens=8000)
    history = synthetic_history(80, output_chars=300)
    planned = collected = None
    for n in range(20, len(history)):
        if history[n]["role"] != "assistant":  # a model is called only on a history whose calls are answered
            continue
        t0 = time.perf_counter()
        session.prepare(history[:n])
        waited = time.perf_counter() - t0
        kinds = [a["kind"] for a in session.last.actions]
        if planned is None and "planned" in kinds:
            planned = n
            assert waited < 0.25  # the round that starts the decision does not wait for it
        if "decision" in kinds:
            collected = n
            break
        if planned is not None:
            time.sleep(0.4)  # the agent's own model call, meanwhile the decision finishes
    assert planned is not None and collected is not None and collected > planned
    (d,) = _decisions(session)
    assert d["background"] is True and d["valid"] and d["applied"] == 1
    assert any(a["kind"] == "fold" and a["reason"] == "thinker decision" for a in session.last.actions)
    session.close()
    session.view.validate()


def test_parse_decision_is_strict():
    d = parse_decision('<think>hmm {not json}</think> {"actions": [{"op": "recall", "query": "inv_1"}]}')
    assert d.actions[0].op == "recall"
    assert parse_decision('{"actions": [{"op": "none"}]}').actions[0].op == "none"
    with pytest.raises(DecisionError):
        parse_decision('{"actions": [{"op": "fold", "from": "a", "to": "b", "extra": 1}]}')
    with pytest.raises(DecisionError):
        parse_decision('{"actions": [')
    cut = parse_decision('{"actions": [{"op": "evict", "ids": ["m-1"]}, {"op": "fold", "from": "m-2", "to')
    assert cut.cut_off and [a.op for a in cut.actions] == ["evict"]
    with pytest.raises(DecisionError):
        parse_decision('{"actions": [{"op": "delete", "ids": ["x"]}]}')


def test_decision_schema_lists_keys_and_omits_evict_without_candidates():
    s = decision_schema(["a", "b"], [])
    ops = [o["properties"]["op"]["const"] for o in s["properties"]["actions"]["items"]["anyOf"]]
    assert ops == ["fold", "recall", "keep"]
    s = decision_schema(["a", "b"], ["b"])
    evict = s["properties"]["actions"]["items"]["anyOf"][1]
    assert evict["properties"]["ids"]["items"]["enum"] == ["b"]


def test_repeated_ids_are_taken_once_and_one_recall_per_decision(tmp_path):
    def answer(req):
        evictable = req.json_schema["properties"]["actions"]["items"]["anyOf"][1]["properties"]["ids"]["items"]
        key = evictable["enum"][0]
        return json.dumps({"actions": [{"op": "evict", "ids": [key, key, key]},
                                       {"op": "recall", "query": "inv_1"}, {"op": "recall", "query": "inv_2"}]})

    session, _ = _session(tmp_path, answer, budget_tokens=8000)
    history = synthetic_history(60, output_chars=900)
    cut = next(n for n in range(10, len(history)) if history[n]["role"] == "assistant"
               and session.counter.messages(history[:n]) > 0.87 * 8000)
    session.prepare(history[:cut])
    (d,) = _decisions(session)
    assert d["applied"] == 2 and d["errors"] == ["one recall per decision"], d["errors"]
    (ev,) = [a for a in session.last.actions if a["kind"] == "evict"]
    assert ev["covers"] == 1


def test_overlapping_and_adjacent_folds_are_merged(tmp_path):
    def answer(req):
        keys = _index_keys(req)
        return json.dumps({"actions": [{"op": "fold", "from": keys[10], "to": keys[30]},
                                       {"op": "fold", "from": keys[0], "to": keys[12]},
                                       {"op": "fold", "from": keys[31], "to": keys[-1]}]})

    session, thinker = _session(tmp_path, answer)
    session.prepare(synthetic_history(40, output_chars=400))
    (d,) = _decisions(session)
    assert d["valid"] and d["applied"] == 1 and len(d["ops"]) == 3
    (fold,) = [a for a in session.last.actions if a["kind"] == "fold"]
    assert fold["covers"] == len(_index_keys(thinker.requests[0]))
    session.view.validate()
