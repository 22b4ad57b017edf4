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
from agentmem.view import BLOCK_HEADER, BlockItem, Event, Item, View, apply_event
from ._common import fit_to_budget, item_text, span_items, tool_names, values_line

__all__ = ["FoldConfig", "fold", "extractive_summary", "block_header"]


class FoldConfig(BaseModel):
    """How big a block may be and what the extractive summary keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_block_tokens: int = Field(default=500, ge=32, description="Hard cap on the block's text, counted.")
    max_values: int = Field(default=80, ge=0, description="Identifier-like values listed in the block.")
    value_share: float = Field(default=0.4, gt=0, le=1,
                               description="Share of the budget kept for values the step lines did not show.")


def block_header(key: str, kind: str, items: Sequence[Item]) -> str:
    ids = [i for it in items for i in it.message_ids]
    first, last = (ids[0], ids[-1]) if ids else ("-", "-")
    return (f"{BLOCK_HEADER}: {kind} block {key} covers {len(ids)} earlier messages ({first} … {last}); "
            f"call recall_memory with ids=[\"{key}\"] or a query to read the originals]")


def _compact(text: str, long_chars: int = 60) -> str:
    """JSON observations without whitespace and with long text fields shortened; other text flattened."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return " ".join(text.split())

    def shrink(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: shrink(v) for k, v in o.items()}
        if isinstance(o, list):
            return [shrink(v) for v in o]
        if isinstance(o, str) and len(o) > long_chars:
            return o[: long_chars - 1] + "…"
        return o

    return json.dumps(shrink(obj), ensure_ascii=False, separators=(",", ":"))


def _groups(items: Sequence[Item], names: dict[str, str]) -> list[tuple[str, int]]:
    """One line per unit (a call with its results, a user turn, a nested block) with the tokens it stood for."""
    out: list[tuple[str, int]] = []
    for it in items:
        if isinstance(it, BlockItem):
            body = it.text.split("\n", 1)[1] if "\n" in it.text else ""
            kept = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("values:")]
            if kept:
                out.append(("\n".join(kept), it.tokens))
            continue
        msg = getattr(it, "message", None)
        if msg is None:  # a recalled snippet folded again: its sources are still in the archive
            continue
        text = item_text(it)
        if msg.role == "assistant":
            calls = "; ".join(f"{tc.name}({_args(tc.arguments)})" for tc in msg.tool_calls)
            content = msg.content if isinstance(msg.content, str) else ""
            said = " ".join(content.split())  # notes an agent writes beside its calls are state too
            if calls:
                out.append((f"- call {calls}" + (f" — said: {said}" if said else ""), it.tokens))
            else:
                out.append((f"- assistant: {said}", it.tokens))
        elif msg.role == "tool":
            name = names.get(msg.tool_call_id or "", msg.name or "tool")
            errors = [ln for ln in text.splitlines() if ERROR_LINE.search(ln)]
            line = f"  → {name}: {_compact(text)}"
            if errors:  # errors are what later steps most often need: flagged on a line of their own
                line = f"  ! {name} error: {' '.join(errors[0].split())}\n" + line
            if out and out[-1][0].startswith("- ") and not out[-1][0].startswith("- assistant"):
                prev, toks = out.pop()
                out.append((prev + "\n" + line, toks + it.tokens))
            else:
                out.append((line, it.tokens))
        elif msg.role == "user":
            out.append(("- user: " + " ".join(text.split()), it.tokens))
    return out


def _cut_clean(text: str, budget: int, counter: TokenCounter) -> str:
    """At most `budget` tokens of `text`, cut back to a separator so no value is left half-written."""
    if counter.text(text) <= budget:
        return text
    from ._common import _cut_tokens

    cut = _cut_tokens(text, max(0, budget - 2), counter)
    stop = max(cut.rfind(c) for c in ",;} ]\n")
    return (cut[:stop] if stop > len(cut) // 2 else cut).rstrip() + " …"


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
    """The structured summary within `budget` tokens: one line per unit, in order, each with a share of the budget
    proportional to what it stood for (calls with their compacted results, so values keep their attribution),
    then the identifier-like values that did not fit in those lines."""
    budget = config.max_block_tokens if budget is None else budget
    groups = _groups(items, names)
    value_budget = int(budget * config.value_share)
    line_budget = budget - value_budget
    total = sum(t for _, t in groups) or 1
    floor = 12
    lines: list[str] = []
    for text, toks in groups:
        share = max(floor, int(line_budget * toks / total))
        lines.append(_cut_clean(text, share, counter))
    lines = fit_to_budget(lines, line_budget, counter)
    written = "\n".join(lines)
    source = "\n".join(item_text(it) for it in items)
    missing = [v for v in extract_values(source, limit=config.max_values * 2) if v not in written]
    used = counter.text(written + "\n") if lines else 0
    return lines + values_line(missing[: config.max_values], budget - used, counter)


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
