"""Splitting a thinking model's output into its trace and its visible answer (shared by all thinkers)."""

from __future__ import annotations

from typing import Any

__all__ = ["THINK_CLOSE", "THINK_OPEN", "field", "openai_text", "plain_message", "split_thinking"]

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


def field(obj: Any, key: str, default: Any = None) -> Any:
    """obj[key] for dicts, obj.key for response objects (litellm returns either)."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def openai_text(response: Any) -> tuple[str, str, Any]:
    """(text, answer, finish_reason) of an OpenAI-format chat completion.

    `text` is the model's reasoning (`reasoning_content`, thinking blocks, or a `<think>` block in the content)
    when there is one, else the content; `answer` is the content after the reasoning ("" without reasoning).
    """
    choices = field(response, "choices") or []
    if not choices:
        return "", "", None
    message = field(choices[0], "message")
    content = field(message, "content") or ""
    if not isinstance(content, str):  # content parts
        content = "".join(field(p, "text", "") or "" for p in content)
    reasoning = field(message, "reasoning_content") or ""
    if not reasoning:
        blocks = field(message, "thinking_blocks") or []
        reasoning = "\n".join(field(b, "thinking", "") or "" for b in blocks)
    finish = field(choices[0], "finish_reason")
    if reasoning.strip():
        return reasoning.strip(), content.strip(), finish
    if (parts := split_thinking(content)) is not None:
        thinking, answer = parts
        return thinking or answer, answer, finish
    return content.strip(), "", finish


def plain_message(m: dict) -> dict:
    """Content parts (OpenAI style) flattened to text and None to "", which every chat template accepts."""
    content = m.get("content")
    if isinstance(content, str):
        return m
    if content is None:
        return {**m, "content": ""}
    return {**m, "content": "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)}
