"""The view: items, units, validation, apply_event and replay."""

from __future__ import annotations

import pytest

from agentmem.messages import HistoryError, parse_messages
from agentmem.view import (
    BLOCK_HEADER,
    BlockItem,
    Event,
    framed,
    EventError,
    MessageItem,
    RecalledItem,
    StubItem,
    View,
    apply_event,
    build_view,
)
from histories import COUNTER, snapshot, view_of


def _call(cid):
    return {"id": cid, "type": "function", "function": {"name": "read_file", "arguments": "{}"}}


RAW = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "task"},
    {"role": "assistant", "content": None, "tool_calls": [_call("c1"), _call("c2")]},
    {"role": "tool", "tool_call_id": "c1", "content": "r1"},
    {"role": "tool", "tool_call_id": "c2", "content": "r2"},
    {"role": "assistant", "content": "thinking"},
    {"role": "user", "content": "more"},
]


@pytest.fixture
def msgs():
    return parse_messages(RAW)


@pytest.fixture
def view(msgs):
    return view_of(msgs)


def _ev(view, kind, covers, text="[agentmem: x]\nbody", **meta):
    return Event(seq=view.next_seq, kind=kind, covers=tuple(covers), text=text, after_message=view.message_count,
                 meta=meta)


def test_append_tracks_counts_tokens_and_system(view, msgs):
    assert view.message_count == 7 and view.next_seq == 1 and view.system_id == msgs[0].id
    assert [it.pos for it in view.items] == list(range(1, 8))
    assert view.tokens == COUNTER.messages(view.render())
    assert view.render() == [m.to_dict() for m in msgs]
    assert view.keys() == [m.id for m in msgs] and view.get(msgs[3].id).message == msgs[3]
    assert view.get("nope") is None
    assert view.order() == {m.id: i + 1 for i, m in enumerate(msgs)}


def test_no_system_id_when_first_message_is_not_system(msgs):
    v = view_of(msgs[1:])
    assert v.system_id is None


def test_units_group_parallel_calls(view):
    assert view.units() == [(0, 1), (1, 2), (2, 5), (5, 6), (6, 7)]
    assert all(view.unit_complete(s, e) for s, e in view.units())


def test_units_and_completeness_of_an_open_tail(msgs):
    v = view_of(msgs[:4])  # c2 has no result yet
    assert v.units()[-1] == (2, 4)
    assert not v.unit_complete(2, 4)
    v.validate(allow_open_tail=True)
    with pytest.raises(HistoryError):
        v.validate(allow_open_tail=False)


def test_copy_is_independent(view):
    c = view.copy()
    c.append_message(parse_messages([{"role": "user", "content": "x"}])[0], 5)
    assert len(view.items) == 7 and len(c.items) == 8 and view.tokens != c.tokens


def test_fold_event_replaces_whole_units_with_a_block(view, msgs):
    before = snapshot(view)
    ev = _ev(view, "fold", [m.id for m in msgs[2:6]])
    new = apply_event(view, ev, COUNTER)
    assert snapshot(view) == before
    assert new.keys() == [msgs[0].id, msgs[1].id, "blk-1", msgs[6].id]
    blk = new.get("blk-1")
    assert isinstance(blk, BlockItem) and blk.covers == tuple(m.id for m in msgs[2:6]) and blk.kind == "fold"
    assert blk.render() == {"role": "user", "content": framed(ev.text)}  # memory content is quoted as data
    assert new.tokens == COUNTER.messages(new.render()) and new.next_seq == 2
    new.validate(allow_open_tail=False)
    # folding a block again (with neighbours) flattens the covered ids
    ev2 = _ev(new, "summarize", ["blk-1", msgs[6].id])
    newer = apply_event(new, ev2, COUNTER)
    assert newer.get("blk-2").covers == tuple(m.id for m in msgs[2:7]) and newer.get("blk-2").kind == "summarize"


@pytest.mark.parametrize(("covers", "problem"), [
    ((), "covers nothing"),
    (("nope",), "not in the view"),
    ((2,), "split an assistant turn"),  # the call without its results
    ((3, 4), "split an assistant turn"),  # results without the call
    ((1, 5), "not contiguous"),
    ((0, 1), "system message cannot be folded"),
])
def test_fold_event_errors(view, msgs, covers, problem):
    keys = [msgs[c].id if isinstance(c, int) else c for c in covers]
    before = snapshot(view)
    with pytest.raises(EventError, match=problem):
        apply_event(view, _ev(view, "fold", keys), COUNTER)
    assert snapshot(view) == before


def test_fold_of_an_unfinished_turn_is_rejected(msgs):
    v = view_of(msgs[:4])
    with pytest.raises(EventError, match="have not all arrived"):
        apply_event(v, _ev(v, "fold", [msgs[2].id, msgs[3].id]), COUNTER)
    # after the missing result arrives the same span folds, and the view stays valid
    v2 = view_of(msgs[4:5], view=v.copy())
    new = apply_event(v2, _ev(v2, "fold", [m.id for m in msgs[2:5]]), COUNTER)
    new.validate(allow_open_tail=False)


def test_event_seq_must_follow(view, msgs):
    ev = Event(seq=2, kind="fold", covers=(msgs[1].id,), text="x", after_message=7)
    with pytest.raises(EventError, match="does not follow"):
        apply_event(view, ev, COUNTER)


