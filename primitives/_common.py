"""Helpers the primitives share: reading a span of a view as text, and cutting text to a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from agentmem.messages import message_text
from agentmem.tokens import TokenCounter
from agentmem.view import BlockItem, EventError, Item, MessageItem, RecalledItem, StubItem, View, _span_indices

__all__ = ["span_items", "item_text", "fit_to_budget", "tool_names", "values_line"]


def span_items(view: View, span: Sequence[str]) -> list[Item]:
    """The items of a contiguous span of whole units, in view order (EventError if it is not one)."""
    if not span:
        raise EventError("empty span")
    start, end = _span_indices(view, span)
    return view.items[start:end]


def item_text(item: Item) -> str:
    if isinstance(item, (MessageItem, StubItem)):  # a stub still carries its original: summaries may read it
        return message_text(item.message)
    if isinstance(item, (BlockItem, RecalledItem)):  # the header names ids and tools, not content: skip it
        return item.text.split("\n", 1)[1] if "\n" in item.text else ""
    return ""  # pragma: no cover


def tool_names(view: View) -> dict[str, str]:
    """tool_call_id → function name, for every assistant call in the view."""
    out: dict[str, str] = {}
    for it in view.items:
        msg = getattr(it, "message", None)
        if msg is not None and msg.role == "assistant":
            for tc in msg.tool_calls:
                out[tc.id] = tc.name
    return out


def fit_to_budget(lines: Sequence[str], budget: int, counter: TokenCounter) -> list[str]:
    """Keep lines in order while the total stays within `budget` tokens; cut the first line that overflows."""
    out: list[str] = []
    used = 0
    for line in lines:
        n = counter.text(line + "\n")
        if used + n <= budget:
            out.append(line)
            used += n
            continue
        room = budget - used
        if room > 8:
            enc_cut = counter.cut(line, room - 2)
            if enc_cut:
                out.append(enc_cut + " …")
        break
    return out


def values_line(values: Sequence[str], budget: int, counter: TokenCounter, *, prefix: str = "values: ") -> list[str]:
    """One "values: a, b, …" line within `budget` tokens, made of whole values only.

    Cutting the joined line at a token boundary (fit_to_budget) could leave half a value ("/data/inv …", "inv_63"):
    a wrong identifier is worse than a missing one, so values that do not fit are left out whole.
    """
    kept: list[str] = []
    for v in values:
        if counter.text(prefix + ", ".join([*kept, v]) + "\n") > budget:
            break
        kept.append(v)
    return [prefix + ", ".join(kept)] if kept else []
