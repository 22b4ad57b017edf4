"""fold: a span of finished rounds becomes one block; the originals stay in the store, recallable.

Without a model the block is extractive and structured (what was done, outcomes, and the identifiers, paths,
numbers and errors that appeared), so values survive a fold even with no thinker at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentmem.tokens import TokenCounter
from agentmem.values import ERROR_LINE, extract_values
from agentmem.view import BLOCK_HEADER, BlockItem, Event, Item, MessageItem, View, apply_event
from ._common import fit_to_budget, item_text, span_items, tool_names, values_line

__all__ = ["FoldConfig", "fold", "extractive_summary", "block_header"]


class FoldConfig(BaseModel):
    """How big a block may be and what the extractive summary keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_block_tokens: int = Field(default=500, ge=32, description="Hard cap on the block's text, counted.")
    max_values: int = Field(default=80, ge=0, description="Identifier-like values listed in the block.")
    value_share: float = Field(default=0.45, gt=0, le=1, description="Share of the budget reserved for values.")
    step_chars: int = Field(default=160, ge=20, description="Characters of each step line.")


def block_header(key: str, kind: str, items: Sequence[Item]) -> str:
    ids = [i for it in items for i in it.message_ids]
    first, last = (ids[0], ids[-1]) if ids else ("-", "-")
    return (f"{BLOCK_HEADER}: {kind} block {key} covers {len(ids)} earlier messages ({first} … {last}); "
            f"call recall_memory with ids=[\"{key}\"] or a query to read the originals]")


def _short(text: str, n: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _step_lines(items: Sequence[Item], names: dict[str, str], step_chars: int) -> list[str]:
    lines: list[str] = []
    for it in items:
        if isinstance(it, BlockItem):
            body = it.text.split("\n", 1)[1] if "\n" in it.text else ""
            lines.extend(line for line in body.splitlines() if line.strip() and not line.startswith("values:"))
            continue
        msg = getattr(it, "message", None)
        if msg is None:
            lines.append("- recalled: " + _short(item_text(it), step_chars))
            continue
        text = item_text(it)
        if msg.role == "assistant":
            for tc in msg.tool_calls:
                lines.append(f"- call {tc.name}({_short(_args(tc.arguments), step_chars)})")
            if not msg.tool_calls and text.strip():
                lines.append("- assistant: " + _short(text, step_chars))
        elif msg.role == "tool":
            name = names.get(msg.tool_call_id or "", msg.name or "tool")
            errors = [ln for ln in text.splitlines() if ERROR_LINE.search(ln)]
            if errors:
                lines.append(f"! {name} error: " + _short(errors[0], step_chars))
            first = next((ln for ln in text.splitlines() if ln.strip()), "")
            lines.append(f"  → {name}: " + _short(first, step_chars) + ("" if isinstance(it, MessageItem) else ""))
        elif msg.role == "user":
            lines.append("- user: " + _short(text, step_chars))
    return lines


def _args(arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict):
        return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())
    return json.dumps(parsed, ensure_ascii=False)


def extractive_summary(items: Sequence[Item], names: dict[str, str], config: FoldConfig,
                       counter: TokenCounter, *, budget: int | None = None) -> list[str]:
    """Lines of the structured summary (values first, then steps), within `budget` tokens."""
    budget = config.max_block_tokens if budget is None else budget
    source = "\n".join(item_text(it) for it in items)
    values = extract_values(source, limit=config.max_values)
    value_budget = int(budget * config.value_share)
    value_lines = values_line(values, value_budget, counter)
    used = sum(counter.text(v + "\n") for v in value_lines)
    steps = fit_to_budget(_step_lines(items, names, config.step_chars), budget - used, counter)
    return value_lines + steps


def fold(view: View, *, span: Sequence[str], counter: TokenCounter, config: FoldConfig = FoldConfig(),
         text: str | None = None, kind: str = "fold", meta: dict[str, Any] | None = None) -> tuple[View, Event]:
    """Replace the units named by `span` (item keys) with one block. Pure: `view` is not changed.

    Args:
        text: the block body from a thinker; None for the extractive summary.
        kind: "fold", or "summarize" when called by summarize_by_thinking.
    """
    items = span_items(view, span)
    key = f"blk-{view.next_seq}"
    header = block_header(key, kind, items)
    budget = config.max_block_tokens
    if text is None:
        body = extractive_summary(items, tool_names(view), config, counter, budget=budget)
    else:
        body = fit_to_budget(text.strip().splitlines(), budget, counter)
    block_text = header + ("\n" + "\n".join(body) if body else "")
    span_tokens = sum(it.tokens for it in items)
    ev_meta = {"span_tokens": span_tokens, "extractive": text is None, **(meta or {})}
    event = Event(seq=view.next_seq, kind=kind, covers=tuple(it.key for it in items), text=block_text,
                  after_message=view.message_count, meta=ev_meta)
    new = apply_event(view, event, counter)
    block = new.get(key)
    ratio = round(span_tokens / block.tokens, 2) if block and block.tokens else None
    event = event.model_copy(update={"meta": {**ev_meta, "block_tokens": block.tokens if block else 0,
                                              "compression_ratio": ratio}})
    return new, event
