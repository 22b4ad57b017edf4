"""The lossless store: append-only messages, sessions and the event log (SQLAlchemy 2.x).

Embedded SQLite (WAL) by default, PostgreSQL by URL for many workers. Nothing is ever updated or deleted: a message
is written once as canonical JSON with its sha256, and reading it back returns exactly those bytes. Events get
consecutive per-session sequence numbers; a primary key on (session, seq) turns a race between two writers of the
same session into a clear ConcurrentWriteError instead of a forked log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from agentmem.messages import InvalidMessageError, Message, message_text, parse_message
from agentmem.view import Event

__all__ = [
    "Store",
    "StoredMessage",
    "SearchHit",
    "StoreError",
    "ConcurrentWriteError",
    "default_store_url",
]


class StoreError(RuntimeError):
    """The store refused an operation; nothing was written."""


class ConcurrentWriteError(StoreError):
    """Another writer appended to the same session first; reload the session and retry."""


metadata = MetaData()

sessions_table = Table(
    "agentmem_sessions",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("meta", Text, nullable=False, default="{}"),
)

messages_table = Table(
    "agentmem_messages",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("id", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON, byte-exact
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 without the id: same message passed again
    Column("tokens", Integer, nullable=False),
    Column("body", Text, nullable=False),  # searchable text (content + tool-call arguments)
    Column("created_at", Float, nullable=False),
    Index("ix_agentmem_messages_session_id", "session_id", "id", unique=True),
)

events_table = Table(
    "agentmem_events",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("covers", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("after_message", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True)
class StoredMessage:
    message: Message
    seq: int
    tokens: int
    payload: str
    sha256: str


@dataclass(frozen=True)
class SearchHit:
    message_id: str
    seq: int
    role: str
    score: float
    body: str


def default_store_url() -> str:
    """$AGENTMEM_DB (a URL or a path) or an SQLite file in the user's data directory."""
    env = os.environ.get("AGENTMEM_DB")
    if env:
        return _to_url(env)
    from platformdirs import user_data_dir

    return _to_url(str(Path(user_data_dir("agentmem")) / "agentmem.db"))


def _to_url(target: str | os.PathLike[str]) -> str:
    s = str(target)
    if "://" in s:
        if s.startswith("postgresql://") or s.startswith("postgres://"):
            return "postgresql+psycopg://" + s.split("://", 1)[1]
        return s
    if s == ":memory:":
        return "sqlite://"
    Path(s).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(s).expanduser()}"


_WORD = re.compile(r"\w[\w.\-/]*")  # \w is Unicode-aware: "café", "日本語" are searchable terms too


def _terms(query: str, limit: int = 24) -> list[str]:
    seen: list[str] = []
    for w in _WORD.findall(query or ""):
        w = w.strip(".-/").lower()
        if (len(w) >= 2 or w.isdigit()) and w not in seen:  # digits matter: "page 0"
            seen.append(w)
        if len(seen) >= limit:
            break
    return seen


# PostgreSQL's parser keeps paths, emails, file names and hyphenated words as single tokens, so a search for a
# part of one ("x_1.json" in "/data/x_1.json", "mia" in "mia@x.com") found nothing there while SQLite's FTS5 found
# it. Both dialects now split on ASCII punctuation, on the document side and the query side alike.
_PUNCT = string.punctuation
_PG_VECTOR = ("to_tsvector('simple', translate(body, '" + _PUNCT.replace("'", "''") + "', '"
              + " " * len(_PUNCT) + "'))")
_PIECES = re.compile(r"[^\W_]+")  # letters and digits only: nothing that to_tsquery would treat as syntax


def _pg_tsquery(terms: Sequence[str]) -> str:
    """Each term as a phrase of its alphanumeric pieces, terms OR-ed (pieces hold no tsquery syntax to escape)."""
    phrases = []
    for t in terms:
        pieces = _PIECES.findall(t)
        if pieces:
            phrases.append("(" + " <-> ".join(pieces) + ")")
    return " | ".join(phrases)


