"""Shared test helpers: hypothesis strategies for agent histories and small builders for views.

Imported by test modules as `histories` (tests/ is on sys.path through its rootdir conftest).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from agentmem.messages import Message, parse_messages, validate_history
from agentmem.tokens import TokenCounter
from agentmem.view import View

COUNTER = TokenCounter("gpt-4o")

SYSTEM = {"role": "system", "content": "You are an agent that uses tools."}
TASK = {"role": "user", "content": "Reconcile invoice inv_0042 in /data/invoices and report the total."}

_WORDS = ["read", "file", "invoice", "amount", "total", "error", "not found", "ok", "path", "user", "done",
          "checking", "next", "value", "é", "日本", "🙂"]
_VALUES = ["inv_0042", "/data/invoices/a_1.json", "HAT136", "123.45", "user_77", "call-9x", "2024-05-15"]


@st.composite
def _text(draw, max_words: int = 30) -> str:
    words = draw(st.lists(st.sampled_from(_WORDS + _VALUES), min_size=0, max_size=max_words))
    return " ".join(words)


@st.composite
def histories(draw, *, max_turns: int = 8, open_tail: bool | None = None) -> list[dict[str, Any]]:
    """System + user task + a random mix of plain assistant turns, tool-calling turns (1–3 parallel calls, each
    answered) and user messages. With open_tail (drawn when None) the history ends with an assistant turn whose
    results have not all arrived yet (a live history)."""
    msgs: list[dict[str, Any]] = [dict(SYSTEM), dict(TASK)]
    n = draw(st.integers(min_value=0, max_value=max_turns))
    call_no = 0

    def calls(k: int) -> list[dict[str, Any]]:
        nonlocal call_no
        out = []
        for _ in range(k):
            call_no += 1
            args = {"path": f"/data/invoices/{call_no}.json", "q": draw(_text(max_words=3))}
            out.append({"id": f"call_{call_no}", "type": "function",
                        "function": {"name": draw(st.sampled_from(["read_file", "search", "bash"])),
                                     "arguments": json.dumps(args, ensure_ascii=False)}})
        return out

    for _ in range(n):
        kind = draw(st.sampled_from(["plain", "tools", "tools", "user"]))
        if kind == "plain":
            msgs.append({"role": "assistant", "content": draw(_text())})
        elif kind == "user":
            msgs.append({"role": "user", "content": draw(_text())})
        else:
            cs = calls(draw(st.integers(min_value=1, max_value=3)))
            content = draw(st.one_of(st.none(), _text(max_words=5)))
            msgs.append({"role": "assistant", "content": content, "tool_calls": cs})
            for c in draw(st.permutations(cs)):  # parallel results may come back in any order
                repeat = draw(st.integers(min_value=1, max_value=40))
                msgs.append({"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"],
                             "content": draw(_text()) + (" lorem ipsum" * repeat)})
    if open_tail is None:
        open_tail = draw(st.booleans())
    if open_tail:
        cs = calls(draw(st.integers(min_value=1, max_value=3)))
        msgs.append({"role": "assistant", "content": None, "tool_calls": cs})
        answered = draw(st.integers(min_value=0, max_value=len(cs) - 1))
        for c in cs[:answered]:
            msgs.append({"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"],
                         "content": "partial result " + c["id"]})
    return msgs


def is_closed(messages: Sequence[Message | dict]) -> bool:
    """True when every tool call in `messages` has its result (the strict validator passes)."""
    try:
        validate_history(list(messages))
    except Exception:
        return False
    return True


def view_of(messages: Sequence[Message], counter: TokenCounter = COUNTER, view: View | None = None) -> View:
    """Append `messages` to `view` (a new one by default) the way the session does."""
    view = view if view is not None else View()
    for m in messages:
        view.append_message(m, counter.message(m))
    return view


def parsed(raw: Sequence[dict]) -> list[Message]:
    return parse_messages(raw)


def snapshot(view: View) -> tuple:
    """Everything observable about a view, for purity checks (items are frozen dataclasses)."""
    return (tuple(view.items), view.message_count, view.next_seq, view.tokens, view.system_id,
            json.dumps(view.render(), sort_keys=True, ensure_ascii=False))


def covered_ids(view: View) -> list[str]:
    """The original message ids the view accounts for, in view order (each exactly once when lossless)."""
    return [i for it in view.items for i in it.message_ids]


def bench_script(name: str) -> ModuleType:
    """bench/NAME.py loaded as a module (bench/ is scripts, not a package), under its own module name."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"agentmem_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paging_run(rounds: int = 40, name: str = "paging", offset: int = 0) -> dict[str, Any]:
    """A recorded run ({"id", "messages"}) of an agent that pages through records and, at the end, acts on records
    of the first pages: what it will use is nowhere in what it said before, so a memory keeps those values only by
    what it chose to keep of the pages. `offset` shifts which records it closes (a run of another difficulty)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Review the records, then close the flagged ones."}]
    for k in range(rounds):
        if k < rounds - 8:
            call = {"name": "read_page", "arguments": json.dumps({"page": k})}
        else:
            call = {"name": "close_record", "arguments": json.dumps({"record": f"rec_{(k + offset) % 6}_{k % 5}"})}
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{k}", **call}]})
        out = "ok" if k >= rounds - 8 else "\n".join(
            f"record rec_{k}_{i} owner user_{k}_{i} region zone_{(k * 7 + i) % 13}" for i in range(12))
        messages.append({"role": "tool", "tool_call_id": f"c{k}", "content": out})
    return {"id": name, "messages": messages}
