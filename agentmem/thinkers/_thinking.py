"""Splitting a thinking model's output into its trace and its visible answer (shared by all thinkers)."""

from __future__ import annotations

__all__ = ["THINK_CLOSE", "THINK_OPEN", "split_thinking"]

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def split_thinking(raw: str) -> tuple[str, str] | None:
    """Return (thinking, answer) when `raw` carries a think block, else None.

    Handles `<think>trace</think>answer`, `trace</think>answer` (the opening tag was in the prompt, as with
    Qwen3-thinking and R1-distill templates) and an unterminated `<think>trace` (the token cap cut the trace).
    """
    if THINK_CLOSE in raw:
        head, _, answer = raw.partition(THINK_CLOSE)
        if THINK_OPEN in head:
            head = head.split(THINK_OPEN, 1)[1]
        return head.strip(), answer.strip()
    if THINK_OPEN in raw:
        before, _, trace = raw.partition(THINK_OPEN)
        return trace.strip(), before.strip()
    return None
