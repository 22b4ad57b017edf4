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


def _store(db: str | None):
    from agentmem.store import Store

    return Store(db)


def _need_session(store, session_id: str) -> None:
    if session_id not in store.sessions():
        typer.echo(f"error: no session {session_id!r} in {store.url}", err=True)
        raise typer.Exit(2)


def sessions_command(db: DbOption = None) -> None:
    """List the sessions in a store with their message and event counts."""
    store = _store(db)
    for sid in store.sessions():
        n_msgs = store.message_count(sid)
        n_events = len(store.load_events(sid))
        typer.echo(f"{sid}\t{n_msgs} messages\t{n_events} events")


def view_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Print the rendered view as JSON.")] = False
                 ) -> None:
    """Rebuild a session's current view by replaying its event log, and print it."""
    from agentmem.policies import NoOpPolicy
    from agentmem.session import MemorySession

    store = _store(db)
    _need_session(store, session_id)
    session = MemorySession(store, session_id, policy=NoOpPolicy())
    if as_json:
        json.dump(session.view.render(), sys.stdout, ensure_ascii=False, indent=1)
        typer.echo()
        return
    typer.echo(f"{session_id}: {session.message_count} messages, {session.raw_tokens} raw tokens, "
               f"view {session.view.tokens} tokens in {len(session.view.items)} items")
    for it in session.view.items:
        content = it.render().get("content") or ""
        flat = " ".join(str(content).split())[:110]
        typer.echo(f"  {it.key:26s} {type(it).__name__:12s} {it.tokens:6d}  {flat}")


def events_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None) -> None:
    """Print a session's event log: every memory action applied, with its policy, thinker and sizes."""
    store = _store(db)
    _need_session(store, session_id)
    for ev in store.load_events(session_id):
        meta = {k: v for k, v in ev.meta.items() if k != "stubs"}
        typer.echo(f"{ev.seq:4d} {ev.kind:9s} after msg {ev.after_message:5d} covers {len(ev.covers):4d}  "
                   f"{json.dumps(meta, ensure_ascii=False, default=str)}")


def export_command(session_id: Annotated[str, typer.Argument(help="Session id.")], db: DbOption = None,
                   out: Annotated[Optional[Path], typer.Option("--out", help="File to write (default stdout).")] = None
                   ) -> None:
    """Write a session's messages as JSON Lines, byte-exact as stored (canonical JSON, one per line)."""
    store = _store(db)
    _need_session(store, session_id)
    lines = [s.payload for s in store.load_messages(session_id)]
    text = "\n".join(lines) + ("\n" if lines else "")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
