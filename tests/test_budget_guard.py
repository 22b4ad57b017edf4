"""The budget guard: pure decisions over a view, applied by the session through the evict primitive."""

from __future__ import annotations

import json
import warnings

import pytest

from agentmem import AgentMemory
from agentmem.budget_guard import BudgetGuardConfig, OverBudgetError, OverBudgetWarning, check_budget, guard_actions
from agentmem.testing import ScriptedCompletion, make_response
from histories import COUNTER, parsed, snapshot, view_of


def _round(i: int, name: str, size: int) -> list[dict]:
    return [{"id": f"a{i}", "role": "assistant", "content": None,
             "tool_calls": [{"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": "{}"}}]},
            {"id": f"t{i}", "role": "tool", "tool_call_id": f"c{i}", "content": "word " * size}]


def _view(*rounds):
    msgs = [{"id": "s", "role": "system", "content": "sys"}, {"id": "u", "role": "user", "content": "task"}]
    for r in rounds:
        msgs += r
    return view_of(parsed(msgs))


def test_older_outputs_go_first_and_the_newest_recall_answer_stays():
    view = _view(_round(0, "read", 900), _round(1, "read", 300), _round(2, "recall_memory", 1200))
    before = snapshot(view)
    cfg = BudgetGuardConfig(budget_tokens=view.tokens - 500)
    (action,) = guard_actions(view, cfg)
    assert action.kind == "evict" and action.ids == ("t0",)  # the largest older output suffices
    assert snapshot(view) == before  # pure
    (action,) = guard_actions(view, BudgetGuardConfig(budget_tokens=600))
    assert action.ids == ("t0", "t1")  # never the recall answer the agent just asked for
    assert guard_actions(view, BudgetGuardConfig(budget_tokens=view.tokens)) == []


def test_outside_tokens_count_and_the_report_warns_or_raises():
    view = _view(_round(0, "read", 50))
    cfg = BudgetGuardConfig(budget_tokens=view.tokens + 10)
    assert check_budget(view, cfg)["over_by"] == 0
    with pytest.warns(OverBudgetWarning, match="exceeds the budget"):
        report = check_budget(view, cfg, outside_tokens=100)
    assert report["over_by"] == 90 and report["request_tokens"] == view.tokens + 100
    with pytest.raises(OverBudgetError) as err:
        check_budget(view, cfg.model_copy(update={"on_over_budget": "raise"}), outside_tokens=100)
    assert err.value.report == report
    with pytest.raises(ValueError):
        BudgetGuardConfig(budget_tokens=100, on_over_budget="ignore")


def test_agent_memory_sends_a_2mb_newest_output_as_a_stub_and_counts_tool_schemas(tmp_path):
    tools = [{"type": "function", "function": {"name": "dump", "description": "d " * 400,
                                               "parameters": {"type": "object", "properties": {}}}}]
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=tmp_path / "m.db", budget_tokens=4000)
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "dump it"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "d", "type": "function", "function": {"name": "dump", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "d", "content": "x y z " * 350_000}]
    memory.completion(model="gpt-4o", messages=history, tools=tools)
    sent = client.calls[-1]["messages"]
    assert sent[-1]["content"].startswith("[agentmem: evicted") and len(json.dumps(sent)) < 5000
    report = memory.last_round["budget"]
    assert report["outside_tokens"] == COUNTER.tools(tools) > 400
    assert report["request_tokens"] <= 4000 and report["over_by"] == 0
    assert memory.store.load_messages(memory.session_id)[3].message.content == history[3]["content"]  # lossless


def test_agent_memory_raises_before_the_model_call_when_the_prompt_alone_is_over(tmp_path):
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=tmp_path / "m.db", budget_tokens=1000, on_over_budget="raise")
    with pytest.raises(OverBudgetError, match="against a budget of 1000"):
        memory.completion(model="gpt-4o", messages=[{"role": "system", "content": "rule " * 2000},
                                                    {"role": "user", "content": "hi"}])
    assert client.calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="on_over_budget"):
            AgentMemory(client, store=tmp_path / "n.db", budget_tokens=1000, on_over_budget="ignore")
