"""The lossless store: append-only messages, sessions, branches and the event log (SQLAlchemy 2.x).

Embedded SQLite (WAL) by default, PostgreSQL by URL for many workers. Nothing is ever updated or deleted: a message
is written once as canonical JSON with its sha256, and reading it back returns exactly those bytes.

A session is a tree: each message row belongs to a branch at a position (`pos`) of that branch's path and carries
a hash chain over the path up to it, so "is this history stored, and where does it leave the tree" is an indexed
lookup. Branches continue their parent's path and event log from a fork point. Writers of one session are
serialized (SQLite BEGIN IMMEDIATE, a PostgreSQL advisory lock); a writer whose idea of a branch's head is stale
gets ConcurrentWriteError with nothing written, and readers see one snapshot of messages and events.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import time
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool

from agentmem.messages import InvalidMessageError, Message, message_text, parse_message
from agentmem.view import Event

__all__ = [
    "Store",
    "StoredMessage",
    "SearchHit",
    "Branch",
    "BranchState",
    "chain_next",
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

# A session is a tree of branches. Branch 0 (the root) is implicit; every other branch continues its parent's
# path after `fork_at` messages and its parent's event log after `fork_events` events. Rows are never changed.
branches_table = Table(
    "agentmem_branches",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("branch", Integer, primary_key=True),
    Column("parent", Integer, nullable=False),
    Column("fork_at", Integer, nullable=False),
    Column("fork_events", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("meta", Text, nullable=False),
)

messages_table = Table(
    "agentmem_messages",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),  # order of writing within the session (all branches)
    Column("id", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON, byte-exact
    Column("sha256", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 without the id: same message passed again
    Column("tokens", Integer, nullable=False),
    Column("body", Text, nullable=False),  # searchable text (content + tool-call arguments)
    Column("created_at", Float, nullable=False),
    Column("branch", Integer, nullable=False, server_default="0"),
    Column("pos", Integer),  # 1-based position in the branch's path
    Column("chain", String(64)),  # H(chain of the parent + fingerprint): identifies the whole path up to here
)

events_table = Table(
    "agentmem_events",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),  # order of writing within the session (all branches)
    Column("kind", String(16), nullable=False),
    Column("covers", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("after_message", Integer, nullable=False),
    Column("meta", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("branch", Integer, nullable=False, server_default="0"),
    Column("bseq", Integer),  # position in the branch's event log (Event.seq)
)

# Indexes are created by name with IF NOT EXISTS so that a database from the linear schema gains them too.
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS ix_agentmem_messages_path ON agentmem_messages (session_id, branch, pos)",
    "CREATE INDEX IF NOT EXISTS ix_agentmem_messages_chain ON agentmem_messages (session_id, chain)",
    "CREATE INDEX IF NOT EXISTS ix_agentmem_messages_msgid ON agentmem_messages (session_id, id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS ix_agentmem_events_branch ON agentmem_events (session_id, branch, bseq)",
)


# Statements of the per-round write path, built once (building and keying a statement per call costs more than
# running it on SQLite).
_M, _E = messages_table.c, events_table.c
_LAST_ROW = (select(_M.pos, _M.chain).where(_M.session_id == bindparam("sid"), _M.branch == bindparam("b"))
             .order_by(_M.pos.desc()).limit(1))
_CHAIN_AT = select(_M.chain).where(_M.session_id == bindparam("sid"), _M.branch == bindparam("b"),
                                   _M.pos == bindparam("p"))
_TOP_SEQ = select(func.coalesce(func.max(_M.seq), 0)).where(_M.session_id == bindparam("sid"))
_ROWS_WITH_IDS = select(_M.id, _M.branch, _M.pos).where(_M.session_id == bindparam("sid"),
                                                         _M.id.in_(bindparam("ids", expanding=True)))
_LAST_EVENT = select(func.max(_E.bseq)).where(_E.session_id == bindparam("sid"), _E.branch == bindparam("b"))
_TOP_EVENT = select(func.coalesce(func.max(_E.seq), 0)).where(_E.session_id == bindparam("sid"))


def chain_next(previous: str, fingerprint: str) -> str:
    """The hash chain over a path: equal values mean the same messages in the same order from the start."""
    return hashlib.sha256((previous + fingerprint).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class StoredMessage:
    message: Message
    seq: int
    tokens: int
    payload: str
    sha256: str
    branch: int = 0
    pos: int = 0
    chain: str = ""


@dataclass(frozen=True)
class SearchHit:
    message_id: str
    seq: int
    role: str
    score: float
    body: str
    branch: int = 0  # the branch the message was written on (a hit may come from an abandoned branch)


@dataclass(frozen=True)
class Branch:
    """One branch of a session: where it leaves its parent, how long its path and its event log are."""

    branch: int
    parent: int | None
    fork_at: int
    fork_events: int
    length: int
    events: int
    created_at: float
    meta: dict[str, Any]


@dataclass(frozen=True)
class BranchState:
    """A branch's path and event log, read in one transaction (a consistent snapshot)."""

    branch: int
    messages: list[StoredMessage]
    events: list[Event]
    length: int  # path length (messages[-1].pos when reading from the start)


