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

__all__ = ["RecallConfig", "recall", "unrecall", "format_archive", "archive_pages", "page_archive"]


class RecallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_tokens: int = Field(default=1200, ge=16, description="Cap on one recalled snippet, counted.")
    max_messages: int = Field(default=4, ge=1, description="Search hits per query; each comes with its round.")
    per_message_tokens: int = Field(default=400, ge=16)


def _label(m: Message) -> str:
    return f"--- {m.id} ({m.role}{'/' + m.name if m.name else ''})"


def _pieces(m: Message, piece_tokens: int, counter: TokenCounter) -> list[str]:
    """A message's text in pieces of at most `piece_tokens` (whole lines where possible); one piece if it fits."""
    text = message_text(m)
    if counter.text(text) <= piece_tokens:
        return [text]
    out: list[str] = []
    rest = text
    while rest:
        cut = counter.cut(rest, piece_tokens)
        if len(cut) < len(rest):
            nl = cut.rfind("\n")
            if nl > len(cut) // 2:
                cut = cut[: nl + 1]
        cut = cut or rest[:1]
        out.append(cut)
        rest = rest[len(cut):]
    return out


def archive_pages(messages: Sequence[Message], *, counter: TokenCounter, page_tokens: int) -> list[list[str]]:
    """All of `messages` as pages of labelled chunks, each page within `page_tokens`; nothing is dropped.

    A message longer than a page is split into parts ("--- id (tool) part 2/3"), so the end of a long output is
    reachable by paging like everything else."""
    pages: list[list[str]] = [[]]
    used = 0
    for m in messages:
        parts = _pieces(m, max(16, page_tokens - 24), counter)
        for j, body in enumerate(parts):
            label = _label(m) + (f" part {j + 1}/{len(parts)}" if len(parts) > 1 else "")
            chunk = label + "\n" + body
            n = counter.text(chunk + "\n")
            if used and used + n > page_tokens:
                pages.append([])
                used = 0
            pages[-1].append(chunk)
            used += n
    return pages


def page_archive(messages: Sequence[Message], *, counter: TokenCounter, page_tokens: int, page: int = 1,
                 heading: str) -> str:
    """Page `page` (from 1) of `messages` under `heading`, ending with what is left and how to ask for it."""
    # the heading and the closing note count against the page too
    room = max(64, page_tokens - counter.text(heading) - 48)
    pages = archive_pages(messages, counter=counter, page_tokens=room)
    if page < 1 or page > len(pages):
        return f"{heading}\n[agentmem: page {page} does not exist; this answer has {len(pages)} page(s)]"
    lines = [f"{heading} (page {page} of {len(pages)})" if len(pages) > 1 else heading, *pages[page - 1]]
    later = [c for p in pages[page:] for c in p]
    if later:
        ids = list(dict.fromkeys(c.split(" ", 2)[1] for c in later))
        more = sum(counter.text(c) for c in later)
        lines.append(f"[agentmem: {len(ids)} more message(s) ({more} tokens) on {len(pages) - page} more page(s): "
                     f"call recall_memory again with the same arguments and page={page + 1}]")
    return "\n".join(lines)


def format_archive(messages: Sequence[Message], *, counter: TokenCounter, budget_tokens: int,
                   per_message_tokens: int, heading: str) -> tuple[str, list[str]]:
    """A heading plus each message's text (cut per message and overall by counting); returns (text, ids used).

    Whatever is cut is said, with the id to recall for the rest: no truncation without a note."""
    lines = [heading]
    used_ids: list[str] = []
    reserve = 32  # the closing note when messages are left out
    remaining = budget_tokens - counter.text(heading + "\n") - reserve
    for m in messages:
        if remaining <= 16:
            break
        whole = message_text(m).splitlines() or [""]
        limit = min(per_message_tokens, remaining - 8)
        if counter.text("\n".join(whole) + "\n") <= limit:
            body = whole
        else:
            note = f"[agentmem: cut; recall_memory ids=[\"{m.id}\"] pages through the rest]"
            limit = min(limit, remaining - counter.text(_label(m) + "\n" + note + "\n") - 2)
            body = [*fit_to_budget(whole, max(0, limit), counter), note]
        chunk = [_label(m), *body]
        remaining -= sum(counter.text(c + "\n") for c in chunk)
        lines.extend(chunk)
        used_ids.append(m.id)
    left = [m.id for m in messages if m.id not in used_ids]
    if left:
        lines.append(f"[agentmem: {len(left)} more not shown ({', '.join(left[:2])}{' …' if len(left) > 2 else ''}); "
                     "recall_memory pages through them]")
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
