"""recall / unrecall: marked snippets within a counted budget, and their removal."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentmem.messages import parse_messages
from agentmem.primitives import RecallConfig, format_archive, recall, unrecall
from agentmem.view import RECALL_HEADER, EventError, RecalledItem
from histories import COUNTER, snapshot, view_of

RAW = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "task"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "bash", "arguments": "{}"}]},
    {"role": "tool", "tool_call_id": "c1", "name": "bash", "content": "secret token tok_8f3a2b9c\n" + "pad " * 3000},
    {"role": "assistant", "content": "noted"},
]


@pytest.fixture
def msgs():
    return parse_messages(RAW)


@pytest.fixture
def view(msgs):
    return view_of(msgs)


def test_recall_appends_a_marked_snippet(view, msgs):
    before = snapshot(view)
    new, ev = recall(view, found=[msgs[3], msgs[1]], counter=COUNTER, query="secret token")
    assert snapshot(view) == before
    item = new.items[-1]
    assert isinstance(item, RecalledItem) and item.key == f"rec-{ev.seq}" and item.sources == (msgs[3].id, msgs[1].id)
    assert item.text.startswith(f"{RECALL_HEADER} archived messages for query 'secret token'")
    assert f"--- {msgs[3].id} (tool/bash)" in item.text and "tok_8f3a2b9c" in item.text
    assert f"--- {msgs[1].id} (user)" in item.text
    assert ev.kind == "recall" and ev.covers == (msgs[3].id, msgs[1].id) and ev.meta["query"] == "secret token"
    assert item.tokens <= RecallConfig().budget_tokens + 8
    assert new.tokens == COUNTER.messages(new.render())
    new.validate(allow_open_tail=False)


def test_recall_budget_and_max_messages(view, msgs):
    cfg = RecallConfig(budget_tokens=100, max_messages=1, per_message_tokens=50)
    new, ev = recall(view, found=[msgs[3], msgs[1]], counter=COUNTER, config=cfg)
    assert ev.covers == (msgs[3].id,)
    assert COUNTER.text(new.items[-1].text) <= 110
    assert "for ids" in new.items[-1].text


def test_recall_of_nothing_is_no_event(view):
    same, ev = recall(view, found=[], counter=COUNTER)
    assert same is view and ev is None


def test_format_archive_cuts_each_message(msgs):
    text, ids = format_archive(msgs, counter=COUNTER, budget_tokens=300, per_message_tokens=40, heading="H")
    assert text.startswith("H\n") and ids[0] == msgs[0].id
    assert COUNTER.text(text) <= 310
    assert msgs[3].id in ids and "tok_8f3a2b9c" in text and "pad pad" in text


def test_unrecall_removes_snippets(view, msgs):
    one, ev1 = recall(view, found=[msgs[3]], counter=COUNTER)
    two, ev2 = recall(one, found=[msgs[1]], counter=COUNTER)
    before = snapshot(two)
    back, ev3 = unrecall(two, keys=[f"rec-{ev1.seq}", f"rec-{ev1.seq}"], counter=COUNTER)
    assert snapshot(two) == before
    assert ev3.kind == "unrecall" and ev3.covers == (f"rec-{ev1.seq}",)
    assert [it.key for it in back.items] == [m.id for m in msgs] + [f"rec-{ev2.seq}"]
    assert back.tokens == COUNTER.messages(back.render())
    for bad in ([], ["rec-99"], [msgs[1].id]):
        with pytest.raises(EventError):
            unrecall(back, keys=bad, counter=COUNTER)


def test_recall_between_call_and_result_is_rejected(msgs):
    open_view = view_of(msgs[:3])
    with pytest.raises(EventError, match="between an assistant tool call and its results"):
        recall(open_view, found=[msgs[1]], counter=COUNTER)


def test_recall_config_is_strict():
    with pytest.raises(ValidationError):
        RecallConfig(budget_tokens=4)
    with pytest.raises(ValidationError):
        RecallConfig(k=3)
