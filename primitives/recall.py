"""recall: archived content comes back into the view, by id or by query, within a token budget.

The store finds the content (by id, or full-text over the session's archive); this pure function formats it into
one marked snippet and appends it to the view. `unrecall` takes snippets out again when they have served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentmem.messages import Message, message_text
from agentmem.tokens import TokenCounter
from agentmem.view import RECALL_HEADER, Event, EventError, View, apply_event

from ._common import fit_to_budget

__all__ = ["RecallConfig", "recall", "unrecall", "format_archive"]


class RecallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_tokens: int = Field(default=1200, ge=16, description="Cap on one recalled snippet, counted.")
    max_messages: int = Field(default=4, ge=1, description="Search hits per query; each comes with its round.")
    per_message_tokens: int = Field(default=400, ge=16)


def format_archive(messages: Sequence[Message], *, counter: TokenCounter, budget_tokens: int,
                   per_message_tokens: int, heading: str) -> tuple[str, list[str]]:
    """A heading plus each message's text (cut per message and overall by counting); returns (text, ids used)."""
    lines = [heading]
    used_ids: list[str] = []
    remaining = budget_tokens - counter.text(heading)
    for m in messages:
        if remaining <= 16:
            break
        label = f"--- {m.id} ({m.role}{'/' + m.name if m.name else ''})"
        body = fit_to_budget(message_text(m).splitlines() or [""], min(per_message_tokens, remaining - 8), counter)
        chunk = [label, *body]
        remaining -= sum(counter.text(c + "\n") for c in chunk)
        lines.extend(chunk)
        used_ids.append(m.id)
    return "\n".join(lines), used_ids


def recall(view: View, *, found: Sequence[Message], counter: TokenCounter, query: str | None = None,
           config: RecallConfig = RecallConfig(), meta: dict[str, Any] | None = None) -> tuple[View, Event | None]:
    """Append one recalled snippet with `found` (archived messages, best first). None when nothing was found."""
    if not found:
        return view, None
    what = f"query {query!r}" if query else "ids"
    heading = f"{RECALL_HEADER} archived messages for {what}; this is memory, not a new request]"
    text, ids = format_archive(found, counter=counter, budget_tokens=config.budget_tokens,
                               per_message_tokens=config.per_message_tokens, heading=heading)
    if not ids:
        return view, None
    event = Event(seq=view.next_seq, kind="recall", covers=tuple(ids), text=text, after_message=view.message_count,
                  meta={"query": query, **(meta or {})})
    return apply_event(view, event, counter), event


def unrecall(view: View, *, keys: Sequence[str], counter: TokenCounter,
             meta: dict[str, Any] | None = None) -> tuple[View, Event]:
    """Remove recalled snippets (by their rec-N keys) from the view; the inverse of recall."""
    if not keys:
        raise EventError("unrecall needs at least one key")
    event = Event(seq=view.next_seq, kind="unrecall", covers=tuple(dict.fromkeys(keys)), text="",
                  after_message=view.message_count, meta=dict(meta or {}))
    return apply_event(view, event, counter), event