class Store:
    """Append-only storage of sessions, messages and events.

    Args:
        url: an SQLAlchemy URL (``postgresql://…``, ``sqlite:///…``), a file path, ``":memory:"``, or None for
            the default (``$AGENTMEM_DB`` or an SQLite file under the user data dir).
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, echo: bool = False):
        self.url = _to_url(url) if url is not None else default_store_url()
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                kwargs.update(connect_args={"timeout": 30, "check_same_thread": False})
        else:
            kwargs.update(pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._known_sessions: set[str] = set()  # sessions rows are never deleted, so this cache cannot go stale
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._create_schema()

    # --- schema ----------------------------------------------------------------------------------------------
    def _create_schema(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS agentmem_fts USING fts5("
                    "body, session_id UNINDEXED, message_id UNINDEXED, seq UNINDEXED, tokenize='unicode61')"
                )
            else:
                conn.execute(text(  # text(), not exec_driver_sql: it escapes the '%' of _PG_VECTOR for psycopg
                    f"CREATE INDEX IF NOT EXISTS ix_agentmem_messages_words ON agentmem_messages "
                    f"USING GIN ({_PG_VECTOR})"
                ))

    def close(self) -> None:
        self.engine.dispose()

    # --- sessions --------------------------------------------------------------------------------------------
    def ensure_session(self, session_id: str, meta: dict[str, Any] | None = None) -> None:
        if not isinstance(session_id, str) or not session_id or len(session_id) > 200:
            raise StoreError(f"session id must be a non-empty string of at most 200 characters: {session_id!r}")
        if session_id in self._known_sessions:
            return
        with self.engine.begin() as conn:
            exists = conn.execute(select(sessions_table.c.id).where(sessions_table.c.id == session_id)).first()
            self._known_sessions.add(session_id)
            if exists:
                return
            try:
                conn.execute(sessions_table.insert().values(
                    id=session_id, created_at=time.time(), meta=json.dumps(meta or {}, sort_keys=True)))
            except IntegrityError:  # created concurrently: fine
                pass

    def sessions(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(sessions_table.c.id).order_by(sessions_table.c.created_at))]

    # --- messages --------------------------------------------------------------------------------------------
    def message_count(self, session_id: str) -> int:
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(messages_table)
                             .where(messages_table.c.session_id == session_id)).scalar_one()
        return int(n)

    def append_messages(
        self, session_id: str, messages: Sequence[Message], tokens: Sequence[int], *, expected_count: int | None = None
    ) -> list[int]:
        """Append messages in one transaction; returns their seqs. All or nothing.

        `expected_count` is how many messages the caller believes the session has; a mismatch means another
        writer got there first (ConcurrentWriteError) and nothing is written.
        """
        if len(messages) != len(tokens):
            raise StoreError("messages and tokens differ in length")
        if not messages:
            return []
        self.ensure_session(session_id)
        now = time.time()
        try:
            with self.engine.begin() as conn:
                # seqs are contiguous from 1, so max(seq) is the count, in O(log n) on the primary key
                count = int(conn.execute(select(func.coalesce(func.max(messages_table.c.seq), 0))
                                         .where(messages_table.c.session_id == session_id)).scalar_one())
                if expected_count is not None and count != expected_count:
                    raise ConcurrentWriteError(
                        f"session {session_id!r} has {count} messages, expected {expected_count}")
                ids = [m.id for m in messages]
                clash = conn.execute(select(messages_table.c.id).where(
                    messages_table.c.session_id == session_id, messages_table.c.id.in_(ids))).first()
                if clash:
                    raise InvalidMessageError("message id already stored in this session", message_id=clash[0])
                rows, fts_rows, seqs = [], [], []
                for offset, (m, tok) in enumerate(zip(messages, tokens, strict=True)):
                    payload = m.canonical_json()
                    seq = count + offset + 1
                    body = message_text(m).replace("\x00", " ")  # PostgreSQL text cannot hold NUL
                    seqs.append(seq)
                    rows.append(dict(session_id=session_id, seq=seq, id=m.id, role=m.role, payload=payload,
                                     sha256=hashlib.sha256(payload.encode("utf-8")).hexdigest(),
                                     fingerprint=m.fingerprint(), tokens=int(tok), body=body, created_at=now))
                    fts_rows.append(dict(body=body, session_id=session_id, message_id=m.id, seq=seq))
                conn.execute(messages_table.insert(), rows)
                if self.dialect == "sqlite":
                    conn.execute(text("INSERT INTO agentmem_fts (body, session_id, message_id, seq) "
                                      "VALUES (:body, :session_id, :message_id, :seq)"), fts_rows)
                return seqs
        except IntegrityError as exc:
            raise ConcurrentWriteError(f"concurrent append to session {session_id!r}: {exc.orig}") from None

    def load_messages(self, session_id: str, *, after_seq: int = 0) -> list[StoredMessage]:
        """Messages with seq > after_seq, in order, verified against their sha256."""
        return self._select_stored(session_id, messages_table.c.seq > after_seq)

    def _stored(self, seq: int, payload: str, sha: str, tokens: int) -> StoredMessage:
        if hashlib.sha256(payload.encode("utf-8")).hexdigest() != sha:
            raise StoreError(f"stored message seq {seq} fails its sha256 check (the database was altered)")
        return StoredMessage(message=parse_message(json.loads(payload)), seq=seq, tokens=tokens,
                             payload=payload, sha256=sha)

    def _select_stored(self, session_id: str, condition: Any) -> list[StoredMessage]:
        q = (select(messages_table.c.seq, messages_table.c.payload, messages_table.c.sha256, messages_table.c.tokens)
             .where(messages_table.c.session_id == session_id, condition)
             .order_by(messages_table.c.seq))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [self._stored(*r) for r in rows]

    def get_messages(self, session_id: str, ids: Iterable[str]) -> list[StoredMessage]:
        """Messages with these ids, in session order (unknown ids are skipped)."""
        ids = list(ids)
        return self._select_stored(session_id, messages_table.c.id.in_(ids)) if ids else []

    def get_by_seqs(self, session_id: str, seqs: Iterable[int]) -> list[StoredMessage]:
        """Messages at the given positions, in order (missing positions are skipped)."""
        seqs = sorted(set(seqs))
        return self._select_stored(session_id, messages_table.c.seq.in_(seqs)) if seqs else []

    def get_payload(self, session_id: str, message_id: str) -> str:
        """Exactly the text written for this message (canonical JSON)."""
        found = self.get_messages(session_id, [message_id])
        if not found:
            raise KeyError(f"no message {message_id!r} in session {session_id!r}")
        return found[0].payload

    def last_fingerprint(self, session_id: str) -> tuple[int, str | None]:
        """(count, fingerprint of the newest message) — enough to detect new messages in O(1)."""
        q = (select(messages_table.c.seq, messages_table.c.fingerprint)
             .where(messages_table.c.session_id == session_id)
             .order_by(messages_table.c.seq.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return (int(row[0]), row[1]) if row else (0, None)

    def fingerprints(self, session_id: str, seqs: Sequence[int]) -> dict[int, str]:
        q = (select(messages_table.c.seq, messages_table.c.fingerprint)
             .where(messages_table.c.session_id == session_id, messages_table.c.seq.in_(list(seqs))))
        with self.engine.connect() as conn:
            return {int(s): f for s, f in conn.execute(q)}

    # --- events ----------------------------------------------------------------------------------------------
    def append_event(self, session_id: str, ev: Event) -> None:
        """Record one applied event. Its seq must be the next one of the session, else ConcurrentWriteError."""
        self.ensure_session(session_id)
        try:
            with self.engine.begin() as conn:
                last = conn.execute(select(func.max(events_table.c.seq))
                                    .where(events_table.c.session_id == session_id)).scalar()
                if (last or 0) + 1 != ev.seq:
                    raise ConcurrentWriteError(
                        f"session {session_id!r} event log is at {last or 0}; event {ev.seq} does not follow it")
                conn.execute(events_table.insert().values(
                    session_id=session_id, seq=ev.seq, kind=ev.kind, covers=json.dumps(list(ev.covers)),
                    text=ev.text, after_message=ev.after_message,
                    meta=json.dumps(ev.meta, sort_keys=True, default=str), created_at=time.time()))
        except IntegrityError as exc:
            raise ConcurrentWriteError(f"concurrent event append to session {session_id!r}: {exc.orig}") from None

    def load_events(self, session_id: str, *, after_seq: int = 0) -> list[Event]:
        q = (select(events_table).where(events_table.c.session_id == session_id, events_table.c.seq > after_seq)
             .order_by(events_table.c.seq))
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [Event(seq=r["seq"], kind=r["kind"], covers=tuple(json.loads(r["covers"])), text=r["text"],
                      after_message=r["after_message"], meta=json.loads(r["meta"])) for r in rows]

    # --- search ----------------------------------------------------------------------------------------------
    def search(self, session_id: str, query: str, *, limit: int = 8, exclude: Iterable[str] = ()) -> list[SearchHit]:
        """Full-text search over the session's archive (SQLite FTS5 bm25 / PostgreSQL ts_rank), best first."""
        terms = _terms(query)
        if not terms:
            return []
        excluded = set(exclude)
        fetch = limit + len(excluded) + 8
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
                rows = conn.execute(text(
                    "SELECT message_id, seq, body, bm25(agentmem_fts) AS rank FROM agentmem_fts "
                    "WHERE agentmem_fts MATCH :match AND session_id = :sid ORDER BY rank LIMIT :n"),
                    {"match": match, "sid": session_id, "n": fetch}).all()
                hits = [(mid, seq, body, -float(rank)) for mid, seq, body, rank in rows]
                roles = {}
                if hits:
                    roles = dict(conn.execute(select(messages_table.c.id, messages_table.c.role).where(
                        messages_table.c.session_id == session_id,
                        messages_table.c.id.in_([h[0] for h in hits]))).all())
                out = [SearchHit(message_id=m, seq=int(s), role=roles.get(m, "?"), score=sc, body=b)
                       for m, s, b, sc in hits]
            else:
                tsq = _pg_tsquery(terms)
                if not tsq:
                    return []
                rows = conn.execute(text(
                    f"SELECT id, seq, role, body, ts_rank({_PG_VECTOR}, to_tsquery('simple', :q)) AS rank "
                    f"FROM agentmem_messages WHERE session_id = :sid AND {_PG_VECTOR} @@ to_tsquery('simple', :q) "
                    "ORDER BY rank DESC, seq LIMIT :n"),
                    {"q": tsq, "sid": session_id, "n": fetch}).all()
                out = [SearchHit(message_id=m, seq=int(s), role=r, score=float(rank), body=b)
                       for m, s, r, b, rank in rows]
        return [h for h in out if h.message_id not in excluded][:limit]


    def find_text(self, session_id: str, needles: Sequence[str], *, limit: int = 400) -> list[SearchHit]:
        """Messages whose text contains every needle (case-insensitive, exact substring), in session order.

        The exact look-up beside `search`: ids, call names with their arguments and quoted phrases must be found
        even where bm25 ranks a long message low or the tokenizer splits the value."""
        needles = [n.lower() for n in needles if n]
        if not needles:
            return []
        conds = []
        for n in needles:
            pat = "%" + n.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append(func.lower(messages_table.c.body).like(pat, escape="\\"))
        q = (select(messages_table.c.id, messages_table.c.seq, messages_table.c.role, messages_table.c.body)
             .where(messages_table.c.session_id == session_id, *conds)
             .order_by(messages_table.c.seq).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [SearchHit(message_id=m, seq=int(sq), role=r, score=1.0, body=b) for m, sq, r, b in rows]

def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
    finally:
        cur.close()
