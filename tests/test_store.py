"""The lossless store on a real SQLite file and (via any_store) a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from agentmem.messages import InvalidMessageError, parse_message, parse_messages
from agentmem.store import ConcurrentWriteError, Store, StoreError, _to_url
from agentmem.view import Event
from histories import COUNTER

TRICKY_CONTENTS = [
    "plain ascii",
    "unicode: é ü ß 日本語 עברית",
    "emoji: 🙂🚀👩‍👩‍👧 and a flag 🇫🇷",
    "newlines\nand\ttabs\n\n",
    "windows\r\nline\r\nendings\r\n",
    "quotes \" ' \\ backslashes \\n literal",
    "control \x00 nul \x01 \x1f and del \x7f",
    "x" * 200_000,
    "  leading and trailing spaces  ",
    "",
]


def _msgs(contents):
    return [parse_message({"role": "user", "content": c}) for c in contents]


def _append(store, sid, msgs, **kw):
    return store.append_messages(sid, msgs, [COUNTER.message(m) for m in msgs], **kw)


def _count_rows(store, sid):
    with store.engine.connect() as conn:
        m = conn.execute(text("SELECT count(*) FROM agentmem_messages WHERE session_id = :s"), {"s": sid}).scalar()
        e = conn.execute(text("SELECT count(*) FROM agentmem_events WHERE session_id = :s"), {"s": sid}).scalar()
    return int(m), int(e)


def test_payload_round_trip_is_byte_exact(any_store, session_id):
    msgs = _msgs(TRICKY_CONTENTS)
    parts = parse_message({"role": "user", "content": [
        {"type": "text", "text": "part é 🙂\r\n"}, {"type": "image_url", "image_url": {"url": "data:x;base64,AA=="}}]})
    call = parse_message({"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "name": "f", "arguments": '{"b":1,  "a": "é\\n"}'}]})
    result = parse_message({"role": "tool", "tool_call_id": "c1", "name": "f", "content": "🙂\r\n"})
    msgs += [parts, call, result]
    seqs = _append(any_store, session_id, msgs)
    assert seqs == list(range(1, len(msgs) + 1))
    for m in msgs:
        payload = any_store.get_payload(session_id, m.id)
        assert payload == m.canonical_json()
        assert json.loads(payload) == m.to_dict(with_id=True)
    loaded = any_store.load_messages(session_id)
    assert [s.message for s in loaded] == msgs
    assert [s.seq for s in loaded] == seqs
    for s, m in zip(loaded, msgs, strict=True):
        assert s.payload == m.canonical_json()
        assert s.sha256 == hashlib.sha256(m.canonical_json().encode("utf-8")).hexdigest()
        assert s.tokens == COUNTER.message(m)
    assert loaded[-2].message.tool_calls[0].arguments == '{"b":1,  "a": "é\\n"}'  # arguments kept verbatim


def test_load_order_after_seq_and_counts(any_store, session_id):
    first, second = _msgs(["a", "b", "c"]), _msgs(["d", "e"])
    _append(any_store, session_id, first)
    _append(any_store, session_id, second, expected_count=3)
    assert any_store.message_count(session_id) == 5
    assert [s.message.content for s in any_store.load_messages(session_id)] == ["a", "b", "c", "d", "e"]
    assert [s.message.content for s in any_store.load_messages(session_id, after_seq=3)] == ["d", "e"]
    assert any_store.last_fingerprint(session_id) == (5, second[-1].fingerprint())
    assert any_store.fingerprints(session_id, [1, 5]) == {1: first[0].fingerprint(), 5: second[-1].fingerprint()}
    assert any_store.last_fingerprint("nobody") == (0, None)
    assert session_id in any_store.sessions()
    got = any_store.get_messages(session_id, [second[1].id, first[0].id])
    assert [g.message.content for g in got] == ["a", "e"]  # in seq order
    with pytest.raises(KeyError):
        any_store.get_payload(session_id, "missing")


def test_sessions_are_isolated(any_store, session_id):
    _append(any_store, session_id, _msgs(["mine secret_value_1"]))
    _append(any_store, session_id + "-other", _msgs(["theirs secret_value_1"]))
    assert [s.message.content for s in any_store.load_messages(session_id)] == ["mine secret_value_1"]
    assert [h.body for h in any_store.search(session_id, "secret_value_1")] == ["mine secret_value_1"]


def test_events_round_trip(any_store, session_id):
    events = [
        Event(seq=1, kind="fold", covers=("m1", "m2"), text="[agentmem: block]\né 🙂\r\n", after_message=2,
              meta={"span_tokens": 10, "ratio": 1.5, "extractive": True, "nested": {"a": [1, 2]}}),
        Event(seq=2, kind="evict", covers=("m3",), after_message=3, meta={"stubs": {"m3": "stub"}}),
        Event(seq=3, kind="recall", covers=("m1",), text="rec", after_message=3, meta={"query": None}),
        Event(seq=4, kind="unrecall", covers=("rec-3",), after_message=4),
    ]
    for ev in events:
        any_store.append_event(session_id, ev)
    assert any_store.load_events(session_id) == events
    assert any_store.load_events(session_id, after_seq=2) == events[2:]


def test_event_seq_must_follow_the_log(any_store, session_id):
    any_store.append_event(session_id, Event(seq=1, kind="unrecall", covers=("x",), after_message=0))
    for bad in (1, 3):
        with pytest.raises(ConcurrentWriteError, match="event log is at 1"):
            any_store.append_event(session_id, Event(seq=bad, kind="unrecall", covers=("x",), after_message=0))
    assert [e.seq for e in any_store.load_events(session_id)] == [1]


def test_two_writers_stale_count_is_a_concurrent_write_error(tmp_path, session_id):
    path = tmp_path / "shared.db"
    a, b = Store(path), Store(path)
    try:
        _append(a, session_id, _msgs(["one"]), expected_count=0)
        _append(b, session_id, _msgs(["two"]), expected_count=1)
        before = [s.payload for s in a.load_messages(session_id)]
        with pytest.raises(ConcurrentWriteError, match="has 2 messages, expected 1"):
            _append(a, session_id, _msgs(["stale"]), expected_count=1)
        assert [s.payload for s in b.load_messages(session_id)] == before
        a.append_event(session_id, Event(seq=1, kind="unrecall", covers=("x",), after_message=2))
        with pytest.raises(ConcurrentWriteError):
            b.append_event(session_id, Event(seq=1, kind="unrecall", covers=("y",), after_message=2))
        assert [e.covers for e in b.load_events(session_id)] == [("x",)]
    finally:
        a.close()
        b.close()


def test_postgres_stale_count_is_a_concurrent_write_error(pg_url, session_id):
    a, b = Store(pg_url), Store(pg_url)
    try:
        _append(a, session_id, _msgs(["one"]), expected_count=0)
        _append(b, session_id, _msgs(["two"]), expected_count=1)
        with pytest.raises(ConcurrentWriteError):
            _append(a, session_id, _msgs(["stale"]), expected_count=1)
        assert a.message_count(session_id) == 2
    finally:
        a.close()
        b.close()


def test_append_is_all_or_nothing(any_store, session_id):
    msgs = _msgs(["a", "b"])
    _append(any_store, session_id, msgs)
    again = [parse_message({"role": "user", "content": "new"}), parse_message({"id": msgs[0].id, "role": "user",
                                                                               "content": "clash"})]
    with pytest.raises(InvalidMessageError, match="already stored"):
        _append(any_store, session_id, again)
    assert _count_rows(any_store, session_id) == (2, 0)
    with pytest.raises(StoreError, match="differ in length"):
        any_store.append_messages(session_id, _msgs(["x"]), [])
    assert any_store.append_messages(session_id, [], []) == []
    assert _count_rows(any_store, session_id) == (2, 0)


def test_bad_session_ids_are_rejected(any_store):
    for bad in ("", "x" * 201, None):
        with pytest.raises(StoreError, match="session id"):
            any_store.ensure_session(bad)  # type: ignore[arg-type]


def test_search_finds_values_and_respects_exclude(any_store, session_id):
    msgs = parse_messages([
        {"role": "user", "content": "Book flight HAT136 for mia_li_3668"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "name": "read_file", "arguments": '{"path": "/data/invoices/inv-0042.json"}'}]},
        {"role": "tool", "tool_call_id": "c1", "name": "read_file",
         "content": '{"confirmation": "ZX9K2P", "amount": 1234.56, "email": "mia.li@example.com"}'},
        {"role": "user", "content": "nothing relevant here"},
    ])
    _append(any_store, session_id, msgs)
    for query, want in [("HAT136", 0), ("mia_li_3668", 0), ("inv-0042.json", 1), ("/data/invoices/inv-0042.json", 1),
                        ("ZX9K2P", 2), ("1234.56", 2), ("mia.li@example.com", 2), ("what was the confirmation", 2)]:
        hits = any_store.search(session_id, query)
        assert hits, f"{query!r} found nothing"
        assert hits[0].message_id == msgs[want].id, (query, [h.body for h in hits])
        assert hits[0].role == msgs[want].role and hits[0].seq == want + 1
    assert any_store.search(session_id, "ZX9K2P", exclude=[msgs[2].id]) == []
    assert any_store.search(session_id, "unrelatedword") == []
    assert any_store.search(session_id, "") == [] and any_store.search(session_id, "!!") == []
    assert len(any_store.search(session_id, "mia HAT136 ZX9K2P nothing", limit=2)) == 2


def test_search_survives_fts_syntax_in_queries(any_store, session_id):
    _append(any_store, session_id, _msgs(['error: "quoted" AND (NOT) near* col:umn']))
    for q in ['"quoted"', "AND OR NOT", "near*", "col:umn", "'; DROP TABLE x; --", "a & b | !c <-> d"]:
        any_store.search(session_id, q)  # never a syntax error
    assert any_store.search(session_id, '"quoted" near*')


def test_tampered_payload_is_detected_on_load(any_store, session_id):
    msgs = _msgs(["original amount 100", "second"])
    _append(any_store, session_id, msgs)
    with any_store.engine.begin() as conn:
        conn.execute(text("UPDATE agentmem_messages SET payload = :p WHERE session_id = :s AND seq = 1"),
                     {"p": msgs[0].canonical_json().replace("100", "900"), "s": session_id})
    with pytest.raises(StoreError, match="seq 1 fails its sha256 check"):
        any_store.load_messages(session_id)
    with pytest.raises(StoreError):
        any_store.get_payload(session_id, msgs[0].id)
    assert any_store.get_payload(session_id, msgs[1].id) == msgs[1].canonical_json()


def test_nothing_is_updated_or_deleted_by_the_api(sqlite_store, session_id):
    msgs = _msgs(["a", "b", "c"])
    _append(sqlite_store, session_id, msgs)
    payloads = [s.payload for s in sqlite_store.load_messages(session_id)]
    _append(sqlite_store, session_id, _msgs(["d"]))
    assert [s.payload for s in sqlite_store.load_messages(session_id)][:3] == payloads


def test_store_reopens_the_same_file(tmp_path, session_id):
    path = tmp_path / "nested" / "dir" / "x.db"
    s1 = Store(path)
    msgs = _msgs(["persist me é"])
    _append(s1, session_id, msgs)
    s1.close()
    s2 = Store(str(path))
    try:
        assert s2.get_payload(session_id, msgs[0].id) == msgs[0].canonical_json()
        assert s2.search(session_id, "persist")[0].message_id == msgs[0].id
    finally:
        s2.close()


def test_in_memory_store_and_url_forms(session_id):
    s = Store(":memory:")
    try:
        _append(s, session_id, _msgs(["mem"]))
        assert s.load_messages(session_id)[0].message.content == "mem"
    finally:
        s.close()
    assert _to_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _to_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert _to_url("sqlite:///x.db") == "sqlite:///x.db"


def test_default_url_comes_from_environment(tmp_path, monkeypatch):
    from agentmem.store import default_store_url

    monkeypatch.setenv("AGENTMEM_DB", str(tmp_path / "env.db"))
    assert default_store_url() == f"sqlite:///{tmp_path / 'env.db'}"


def test_search_finds_non_ascii_words(any_store, session_id):
    msgs = _msgs(["Commande passée au café Ünïcode", "日本語 テキスト の 検索", "plain english"])
    _append(any_store, session_id, msgs)
    assert [h.message_id for h in any_store.search(session_id, "café")] == [msgs[0].id]
    assert [h.message_id for h in any_store.search(session_id, "ünïcode")] == [msgs[0].id]
    assert [h.message_id for h in any_store.search(session_id, "テキスト")] == [msgs[1].id]


def test_longest_allowed_ids_fit_every_backend(any_store, session_id):
    sid = (session_id + "s" * 200)[:200]  # unique per run: the PostgreSQL database outlives the test
    m = parse_message({"id": "m" * 200, "role": "user", "content": "x"})
    _append(any_store, sid, [m])
    assert any_store.get_payload(sid, m.id) == m.canonical_json()


def test_branches_fork_inherit_events_and_search_names_the_branch(any_store, session_id):
    msgs = _msgs(["alpha one", "beta two", "gamma three"])
    _append(any_store, session_id, msgs)
    any_store.append_event(session_id, Event(seq=1, kind="unrecall", covers=("x",), after_message=2))
    any_store.append_event(session_id, Event(seq=2, kind="unrecall", covers=("y",), after_message=3))
    branch, fork = any_store.fork(session_id, 0, 2, meta={"reason": "test"})
    assert (branch, fork.seq, fork.kind, fork.after_message) == (1, 2, "fork", 2)  # inherits event 1 only
    assert [e.covers for e in any_store.load_events(session_id, branch=1)] == [("x",), ()]
    other = _msgs(["delta branch word"])
    _append(any_store, session_id, other, expected_count=2, branch=1)
    with pytest.raises(ConcurrentWriteError):
        _append(any_store, session_id, _msgs(["stale"]), expected_count=2, branch=1)
    state = any_store.load_branch(session_id, 1)
    assert [s.message.content for s in state.messages] == ["alpha one", "beta two", "delta branch word"]
    assert [s.pos for s in state.messages] == [1, 2, 3] and state.length == 3
    assert state.messages[1].chain == any_store.load_branch(session_id, 0).messages[1].chain  # shared prefix
    assert any_store.find_paths(session_id, [state.messages[2].chain]) == {state.messages[2].chain: (1, 3)}
    assert [h.branch for h in any_store.search(session_id, "delta")] == [1]
    assert [h.branch for h in any_store.search(session_id, "gamma")] == [0]
    assert any_store.head_branch(session_id) == 1
    assert [(b.branch, b.parent, b.fork_at, b.length, b.events) for b in any_store.branches(session_id)] == [
        (0, None, 0, 3, 2), (1, 0, 2, 3, 2)]
    with pytest.raises(StoreError, match="no branch 9"):
        any_store.load_branch(session_id, 9)
    with pytest.raises(StoreError, match="cannot fork"):
        any_store.fork(session_id, 0, 4)
    # ids are unique per path, not per session: an edit may keep its id on another branch
    _append(any_store, session_id, [parse_message({"id": msgs[2].id, "role": "user", "content": "edited"})],
            expected_count=3, branch=1)
    with pytest.raises(InvalidMessageError, match="already stored"):
        _append(any_store, session_id, [parse_message({"id": msgs[0].id, "role": "user", "content": "x"})],
                branch=1)
