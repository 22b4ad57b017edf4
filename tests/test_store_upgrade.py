"""A database written by the linear (single-branch) schema opens with the branch schema: columns are added in
place, every payload stays byte-identical, the view rebuilds, and the session continues and can fork."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from agentmem.policies import NoOpPolicy
from agentmem.session import MemorySession
from agentmem.store import Store, _to_url
from branching import budget_policy, check_tree
from agentmem.testing import synthetic_history

LINEAR_SCHEMA = [  # agentmem_* tables exactly as the linear schema created them (both dialects accept this DDL)
    "CREATE TABLE agentmem_sessions (id VARCHAR(200) NOT NULL, created_at FLOAT NOT NULL, meta TEXT NOT NULL, "
    "PRIMARY KEY (id))",
    "CREATE TABLE agentmem_messages (session_id VARCHAR(200) NOT NULL, seq INTEGER NOT NULL, id VARCHAR(200) NOT "
    "NULL, role VARCHAR(16) NOT NULL, payload TEXT NOT NULL, sha256 VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) "
    "NOT NULL, tokens INTEGER NOT NULL, body TEXT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (session_id, seq))",
    "CREATE UNIQUE INDEX ix_agentmem_messages_session_id ON agentmem_messages (session_id, id)",
    "CREATE TABLE agentmem_events (session_id VARCHAR(200) NOT NULL, seq INTEGER NOT NULL, kind VARCHAR(16) NOT "
    "NULL, covers TEXT NOT NULL, text TEXT NOT NULL, after_message INTEGER NOT NULL, meta TEXT NOT NULL, "
    "created_at FLOAT NOT NULL, PRIMARY KEY (session_id, seq))",
]
MESSAGE_COLUMNS = "session_id, seq, id, role, payload, sha256, fingerprint, tokens, body, created_at"
EVENT_COLUMNS = "session_id, seq, kind, covers, text, after_message, meta, created_at"


def test_linear_database_is_upgraded_in_place(fresh_db_url, tmp_path):
    # a session recorded by today's code, copied row by row into a database with the linear schema
    source = Store(tmp_path / "source.db")
    history = synthetic_history(24, output_chars=500)
    live = MemorySession(source, "old", policy=budget_policy(2500))
    live.prepare(history)
    with source.engine.connect() as conn:
        msgs = [dict(r._mapping) for r in conn.execute(text(f"SELECT {MESSAGE_COLUMNS} FROM agentmem_messages"))]
        evs = [dict(r._mapping) for r in conn.execute(text(f"SELECT {EVENT_COLUMNS} FROM agentmem_events"))]
        sess = [dict(r._mapping) for r in conn.execute(text("SELECT id, created_at, meta FROM agentmem_sessions"))]
    source.close()
    assert any(e["kind"] == "fold" for e in evs)
    old = create_engine(_to_url(fresh_db_url))
    with old.begin() as conn:
        for ddl in LINEAR_SCHEMA:
            conn.execute(text(ddl))
        conn.execute(text("INSERT INTO agentmem_sessions VALUES (:id, :created_at, :meta)"), sess)
        conn.execute(text(f"INSERT INTO agentmem_messages ({MESSAGE_COLUMNS}) VALUES (:session_id, :seq, :id, "
                          ":role, :payload, :sha256, :fingerprint, :tokens, :body, :created_at)"), msgs)
        conn.execute(text(f"INSERT INTO agentmem_events ({EVENT_COLUMNS}) VALUES (:session_id, :seq, :kind, "
                          ":covers, :text, :after_message, :meta, :created_at)"), evs)
    old.dispose()

    store = Store(fresh_db_url)  # upgrades
    try:
        assert [m.payload for m in store.archive("old")] == [m["payload"] for m in msgs]
        resumed = MemorySession(store, "old", policy=NoOpPolicy())
        assert resumed.view.render() == live.view.render()
        check_tree(store, "old")
        cut = [i for i, m in enumerate(history) if m["role"] == "assistant"][10]
        resumed.prepare(history[:cut])  # back in time: the upgraded session forks like any other
        assert resumed.branch == 1
        Store(fresh_db_url).close()  # opening again changes nothing
        assert [m.payload for m in store.archive("old")][:len(msgs)] == [m["payload"] for m in msgs]
    finally:
        store.close()
