"""Faults that are not kills (see test_processes for kill -9): thinker exceptions, timeouts and garbage, and lost
database connections, on both backends, in a session that also forks."""

from __future__ import annotations

from sqlalchemy import text

from agentmem.session import MemorySession
from agentmem.store import Store
from agentmem.testing import ScriptedThinker
from agentmem.thinkers.base import ThinkerError
from branching import SYSTEM, TASK, budget_policy, check_tree, replayed_view, tool_reply, tool_result


def _history(rounds: int, tag: str = "f") -> list[dict]:
    history = [SYSTEM, TASK]
    for k in range(rounds):
        r = tool_reply(tag, k)
        history += [r, tool_result(r, chars=900)]
    return history


def test_thinker_exceptions_timeouts_and_garbage_fall_back(any_store, session_id):
    answers = [ThinkerError("model server down"), "", "   ", RuntimeError("boom"), "]]} not a summary {{["]
    thinker = ScriptedThinker(answers, delay_s=0.0)
    s = MemorySession(any_store, session_id, policy=budget_policy(1200, fold_mode="think", block_tokens=100),
                      thinker=thinker, thinker_timeout_s=5)
    history = _history(16)
    for end in range(4, len(history) + 1, 2):
        s.prepare(history[:end])
        s.prepare(history[:end])  # every round asked twice: forks on top of the failures
    events = any_store.load_events(session_id)
    folds = [e for e in events if e.kind in ("fold", "summarize")]
    assert len(thinker.requests) >= 3 and folds
    assert any("fallback" in e.meta for e in folds), [e.meta for e in folds]
    assert s.view.render() == replayed_view(any_store, session_id, s.branch)
    check_tree(any_store, session_id)


def test_thinker_timeout_falls_back(any_store, session_id):
    thinker = ScriptedThinker(["slow notes"], delay_s=0.3)
    s = MemorySession(any_store, session_id, policy=budget_policy(1200, fold_mode="think", block_tokens=100),
                      thinker=thinker, thinker_timeout_s=0.05)
    s.prepare(_history(10))
    folds = [e for e in any_store.load_events(session_id) if e.kind in ("fold", "summarize")]
    assert folds and all("timed out" in e.meta.get("fallback", "") for e in folds)


def test_lost_connections_are_reopened(any_store, session_id):
    """Every pooled connection dies between two rounds (PostgreSQL: terminated by the server; SQLite: the pool
    is thrown away): the next round works and nothing stored changes."""
    s = MemorySession(any_store, session_id, policy=budget_policy())
    history = _history(8)
    s.prepare(history[:10])
    before = [m.payload for m in any_store.archive(session_id)]
    if any_store.dialect == "postgresql":
        killer = Store(any_store.url)
        with killer.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            conn.commit()
        killer.close()
    else:
        any_store.engine.dispose()
    s.prepare(history)
    after = [m.payload for m in any_store.archive(session_id)]
    assert after[:len(before)] == before and len(after) == len(history)
    assert s.view.render() == replayed_view(any_store, session_id, 0)