def test_evict_event_keeps_role_and_pairing(view, msgs):
    ev = _ev(view, "evict", [msgs[3].id, msgs[2].id], text="",
             stubs={msgs[3].id: "[agentmem: evicted r1]", msgs[2].id: "[agentmem: evicted call]"})
    new = apply_event(view, ev, COUNTER)
    s3 = new.get(msgs[3].id)
    assert isinstance(s3, StubItem) and s3.render() == {**msgs[3].to_dict(), "content": "[agentmem: evicted r1]"}
    assert new.get(msgs[2].id).render()["tool_calls"] == msgs[2].to_dict()["tool_calls"]
    new.validate(allow_open_tail=False)
    assert new.tokens == COUNTER.messages(new.render())
    assert [u for u in new.units()] == view.units()  # stubs keep the round structure


@pytest.mark.parametrize(("covers", "stubs", "problem"), [
    (("nope",), {"nope": "s"}, "not in the view"),
    ((0,), {0: "s"}, "system message cannot be evicted"),
    ((3,), {}, "no stub text"),
    ((3, 3), {3: "s"}, "each message once"),
])
def test_evict_event_errors(view, msgs, covers, stubs, problem):
    ids = [msgs[c].id if isinstance(c, int) else c for c in covers]
    st = {(msgs[k].id if isinstance(k, int) else k): v for k, v in stubs.items()}
    with pytest.raises(EventError, match=problem):
        apply_event(view, _ev(view, "evict", ids, stubs=st), COUNTER)


def test_evicting_a_stub_or_block_is_rejected(view, msgs):
    new = apply_event(view, _ev(view, "evict", [msgs[3].id], stubs={msgs[3].id: "s"}), COUNTER)
    with pytest.raises(EventError, match="only original messages"):
        apply_event(new, _ev(new, "evict", [msgs[3].id], stubs={msgs[3].id: "s"}), COUNTER)
    folded = apply_event(view, _ev(view, "fold", [msgs[5].id]), COUNTER)
    with pytest.raises(EventError, match="only original messages"):
        apply_event(folded, _ev(folded, "evict", ["blk-1"], stubs={"blk-1": "s"}), COUNTER)


def test_recall_and_unrecall_events(view, msgs):
    new = apply_event(view, _ev(view, "recall", [msgs[3].id], text="[agentmem: recalled]\nr1"), COUNTER)
    rec = new.items[-1]
    assert isinstance(rec, RecalledItem) and rec.key == "rec-1" and rec.sources == (msgs[3].id,)
    assert rec.message_ids == () and rec.render() == {"role": "user", "content": framed("[agentmem: recalled]\nr1")}
    new.validate(allow_open_tail=False)
    back = apply_event(new, _ev(new, "unrecall", ["rec-1"]), COUNTER)
    assert back.render() == view.render() and back.tokens == view.tokens
    with pytest.raises(EventError, match="not in the view"):
        apply_event(back, _ev(back, "unrecall", ["rec-1"]), COUNTER)
    with pytest.raises(EventError, match="only remove recalled items"):
        apply_event(new, _ev(new, "unrecall", [msgs[1].id]), COUNTER)


@pytest.mark.parametrize("cut", [3, 4])  # right after the call; after one of its two results
def test_recall_cannot_land_between_a_call_and_its_results(msgs, cut):
    v = view_of(msgs[:cut])
    with pytest.raises(EventError, match="between an assistant tool call and its results"):
        apply_event(v, _ev(v, "recall", [msgs[1].id]), COUNTER)


def test_build_view_interleaves_events_by_after_message(msgs):
    pairs = [(m, COUNTER.message(m)) for m in msgs]
    live = view_of(msgs[:6])
    ev1 = _ev(live, "fold", [m.id for m in msgs[2:5]])
    live = apply_event(live, ev1, COUNTER)
    ev2 = _ev(live, "recall", [msgs[3].id], text="[agentmem: recalled]\nr1")
    live = apply_event(live, ev2, COUNTER)
    live = view_of(msgs[6:], view=live)
    ev3 = _ev(live, "unrecall", ["rec-2"])
    live = apply_event(live, ev3, COUNTER)
    replay = build_view(pairs, [ev3, ev1, ev2], COUNTER)  # order of the list does not matter: seq does
    assert replay.render() == live.render() and replay.keys() == live.keys() and replay.tokens == live.tokens
    # the recalled item sat before message 7 until it was dropped
    mid = build_view(pairs, [ev1, ev2], COUNTER)
    assert mid.keys()[-2:] == ["rec-2", msgs[6].id]


def test_build_view_rejects_events_beyond_known_messages(msgs):
    pairs = [(m, COUNTER.message(m)) for m in msgs[:2]]
    ev = Event(seq=1, kind="fold", covers=(msgs[1].id,), text="x", after_message=5)
    with pytest.raises(EventError, match="refers to message 5"):
        build_view(pairs, [ev], COUNTER)


def test_build_view_uses_stored_token_counts(msgs):
    pairs = [(m, 100) for m in msgs]
    v = build_view(pairs, [], COUNTER)
    assert v.tokens == 3 + 700 and all(isinstance(it, MessageItem) and it.tokens == 100 for it in v.items)


def test_headers_mark_memory_items():
    assert "[agentmem: evicted".startswith(BLOCK_HEADER)
    v = View()
    assert v.render() == [] and v.units() == [] and v.tokens == 3
    v.validate(allow_open_tail=False)
