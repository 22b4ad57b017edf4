"""`agentmem sessions | view | events | export`: look into a store (what the model saw, and why)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["sessions_command", "view_command", "events_command", "export_command"]

DbOption = Annotated[Optional[str], typer.Option("--db", help="Store URL or SQLite path (default: $AGENTMEM_DB or "
                                                              "the user data dir).")]


BranchOption = Annotated[Optional[int], typer.Option("--branch", help="Branch of the session (default: the one "
                                                                    "written last; see `agentmem sessions`).")]


def _store(db: str | None):
    """An existing store: a mistyped --db names a file that is not there, and nothing is created for it."""
    from agentmem.store import Store, StoreError

    try:
        return Store(db, create=False)
    except StoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _need_session(store, session_id: str) -> None:
    if session_id not in store.sessions():
        typer.echo(f"error: no session {session_id!r} in {store.url}", err=True)
        raise typer.Exit(2)


def _need_branch(store, session_id: str, branch: int | None) -> None:
    if branch is not None and branch not in {b.branch for b in store.branches(session_id)}:
        typer.echo(f"error: session {session_id!r} has no branch {branch}", err=True)
        raise typer.Exit(2)


def sessions_command(db: DbOption = None) -> None:
    """List the sessions in a store with their message and event counts."""
    store = _store(db)
    for sid in store.sessions():
        branches = store.branches(sid)
        n_msgs = store.message_count(sid)
        n_events = sum(b.events - b.fork_events for b in branches)
        typer.echo(f"{sid}\t{n_msgs} messages\t{n_events} events\t{len(branches)} branches")


def view_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None,
                 branch: BranchOption = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print the rendered view as JSON.")] = False
                 ) -> None:
    """Rebuild a session's current view by replaying its event log, and print it."""
    from agentmem.policies import NoOpPolicy
    from agentmem.session import MemorySession

    store = _store(db)
    _need_session(store, session_id)
    session = MemorySession(store, session_id, policy=NoOpPolicy())
    if branch is not None:
        _need_branch(store, session_id, branch)
        session._load(branch)
    if as_json:
        json.dump(session.view.render(), sys.stdout, ensure_ascii=False, indent=1)
        typer.echo()
        return
    typer.echo(f"{session_id} (branch {session.branch}): {session.message_count} messages, "
               f"{session.raw_tokens} raw tokens, view {session.view.tokens} tokens in {len(session.view.items)} items")
    for it in session.view.items:
        content = it.render().get("content") or ""
        flat = " ".join(str(content).split())[:110]
        typer.echo(f"  {it.key:26s} {type(it).__name__:12s} {it.tokens:6d}  {flat}")


def events_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None,
                   branch: BranchOption = None) -> None:
    """Print a branch's event log: every memory action applied (and the fork that started the branch), with its
    policy, thinker and sizes."""
    store = _store(db)
    _need_session(store, session_id)
    _need_branch(store, session_id, branch)
    for ev in store.load_events(session_id, branch=branch):
        meta = {k: v for k, v in ev.meta.items() if k != "stubs"}
        typer.echo(f"{ev.seq:4d} {ev.kind:9s} after msg {ev.after_message:5d} covers {len(ev.covers):4d}  "
                   f"{json.dumps(meta, ensure_ascii=False, default=str)}")


def export_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None,
                   branch: BranchOption = None,
                   out: Annotated[Optional[Path], typer.Option("--out", help="File to write (default stdout).")] = None
                   ) -> None:
    """Write a branch's messages as JSON Lines, byte-exact as stored (canonical JSON, one per line)."""
    store = _store(db)
    _need_session(store, session_id)
    _need_branch(store, session_id, branch)
    lines = [s.payload for s in store.load_messages(session_id, branch=branch)]
    text = "\n".join(lines) + ("\n" if lines else "")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
