"""MemorySession on a real SQLite file and a real PostgreSQL: ingest, bad input leaves the store untouched, resume,
recall."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from sqlalchemy import text

from agentmem.actions import EvictAction, FoldAction, RecallAction, UnrecallAction
from agentmem.messages import HistoryError, InvalidMessageError, validate_history
from agentmem.policies import BudgetPolicy, NoOpPolicy
from agentmem.policies.base import Policy, PolicyConfig
from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.testing import synthetic_history
from agentmem.view import BlockItem, RecalledItem, StubItem


class ScriptedPolicy(Policy):
    """Returns the queued actions (a list per round), recording the views it was shown."""

    name: ClassVar[str] = "scripted"
    Config = PolicyConfig

    def __init__(self, rounds=()):
        super().__init__()
        self.rounds = list(rounds)
        self.seen = []

    def decide(self, view, ctx, thinking=None):
        self.seen.append((len(view.items), ctx.round))
        return self.rounds.pop(0) if self.rounds else []


def _rows(store, sid):
    with store.engine.connect() as conn:
        msgs = conn.execute(text("SELECT seq, payload, sha256 FROM agentmem_messages WHERE session_id = :s "
                                 "ORDER BY seq"), {"s": sid}).all()
        evs = conn.execute(text("SELECT seq, kind, covers, text FROM agentmem_events WHERE session_id = :s "
                                "ORDER BY seq"), {"s": sid}).all()
        fts = 0
        if store.dialect == "sqlite":
            fts = conn.execute(text("SELECT count(*) FROM agentmem_fts WHERE session_id = :s"), {"s": sid}).scalar()
    return [tuple(r) for r in msgs], [tuple(r) for r in evs], fts


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    s = Store(tmp_path / "session.db") if request.param == "sqlite" else Store(request.getfixturevalue("pg_url"))
    yield s
    s.close()


def _call(cid, name="read_file", args='{"path": "/a"}'):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


BASE = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "Find the amount of invoice inv_0042."},
    {"role": "assistant", "content": None, "tool_calls": [_call("c1"), _call("c2", "search", '{"q": "x"}')]},
    {"role": "tool", "tool_call_id": "c1", "content": "invoice inv_0042 amount 1234.56 at /data/inv_0042.json"},
    {"role": "tool", "tool_call_id": "c2", "content": "nothing"},
]


def test_ingest_stores_only_new_messages(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    assert len(s.ingest(BASE[:2])) == 2
    new = s.ingest(BASE)  # the agent passes its whole history each call
    assert [m.role for m in new] == ["assistant", "tool", "tool"]
    assert s.ingest(BASE) == []
    assert store.message_count(session_id) == 5 and s.message_count == 5
    assert [x.message.content for x in store.load_messages(session_id)] == [m["content"] for m in BASE]
    assert s.task == "Find the amount of invoice inv_0042." and s.rounds == 1
    assert s.raw_tokens == 3 + sum(x.tokens for x in store.load_messages(session_id))


def test_ingest_accepts_null_versus_empty_content_and_reformatted_arguments(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.ingest(BASE[:3])
    again = [dict(m) for m in BASE]
    again[2] = {**again[2], "content": "", "tool_calls": [_call("c1", args='{"path":"/a"}'),
                                                           _call("c2", "search", '{ "q" : "x" }')]}
    assert len(s.ingest(again)) == 2


@pytest.mark.parametrize("mutation", ["last_changed", "shorter"])
def test_history_that_does_not_extend_the_stored_one_continues_on_a_branch(store, session_id, mutation):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.ingest(BASE)
    before = _rows(store, session_id)
    if mutation == "last_changed":
        other = [dict(m) for m in BASE] + [{"role": "user", "content": "next"}]
        other[4] = {**other[4], "content": "edited"}
        fork_at, length = 4, 6
    else:
        other = BASE[:3]
        fork_at, length = 3, 3
    s.ingest(other)
    assert (s.branch, s.message_count) == (1, length)
    msgs, evs, _ = _rows(store, session_id)
    assert msgs[:len(before[0])] == before[0]  # nothing stored was changed
    assert [e[1] for e in evs] == ["fork"]
    assert [m.message.content for m in store.load_messages(session_id, branch=0)] == [m["content"] for m in BASE]
    assert [m.message.content for m in store.load_messages(session_id)] == [m.get("content") for m in other]
    fork = store.load_events(session_id)[0]
    assert (fork.kind, fork.meta["parent"], fork.meta["fork_at"], fork.after_message) == ("fork", 0, fork_at, fork_at)


@pytest.mark.parametrize("verify, position", [("cached", 1), ("cached", 3), ("full", 1), ("full", 3), ("ends", 0)])
def test_edited_earlier_message_reaches_the_model_on_a_branch(store, session_id, verify, position):
    """An edit (or redaction) anywhere continues on a branch from the edited position; the model gets the new
    text. "ends" (O(1)) only sees edits of the first and the last stored message."""
    s = MemorySession(store, session_id, policy=NoOpPolicy(), verify=verify)
    s.prepare(BASE)
    edited = [dict(m) for m in BASE] + [{"role": "user", "content": "next"}]
    edited[position] = {**edited[position], "content": "a different text"}
    view = s.prepare(edited)
    assert view[position]["content"] == "a different text"
    assert s.branch == 1 and store.branches(session_id)[1].fork_at == position
    assert [m.message.content for m in store.load_messages(session_id, branch=0)][position] == BASE[position][
        "content"]


def test_in_place_edit_of_the_agents_own_list_is_seen(store, session_id):
    """The agent keeps one list and redacts a message in it (same dict, new content): the default check sees it."""
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    history = [dict(m) for m in BASE]
    s.prepare(history)
    history.append({"role": "user", "content": "card 4111-1111-1111-1111 is mine"})
    s.prepare(history)
    history[5]["content"] = "card [redacted] is mine"
    history.append({"role": "assistant", "content": "noted"})
    history.append({"role": "user", "content": "go on"})
    view = s.prepare(history)
    assert "4111" not in json.dumps(view) and view[5]["content"] == "card [redacted] is mine"
    assert s.branch == 1


BAD_TAILS = [
    ("unknown role", [{"role": "robot", "content": "x"}], "index 5.*unknown role 'robot'"),
    ("orphan result", [{"role": "tool", "tool_call_id": "zz", "content": "x"}], "index 5.*'zz' has no matching"),
    ("missing result", [{"role": "assistant", "content": None, "tool_calls": [_call("c3")]},
                        {"role": "user", "content": "hi"}], "index 6.*c3 have no result before this user"),
    ("non-JSON arguments", [{"role": "assistant", "content": None, "tool_calls": [_call("c3", args="{oops")]}],
     "index 5.*not valid JSON"),
    ("wrong content type", [{"role": "user", "content": {"text": "x"}}], "index 5.*content must be text"),
    ("wrong message type", ["just a string"], "index 5.*expected a dict"),
    ("duplicate ids", [{"id": "dup", "role": "user", "content": "a"}, {"id": "dup", "role": "assistant",
                                                                       "content": "b"}], "index 6.*'dup'.*duplicate"),
    ("late system", [{"role": "system", "content": "again"}], "index 5.*system message is not at the start"),
    ("valid then bad", [{"role": "user", "content": "fine"}, {"role": "tool", "tool_call_id": "c1", "content": "x"}],
     "index 6"),
]


@pytest.mark.parametrize(("label", "tail", "match"), BAD_TAILS, ids=[b[0] for b in BAD_TAILS])
def test_bad_input_changes_nothing_stored(store, session_id, label, tail, match):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.ingest(BASE)
    before, view_before = _rows(store, session_id), s.view.render()
    with pytest.raises(InvalidMessageError, match=match):
        s.ingest(BASE + tail)
    assert _rows(store, session_id) == before
    assert s.message_count == 5 and s.view.render() == view_before
    # the session still works, and a fresh session on the same file sees the same thing
    s.ingest(BASE + [{"role": "user", "content": "ok"}])
    assert MemorySession(store, session_id, policy=NoOpPolicy()).message_count == 6


def test_id_already_stored_is_rejected_and_nothing_written(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.ingest([{"id": "u1", "role": "user", "content": "a"}])
    before = _rows(store, session_id)
    with pytest.raises(InvalidMessageError, match="'u1'"):
        s.ingest([{"id": "u1", "role": "user", "content": "a"}, {"id": "u1", "role": "assistant", "content": "b"}])
    assert _rows(store, session_id) == before


def test_bad_input_through_prepare_and_record_response(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.prepare(BASE)
    before = _rows(store, session_id)
    with pytest.raises(InvalidMessageError):
        s.prepare(BASE + [{"role": "assistant", "content": None, "tool_calls": [{"id": "c9"}]}])
    with pytest.raises(InvalidMessageError, match="unknown role"):
        s.record_response({"role": "robot", "content": "x"})
    with pytest.raises(HistoryError, match="no matching pending tool call"):
        s.record_response({"role": "tool", "tool_call_id": "nope", "content": "x"})
    assert _rows(store, session_id) == before


def test_record_response_appends_the_reply(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.prepare(BASE)
    reply = s.record_response({"role": "assistant", "content": None, "tool_calls": [_call("c3")]})
    assert reply.tool_call_ids == ("c3",) and s.message_count == 6 and s.rounds == 2
    assert store.load_messages(session_id)[-1].message == reply
    with pytest.raises(HistoryError, match="c3 have no result"):
        s.record_response({"role": "assistant", "content": "too early"})
    # the agent's next call carries the reply (without our id) and its result
    view = s.prepare(BASE + [{"role": "assistant", "content": None, "tool_calls": [_call("c3")]},
                             {"role": "tool", "tool_call_id": "c3", "content": "r3"}])
    assert view[-1] == {"role": "tool", "tool_call_id": "c3", "content": "r3"}
    validate_history(view)


def _managed_session(store, session_id):
    """A session with a fold, an eviction, a recall and an unrecall recorded."""
    history = synthetic_history(12, output_chars=400)
    policy = ScriptedPolicy()
    s = MemorySession(store, session_id, policy=policy)
    s.prepare(history[:10])
    keys = [it.key for it in s.view.items]
    policy.rounds = [[FoldAction(span=tuple(keys[2:6])), EvictAction(ids=(keys[7],))]]
    s.prepare(history[:13])
    policy.rounds = [[RecallAction(ids=(keys[3],)), RecallAction(query="inv_0042 read_file")]]
    s.prepare(history[:19])
    rec = [it.key for it in s.view.items if isinstance(it, RecalledItem)]
    policy.rounds = [[UnrecallAction(keys=(rec[0],))]]
    s.prepare(history)
    return s, history


def test_resumed_session_rebuilds_the_identical_view(store, session_id, tmp_path):
    s, history = _managed_session(store, session_id)
    kinds = [e.kind for e in store.load_events(session_id)]
    assert kinds[:3] == ["fold", "evict", "recall"] and "unrecall" in kinds
    assert any(isinstance(it, BlockItem) for it in s.view.items)
    assert any(isinstance(it, StubItem) for it in s.view.items)
    assert any(isinstance(it, RecalledItem) for it in s.view.items)
    reopened_store = Store(store.url)
    try:
        r = MemorySession(reopened_store, session_id, policy=NoOpPolicy())
        assert r.view.render() == s.view.render()
        assert r.view.keys() == s.view.keys() and r.view.tokens == s.view.tokens
        assert (r.message_count, r.raw_tokens, r.rounds, r.task) == (s.message_count, s.raw_tokens, s.rounds, s.task)
        assert r.view.next_seq == s.view.next_seq
        # and it continues where the first one stopped
        more = history + [{"role": "assistant", "content": None, "tool_calls": [_call("c9")]},
                          {"role": "tool", "tool_call_id": "c9", "content": "r9"}]
        view = r.prepare(more)
        validate_history(view)
        assert r.message_count == len(more) and store.message_count(session_id) == len(more)
    finally:
        reopened_store.close()


def test_resume_with_a_pending_tool_call(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.ingest(BASE[:4])  # c2 still pending
    r = MemorySession(store, session_id, policy=NoOpPolicy())
    with pytest.raises(HistoryError, match="c2 have no result"):
        r.ingest(BASE[:4] + [{"role": "user", "content": "x"}])
    r.ingest(BASE)
    assert r.message_count == 5


def test_find_archived_by_id_block_key_and_query(store, session_id):
    s, _ = _managed_session(store, session_id)
    blk = next(it for it in s.view.items if isinstance(it, BlockItem))
    by_block = s.find_archived(ids=[blk.key])
    assert [m.id for m in by_block] == list(blk.covers)
    one = s.find_archived(ids=[blk.covers[1]])
    assert len(one) == 1 and one[0].id == blk.covers[1]
    stub = next(it for it in s.view.items if isinstance(it, StubItem))
    value = json.loads(stub.message.content)["invoice_id"]
    hits = s.find_archived(query=value)
    assert stub.key in [m.id for m in hits]
    visible = {it.key for it in s.view.items if type(it).__name__ == "MessageItem"}
    assert not visible & {m.id for m in hits}  # a query skips what the view shows in full
    assert s.find_archived(ids=["nope"]) == [] and s.find_archived(query="zzzunknownzzz") == []


def test_recall_text_brings_back_a_folded_value(store, session_id):
    s, _ = _managed_session(store, session_id)
    blk = next(it for it in s.view.items if isinstance(it, BlockItem))
    folded_tool = next(m for m in store.get_messages(session_id, blk.covers) if m.message.role == "tool").message
    path = json.loads(folded_tool.content)["path"]
    out = s.recall_text(ids=[blk.key])
    assert out.startswith("[agentmem: recalled") and path in out and folded_tool.id in out
    out_q = s.recall_text(query=json.loads(folded_tool.content)["invoice_id"])
    assert folded_tool.id in out_q
    assert s.recall_text(ids=["nope"]) == "[agentmem: nothing in the archive matches ids ['nope']]"
    small = s.recall_text(ids=[blk.key], budget_tokens=200)
    assert s.counter.text(small) <= 200 and "page=2" in small  # a page stays within its budget, says what is left


def test_rejected_actions_are_reported_and_not_recorded(store, session_id):
    policy = ScriptedPolicy([[FoldAction(span=("nope",)), EvictAction(ids=("nope",)),
                              UnrecallAction(keys=("rec-1",)), RecallAction(ids=("nope",))]])
    s = MemorySession(store, session_id, policy=policy)
    s.prepare(BASE)
    assert len(s.last.rejected) == 3 and s.last.actions == []
    assert store.load_events(session_id) == []


def test_budget_policy_session_stays_valid_and_bounded(store, session_id):
    history = synthetic_history(60, output_chars=600)
    s = MemorySession(store, session_id, policy=BudgetPolicy(budget_tokens=3000))
    for i in range(3, len(history) + 1):
        if history[i - 1]["role"] == "tool" and (i == len(history) or history[i]["role"] != "tool"):
            view = s.prepare(history[:i])
            validate_history(view)
            assert s.view.tokens <= 3000, (i, s.view.tokens)
    assert s.raw_tokens > 4 * 3000
    assert store.message_count(session_id) == len(history)
    assert view[0]["role"] == "system" and view[1]["content"] == history[1]["content"]


def test_langchain_history_continues_a_session_recorded_from_provider_replies(store, session_id):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.prepare([SystemMessage(content="sys"), HumanMessage(content="task")])
    s.record_response({"role": "assistant", "content": None, "tool_calls": [_call("c1", args='{"path":"/a"}')]})
    lc = [SystemMessage(content="sys"), HumanMessage(content="task"),
          AIMessage(content="", tool_calls=[{"id": "c1", "name": "read_file", "args": {"path": "/a"}}]),
          ToolMessage(content="body", tool_call_id="c1")]
    view = s.prepare(lc)
    assert view[-1] == {"role": "tool", "tool_call_id": "c1", "content": "body"}
    assert store.load_messages(session_id)[2].message.tool_calls[0].arguments == '{"path":"/a"}'


# --- property: any sequence of actions, through the session and the store, replays to the same view ----------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from histories import histories  # noqa: E402


class DrawingPolicy(Policy):
    """Draws random (often invalid) actions from hypothesis data each round."""

    name: ClassVar[str] = "drawing"
    Config = PolicyConfig

    def __init__(self, data):
        super().__init__()
        self.data = data

    def decide(self, view, ctx, thinking=None):
        keys = view.keys()
        # recalled items already in the view, and the keys recalls of this round will get (if they apply)
        rec = [k for k in keys if k.startswith("rec-")] + [f"rec-{view.next_seq + j}" for j in range(3)]
        in_view = [k for k in keys if k.startswith("rec-")]
        actions = [UnrecallAction(keys=(self.data.draw(st.sampled_from(in_view)),))] if in_view else []
        for kind in self.data.draw(st.lists(st.sampled_from(["fold", "evict", "recall", "unrecall"]), min_size=1,
                                            max_size=3)):
            if kind == "fold" and len(keys) > 1:
                a = self.data.draw(st.integers(0, len(keys) - 1))
                b = self.data.draw(st.integers(a, min(len(keys) - 1, a + 6)))
                actions.append(FoldAction(span=tuple(keys[a:b + 1])))
            elif kind == "evict":
                originals = [k for k in keys if k.startswith("m-")] or keys  # mostly valid, sometimes not
                pool = self.data.draw(st.sampled_from([originals, keys]))
                actions.append(EvictAction(ids=tuple(self.data.draw(st.lists(st.sampled_from(pool), min_size=1,
                                                                              max_size=3)))))
            elif kind == "recall":
                originals = [k for k in keys if k.startswith("m-")] or keys
                actions.append(RecallAction(ids=tuple(self.data.draw(st.lists(st.sampled_from(originals), min_size=1,
                                                                               max_size=2))),
                                            query=self.data.draw(st.sampled_from([None, "inv_0042", "lorem"]))))
            elif kind == "unrecall":
                actions.append(UnrecallAction(keys=(self.data.draw(st.sampled_from(rec)),)))
        return actions


APPLIED_KINDS: set[str] = set()


def test_random_actions_through_the_session_replay_identically():
    _random_actions()
    assert APPLIED_KINDS == {"fold", "evict", "recall", "unrecall"}, APPLIED_KINDS


@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def _random_actions(data):
    store = Store(":memory:")
    try:
        raw = data.draw(histories(max_turns=8, open_tail=False))
        s = MemorySession(store, "prop", policy=DrawingPolicy(data))
        cuts = sorted(set(data.draw(st.lists(st.integers(2, len(raw)), min_size=1, max_size=4)) + [len(raw)]))
        applied = 0
        for cut in cuts:
            prefix = raw[:cut]
            try:
                view = s.prepare(prefix)
            except HistoryError as exc:  # a prefix that ends between a call and its results
                assert "have no result at the end of the history" in str(exc)
                s.view.validate(allow_open_tail=True)
                continue
            validate_history(view)
            assert view == s.view.render()
            applied += len(s.last.actions)
            APPLIED_KINDS.update(a["kind"] for a in s.last.actions)
        r = MemorySession(store, "prop", policy=NoOpPolicy())
        assert r.view.render() == s.view.render() and r.view.tokens == s.view.tokens
        assert len(store.load_events("prop")) == s.view.next_seq - 1
        covered = [i for it in s.view.items for i in it.message_ids]
        assert covered == [m.message.id for m in store.load_messages("prop")]
    finally:
        store.close()


def test_prepare_rejects_an_unanswered_call_before_storing_it(store, session_id):
    s = MemorySession(store, session_id, policy=NoOpPolicy())
    s.prepare(BASE)
    before = _rows(store, session_id)
    open_tail = [dict(m) for m in BASE] + [{"role": "assistant", "content": None, "tool_calls": [_call("c9")]}]
    with pytest.raises(HistoryError, match="c9 have no result at the end"):
        s.prepare(open_tail)
    assert _rows(store, session_id) == before and s.message_count == len(BASE)