@dataclass(frozen=True)
class _Node:
    """One piece of a branch's lineage: rows of `branch` with fork_at < pos <= max_pos (None: no limit)."""

    branch: int
    fork_at: int
    fork_events: int
    max_pos: int | None
    max_event: int | None


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
    """Append-only storage of sessions, their branches, messages and events.

    Args:
        url: an SQLAlchemy URL (``postgresql://…``, ``sqlite:///…``), a file path, ``":memory:"``, or None for
            the default (``$AGENTMEM_DB`` or an SQLite file under the user data dir).
        create: create the file (and its directory) when it does not exist; False raises StoreError instead.
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, echo: bool = False, create: bool = True):
        if not create:
            _require_existing(url if url is not None else default_store_url())
        self.url = _to_url(url) if url is not None else default_store_url()
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        self._serial: threading.RLock | None = None  # one shared connection (in-memory SQLite): one user at a time
        if self.dialect == "sqlite":
            if self.url in ("sqlite://", "sqlite:///:memory:"):
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
                self._serial = threading.RLock()
            else:
                kwargs.update(connect_args={"timeout": 30, "check_same_thread": False})
        else:
            kwargs.update(pool_pre_ping=True)
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._known_sessions: set[str] = set()  # sessions rows are never deleted, so this cache cannot go stale
        self._lineages: dict[tuple[str, int], list[_Node]] = {}  # branch rows never change: safe to cache
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._create_schema()

    # --- transactions ----------------------------------------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction that sees one snapshot (PostgreSQL REPEATABLE READ; SQLite WAL read txn)."""
        with self._serialized(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _write(self, session_id: str | None) -> Iterator[Connection]:
        """A write transaction that holds the session's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock per session), so "read the head, then append after it" cannot interleave with another
        writer of the same session."""
        with self._serialized(), self.engine.connect() as conn:
            conn.execution_options(agentmem_write=True)
            with conn.begin():
                if self.dialect == "postgresql" and session_id is not None:
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "agentmem:" + session_id})
                yield conn

    @contextmanager
    def _serialized(self) -> Iterator[None]:
        if self._serial is None:
            yield
        else:
            with self._serial:
                yield

    # --- schema ----------------------------------------------------------------------------------------------
    def _create_schema(self) -> None:
        """Create (or upgrade) the schema under a lock, so processes opening a fresh database at once all succeed."""
        for attempt in range(8):
            try:
                with self._write(None) as conn:
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('agentmem:schema'))"))
                    metadata.create_all(conn)
                    _upgrade_linear_schema(conn, self.dialect)
                    for ddl in _INDEXES:
                        conn.exec_driver_sql(ddl)
                    if self.dialect == "sqlite":
                        conn.exec_driver_sql(
                            "CREATE VIRTUAL TABLE IF NOT EXISTS agentmem_fts USING fts5("
                            "body, session_id UNINDEXED, message_id UNINDEXED, seq UNINDEXED, tokenize='unicode61')"
                        )
                    else:
                        conn.execute(text(  # text(), not exec_driver_sql: it escapes the '%' of _PG_VECTOR
                            f"CREATE INDEX IF NOT EXISTS ix_agentmem_messages_words ON agentmem_messages "
                            f"USING GIN ({_PG_VECTOR})"
                        ))
                return
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                # another process created the same object between our check and our CREATE: look again
                if attempt == 7 or not any(w in str(exc).lower() for w in ("already exists", "duplicate", "locked")):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    # --- sessions --------------------------------------------------------------------------------------------
    def ensure_session(self, session_id: str, meta: dict[str, Any] | None = None) -> None:
        if not isinstance(session_id, str) or not session_id or len(session_id) > 200:
            raise StoreError(f"session id must be a non-empty string of at most 200 characters: {session_id!r}")
        if session_id in self._known_sessions:
            return
        with self._write(session_id) as conn:
            exists = conn.execute(select(sessions_table.c.id).where(sessions_table.c.id == session_id)).first()
            if not exists:
                conn.execute(sessions_table.insert().values(
                    id=session_id, created_at=time.time(), meta=json.dumps(meta or {}, sort_keys=True)))
        self._known_sessions.add(session_id)

    def sessions(self) -> list[str]:
        with self._read() as conn:
            return [r[0] for r in conn.execute(select(sessions_table.c.id).order_by(sessions_table.c.created_at))]

    # --- branches --------------------------------------------------------------------------------------------
    def _lineage(self, conn: Connection, session_id: str, branch: int) -> list[_Node]:
        """The pieces of `branch`'s path, root first. Raises StoreError for an unknown branch."""
        key = (session_id, branch)
        if key in self._lineages:
            return self._lineages[key]
        rows = {int(r.branch): r for r in conn.execute(select(branches_table).where(
            branches_table.c.session_id == session_id))}
        if branch != 0 and branch not in rows:
            raise StoreError(f"session {session_id!r} has no branch {branch}")
        nodes: list[_Node] = []
        max_pos: int | None = None
        max_event: int | None = None
        b: int | None = branch
        while b is not None:
            row = rows.get(b)
            fork_at, fork_events = (int(row.fork_at), int(row.fork_events)) if row is not None else (0, 0)
            if max_pos is None or max_pos > fork_at or (max_event is not None and max_event > fork_events):
                nodes.append(_Node(branch=b, fork_at=fork_at, fork_events=fork_events, max_pos=max_pos,
                                   max_event=max_event))
            if row is None:
                break
            max_pos = fork_at if max_pos is None else min(max_pos, fork_at)
            max_event = fork_events if max_event is None else min(max_event, fork_events)
            b = int(row.parent)
        nodes.reverse()
        self._lineages[key] = nodes
        return nodes

    @staticmethod
    def _on_path(table: Table, column: Any, nodes: Sequence[_Node], limit: str) -> Any:
        parts = []
        for n in nodes:
            cap = n.max_pos if limit == "pos" else n.max_event
            cond = table.c.branch == n.branch
            if cap is not None:
                cond = and_(cond, column <= cap)
            parts.append(cond)
        return or_(*parts)

    def _tail(self, conn: Connection, session_id: str, nodes: Sequence[_Node]) -> tuple[int, str]:
        """(path length, chain value at its end) of the branch whose lineage is `nodes`."""
        own = nodes[-1]
        row = conn.execute(_LAST_ROW, {"sid": session_id, "b": own.branch}).first()
        if row is not None:
            return int(row[0]), row[1]
        at = own.fork_at
        for n in nodes[:-1]:
            if n.fork_at < at and (n.max_pos is None or at <= n.max_pos):
                return at, conn.execute(_CHAIN_AT, {"sid": session_id, "b": n.branch, "p": at}).scalar_one()
        return at, ""

    def _length(self, conn: Connection, session_id: str, nodes: Sequence[_Node]) -> int:
        """How many messages the path of the branch whose lineage is `nodes` has."""
        return self._tail(conn, session_id, nodes)[0]

    def _log_length(self, conn: Connection, session_id: str, nodes: Sequence[_Node]) -> int:
        """How many events the log of the branch whose lineage is `nodes` has."""
        e = conn.execute(_LAST_EVENT, {"sid": session_id, "b": nodes[-1].branch}).scalar()
        return int(e) if e is not None else nodes[-1].fork_events

    def branches(self, session_id: str) -> list[Branch]:
        """Every branch of a session (the root is branch 0), oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(branches_table).where(branches_table.c.session_id == session_id)
                                .order_by(branches_table.c.branch)).all()
            lengths = dict(conn.execute(select(messages_table.c.branch, func.max(messages_table.c.pos)).where(
                messages_table.c.session_id == session_id).group_by(messages_table.c.branch)).all())
            logs = dict(conn.execute(select(events_table.c.branch, func.max(events_table.c.bseq)).where(
                events_table.c.session_id == session_id).group_by(events_table.c.branch)).all())
            created = conn.execute(select(sessions_table.c.created_at).where(
                sessions_table.c.id == session_id)).scalar()
        out = [Branch(branch=0, parent=None, fork_at=0, fork_events=0, length=int(lengths.get(0) or 0),
                      events=int(logs.get(0) or 0), created_at=float(created or 0.0), meta={})]
        for r in rows:
            b = int(r.branch)
            out.append(Branch(branch=b, parent=int(r.parent), fork_at=int(r.fork_at),
                              fork_events=int(r.fork_events), length=int(lengths.get(b) or r.fork_at),
                              events=int(logs.get(b) or r.fork_events), created_at=float(r.created_at),
                              meta=json.loads(r.meta)))
        return out

    def head_branch(self, session_id: str) -> int:
        """The branch written most recently (where a reopened session continues)."""
        with self._read() as conn:
            m = conn.execute(select(messages_table.c.branch, messages_table.c.created_at).where(
                messages_table.c.session_id == session_id).order_by(messages_table.c.seq.desc()).limit(1)).first()
            e = conn.execute(select(events_table.c.branch, events_table.c.created_at).where(
                events_table.c.session_id == session_id).order_by(events_table.c.seq.desc()).limit(1)).first()
        best = max((r for r in (m, e) if r is not None), key=lambda r: r[1], default=None)
        return int(best[0]) if best is not None else 0

    def fork(self, session_id: str, parent: int, fork_at: int, *, meta: dict[str, Any] | None = None
             ) -> tuple[int, Event]:
        """Start a branch that shares `parent`'s first `fork_at` messages and the events applied up to there.

        The new branch's first event records the fork (kind "fork"). Returns (branch id, that event).
        """
        self.ensure_session(session_id)
        with self._write(session_id) as conn:
            nodes = self._lineage(conn, session_id, parent)
            length = self._length(conn, session_id, nodes)
            if not 0 <= fork_at <= length:
                raise StoreError(f"cannot fork branch {parent} of session {session_id!r} at {fork_at}: "
                                 f"its path has {length} messages")
            # events are applied in order of after_message, so the inherited ones are a prefix of the log
            inherited = conn.execute(select(func.count()).select_from(events_table).where(
                events_table.c.session_id == session_id, events_table.c.after_message <= fork_at,
                self._on_path(events_table, events_table.c.bseq, nodes, "event"))).scalar_one()
            last = conn.execute(select(func.max(branches_table.c.branch)).where(
                branches_table.c.session_id == session_id)).scalar()
            branch = int(last or 0) + 1
            info = {"parent": parent, "fork_at": fork_at, **(meta or {})}
            now = time.time()
            conn.execute(branches_table.insert().values(
                session_id=session_id, branch=branch, parent=parent, fork_at=fork_at, fork_events=int(inherited),
                created_at=now, meta=json.dumps(info, sort_keys=True, default=str)))
            ev = Event(seq=int(inherited) + 1, kind="fork", covers=(), after_message=fork_at, meta=info)
            self._insert_event(conn, session_id, branch, ev, now)
        return branch, ev

    # --- messages --------------------------------------------------------------------------------------------
    def message_count(self, session_id: str) -> int:
        """Messages stored for the session on all its branches."""
        with self._read() as conn:
            n = conn.execute(select(func.count()).select_from(messages_table)
                             .where(messages_table.c.session_id == session_id)).scalar_one()
        return int(n)

    def append_messages(
        self, session_id: str, messages: Sequence[Message], tokens: Sequence[int], *,
        expected_count: int | None = None, branch: int = 0,
    ) -> list[int]:
        """Append messages to a branch's path in one transaction; returns their seqs. All or nothing.

        `expected_count` is how long the caller believes the branch's path is; a mismatch means another writer
        got there first (ConcurrentWriteError) and nothing is written. A message id may occur once per path.
        """
        if len(messages) != len(tokens):
            raise StoreError("messages and tokens differ in length")
        if not messages:
            return []
        self.ensure_session(session_id)
        now = time.time()
        try:
            with self._write(session_id) as conn:
                nodes = self._lineage(conn, session_id, branch)
                count, chain = self._tail(conn, session_id, nodes)
                if expected_count is not None and count != expected_count:
                    raise ConcurrentWriteError(
                        f"session {session_id!r} has {count} messages, expected {expected_count}"
                        + (f" (branch {branch})" if branch else ""))
                ids = [m.id for m in messages]
                # by id first (its index), then in Python whether the row lies on this path: a planner left to
                # choose could scan the whole branch for the OR of the path pieces
                for mid, b, pos in conn.execute(_ROWS_WITH_IDS, {"sid": session_id, "ids": ids}):
                    if _holds(nodes, int(b), int(pos)):
                        raise InvalidMessageError("message id already stored in this session", message_id=mid)
                top = conn.execute(_TOP_SEQ, {"sid": session_id}).scalar_one()
                rows, fts_rows, seqs = [], [], []
                for offset, (m, tok) in enumerate(zip(messages, tokens, strict=True)):
                    payload = m.canonical_json()
                    seq = int(top) + offset + 1
                    fp = m.fingerprint()
                    chain = chain_next(chain, fp)
                    body = message_text(m).replace("\x00", " ")  # PostgreSQL text cannot hold NUL
                    seqs.append(seq)
                    rows.append(dict(session_id=session_id, seq=seq, id=m.id, role=m.role, payload=payload,
                                     sha256=hashlib.sha256(payload.encode("utf-8")).hexdigest(),
                                     fingerprint=fp, tokens=int(tok), body=body, created_at=now,
                                     branch=branch, pos=count + offset + 1, chain=chain))
                    fts_rows.append(dict(body=body, session_id=session_id, message_id=m.id, seq=seq))
                conn.execute(messages_table.insert(), rows)
                if self.dialect == "sqlite":
                    conn.execute(text("INSERT INTO agentmem_fts (body, session_id, message_id, seq) "
                                      "VALUES (:body, :session_id, :message_id, :seq)"), fts_rows)
                return seqs
        except IntegrityError as exc:
            raise ConcurrentWriteError(f"concurrent append to session {session_id!r}: {exc.orig}") from None

    def load_messages(self, session_id: str, *, after_seq: int = 0, branch: int | None = None
                      ) -> list[StoredMessage]:
        """A branch's path (default: the head branch) from position after_seq + 1, verified against sha256."""
        if branch is None:
            branch = self.head_branch(session_id)
        return self.load_branch(session_id, branch, after_pos=after_seq, events=False).messages

    def archive(self, session_id: str) -> list[StoredMessage]:
        """Every message of the session on every branch, in the order they were written."""
        return self._select_stored(session_id, true())

    def load_branch(self, session_id: str, branch: int, *, after_pos: int = 0, after_event: int = 0,
                    messages: bool = True, events: bool = True) -> BranchState:
        """A branch's messages after `after_pos` and events after `after_event`, read in one transaction."""
        with self._read() as conn:
            nodes = self._lineage(conn, session_id, branch)  # StoreError for a branch that does not exist
            q = (select(messages_table.c.seq, messages_table.c.payload, messages_table.c.sha256,
                        messages_table.c.tokens, messages_table.c.branch, messages_table.c.pos, messages_table.c.chain)
                 .where(messages_table.c.session_id == session_id, messages_table.c.pos > after_pos,
                        self._on_path(messages_table, messages_table.c.pos, nodes, "pos"))
                 .order_by(messages_table.c.pos))
            rows = conn.execute(q).all() if messages else []
            evs: list[Event] = []
            if events:
                eq = (select(events_table).where(
                    events_table.c.session_id == session_id, events_table.c.bseq > after_event,
                    self._on_path(events_table, events_table.c.bseq, nodes, "event"))
                    .order_by(events_table.c.bseq))
                evs = [_event(r) for r in conn.execute(eq).mappings()]
            length = self._length(conn, session_id, nodes)
        return BranchState(branch=branch, messages=[self._stored(*r) for r in rows], events=evs, length=length)

    def find_paths(self, session_id: str, chains: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Which of these chain values are stored: chain -> (branch, pos) of a path ending there."""
        out: dict[str, tuple[int, int]] = {}
        with self._read() as conn:
            for i in range(0, len(chains), 500):
                part = list(chains[i:i + 500])
                for c, b, p in conn.execute(select(messages_table.c.chain, messages_table.c.branch,
                                                   messages_table.c.pos).where(
                        messages_table.c.session_id == session_id, messages_table.c.chain.in_(part))
                        .order_by(messages_table.c.seq)):
                    out.setdefault(c, (int(b), int(p)))
        return out

    def _stored(self, seq: int, payload: str, sha: str, tokens: int, branch: int = 0, pos: int | None = None,
                chain: str | None = None) -> StoredMessage:
        if hashlib.sha256(payload.encode("utf-8")).hexdigest() != sha:
            raise StoreError(f"stored message seq {seq} fails its sha256 check (the database was altered)")
        return StoredMessage(message=parse_message(json.loads(payload)), seq=seq, tokens=tokens,
                             payload=payload, sha256=sha, branch=int(branch), pos=int(pos or 0), chain=chain or "")

    def _select_stored(self, session_id: str, condition: Any) -> list[StoredMessage]:
        q = (select(messages_table.c.seq, messages_table.c.payload, messages_table.c.sha256, messages_table.c.tokens,
                    messages_table.c.branch, messages_table.c.pos, messages_table.c.chain)
             .where(messages_table.c.session_id == session_id, condition)
             .order_by(messages_table.c.seq))
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [self._stored(*r) for r in rows]

    def get_messages(self, session_id: str, ids: Iterable[str]) -> list[StoredMessage]:
        """Messages with these ids, in session order (unknown ids are skipped; an id edited on another branch
        returns each stored version)."""
        ids = list(ids)
        return self._select_stored(session_id, messages_table.c.id.in_(ids)) if ids else []

    def get_by_seqs(self, session_id: str, seqs: Iterable[int]) -> list[StoredMessage]:
        """Messages at the given write positions, in order (missing positions are skipped)."""
        seqs = sorted(set(seqs))
        return self._select_stored(session_id, messages_table.c.seq.in_(seqs)) if seqs else []

    def get_payload(self, session_id: str, message_id: str) -> str:
        """Exactly the text written for this message (canonical JSON)."""
        found = self.get_messages(session_id, [message_id])
        if not found:
            raise KeyError(f"no message {message_id!r} in session {session_id!r}")
        return found[0].payload

    def last_fingerprint(self, session_id: str) -> tuple[int, str | None]:
        """(count, fingerprint of the newest message written) — enough to detect new messages in O(1)."""
        q = (select(messages_table.c.seq, messages_table.c.fingerprint)
             .where(messages_table.c.session_id == session_id)
             .order_by(messages_table.c.seq.desc()).limit(1))
        with self._read() as conn:
            row = conn.execute(q).first()
        return (int(row[0]), row[1]) if row else (0, None)

    def fingerprints(self, session_id: str, seqs: Sequence[int]) -> dict[int, str]:
        q = (select(messages_table.c.seq, messages_table.c.fingerprint)
             .where(messages_table.c.session_id == session_id, messages_table.c.seq.in_(list(seqs))))
        with self._read() as conn:
            return {int(s): f for s, f in conn.execute(q)}

    # --- events ----------------------------------------------------------------------------------------------
    def append_event(self, session_id: str, ev: Event, *, branch: int = 0) -> None:
        """Record one applied event on a branch. Its seq must be the branch log's next one, else
        ConcurrentWriteError."""
        self.ensure_session(session_id)
        try:
            with self._write(session_id) as conn:
                nodes = self._lineage(conn, session_id, branch)
                last = self._log_length(conn, session_id, nodes)
                if last + 1 != ev.seq:
                    raise ConcurrentWriteError(
                        f"session {session_id!r} event log is at {last}; event {ev.seq} does not follow it"
                        + (f" (branch {branch})" if branch else ""))
                self._insert_event(conn, session_id, branch, ev, time.time())
        except IntegrityError as exc:
            raise ConcurrentWriteError(f"concurrent event append to session {session_id!r}: {exc.orig}") from None

    def _insert_event(self, conn: Connection, session_id: str, branch: int, ev: Event, now: float) -> None:
        top = conn.execute(_TOP_EVENT, {"sid": session_id}).scalar_one()
        conn.execute(events_table.insert().values(
            session_id=session_id, seq=int(top) + 1, branch=branch, bseq=ev.seq, kind=ev.kind,
            covers=json.dumps(list(ev.covers)), text=ev.text, after_message=ev.after_message,
            meta=json.dumps(ev.meta, sort_keys=True, default=str), created_at=now))

    def load_events(self, session_id: str, *, after_seq: int = 0, branch: int | None = None) -> list[Event]:
        """A branch's event log (default: the head branch), inherited events included, from seq after_seq + 1."""
        if branch is None:
            branch = self.head_branch(session_id)
        return self.load_branch(session_id, branch, after_event=after_seq, messages=False).events

    # --- search ----------------------------------------------------------------------------------------------
    def search(self, session_id: str, query: str, *, limit: int = 8, exclude: Iterable[str] = ()) -> list[SearchHit]:
        """Full-text search over the session's archive (SQLite FTS5 bm25 / PostgreSQL ts_rank), best first."""
        terms = _terms(query)
        if not terms:
            return []
        excluded = set(exclude)
        fetch = limit + len(excluded) + 8
        with self._read() as conn:
            if self.dialect == "sqlite":
                match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
                rows = conn.execute(text(
                    "SELECT message_id, seq, body, bm25(agentmem_fts) AS rank FROM agentmem_fts "
                    "WHERE agentmem_fts MATCH :match AND session_id = :sid ORDER BY rank LIMIT :n"),
                    {"match": match, "sid": session_id, "n": fetch}).all()
                hits = [(mid, int(seq), body, -float(rank)) for mid, seq, body, rank in rows]
                where: dict[int, tuple[str, int]] = {}
                if hits:
                    where = {int(s): (r, int(b)) for s, r, b in conn.execute(
                        select(messages_table.c.seq, messages_table.c.role, messages_table.c.branch).where(
                            messages_table.c.session_id == session_id,
                            messages_table.c.seq.in_([h[1] for h in hits]))).all()}
                out = [SearchHit(message_id=m, seq=s, role=where.get(s, ("?", 0))[0], score=sc, body=b,
                                 branch=where.get(s, ("?", 0))[1]) for m, s, b, sc in hits]
            else:
                tsq = _pg_tsquery(terms)
                if not tsq:
                    return []
                rows = conn.execute(text(
                    f"SELECT id, seq, role, body, branch, ts_rank({_PG_VECTOR}, to_tsquery('simple', :q)) AS rank "
                    f"FROM agentmem_messages WHERE session_id = :sid AND {_PG_VECTOR} @@ to_tsquery('simple', :q) "
                    "ORDER BY rank DESC, seq LIMIT :n"),
                    {"q": tsq, "sid": session_id, "n": fetch}).all()
                out = [SearchHit(message_id=m, seq=int(s), role=r, score=float(rank), body=b, branch=int(br))
                       for m, s, r, b, br, rank in rows]
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
        q = (select(messages_table.c.id, messages_table.c.seq, messages_table.c.role, messages_table.c.body,
                    messages_table.c.branch)
             .where(messages_table.c.session_id == session_id, *conds)
             .order_by(messages_table.c.seq).limit(limit))
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [SearchHit(message_id=m, seq=int(sq), role=r, score=1.0, body=b, branch=int(br))
                for m, sq, r, b, br in rows]


def _holds(nodes: Sequence[_Node], branch: int, pos: int) -> bool:
    """Whether the row (branch, pos) lies on the path made of these lineage pieces."""
    return any(n.branch == branch and (n.max_pos is None or pos <= n.max_pos) for n in nodes)


def _event(r: Any) -> Event:
    return Event(seq=r["bseq"], kind=r["kind"], covers=tuple(json.loads(r["covers"])), text=r["text"],
                 after_message=r["after_message"], meta=json.loads(r["meta"]))


def _require_existing(url: str | os.PathLike[str]) -> None:
    """For readers (the CLI): a path or sqlite URL that names no existing file is a typo, not a new store."""
    s = str(url)
    if "://" in s and not s.startswith("sqlite:///"):
        return
    path = Path(s.split("sqlite:///", 1)[1] if s.startswith("sqlite:///") else s).expanduser()
    if s in (":memory:", "sqlite://") or not str(path):
        return
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a store file")
    if not path.exists():
        raise StoreError(f"no store at {path} (nothing was created)")


def _upgrade_linear_schema(conn: Connection, dialect: str) -> None:
    """Give a database written by the linear (single-branch) schema the branch columns, in place.

    Only columns and indexes are added; every stored payload stays byte-identical. Existing rows become branch 0
    with pos = seq, and their hash chain is computed from the stored fingerprints.
    """
    cols = {c["name"] for c in inspect(conn).get_columns("agentmem_messages")}
    if "chain" in cols:
        return
    for table in ("agentmem_messages", "agentmem_events"):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN branch INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE agentmem_messages ADD COLUMN pos INTEGER")
    conn.exec_driver_sql("ALTER TABLE agentmem_messages ADD COLUMN chain VARCHAR(64)")
    conn.exec_driver_sql("ALTER TABLE agentmem_events ADD COLUMN bseq INTEGER")
    conn.exec_driver_sql("UPDATE agentmem_messages SET pos = seq")
    conn.exec_driver_sql("UPDATE agentmem_events SET bseq = seq")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_agentmem_messages_session_id")  # ids are unique per path now
    rows = conn.execute(select(messages_table.c.session_id, messages_table.c.seq, messages_table.c.fingerprint)
                        .order_by(messages_table.c.session_id, messages_table.c.seq)).all()
    updates, previous, chain = [], None, ""
    for sid, seq, fp in rows:
        if sid != previous:
            previous, chain = sid, ""
        chain = chain_next(chain, fp)
        updates.append({"s": sid, "q": seq, "c": chain})
    if updates:
        conn.execute(text("UPDATE agentmem_messages SET chain = :c WHERE session_id = :s AND seq = :q"), updates)


def _sqlite_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock up front (BEGIN IMMEDIATE): no lock upgrade that could fail mid-way."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("agentmem_write") else "BEGIN")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly by _sqlite_begin
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
    finally:
        cur.close()
