"""Helpers shared by the branch, concurrency and fault tests: a tool-calling agent loop and the tree invariants."""

from __future__ import annotations

import json
from typing import Any

from agentmem.messages import parse_message, validate_history
from agentmem.policies import NoOpPolicy
from agentmem.session import MemorySession
from agentmem.store import Store

SYSTEM = {"role": "system", "content": "You are an agent that reads invoices with tools."}
TASK = {"role": "user", "content": "Reconcile the invoices in /data/inv and report the total."}


def tool_reply(tag: str, k: int) -> dict[str, Any]:
    """An assistant turn calling read_file (ids unique per tag and round)."""
    cid = f"c-{tag}-{k}"
    return {"role": "assistant", "content": f"{tag}: reading invoice {k}", "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": "read_file",
                                                     "arguments": json.dumps({"path": f"/data/inv/{tag}-{k}.json"})}}]}


def tool_result(reply: dict[str, Any], chars: int = 400) -> dict[str, Any]:
    call = reply["tool_calls"][0]
    path = json.loads(call["function"]["arguments"])["path"]
    body = json.dumps({"path": path, "amount": f"{len(path) * 7.25:.2f}", "text": "lorem ipsum " * (chars // 12)})
    return {"role": "tool", "tool_call_id": call["id"], "content": body}


def budget_policy(budget: int = 1200, **config: Any) -> Any:
    from agentmem.policies import make_policy

    return make_policy("budget", budget_tokens=budget, keep_recent_rounds=2, **config)


def check_tree(store: Store, session_id: str) -> dict[str, int]:
    """Every branch rebuilds from its log into a valid view; every path keeps its ids unique and its chain intact.

    Returns counts (branches, messages checked) for the figures."""
    from agentmem.store import chain_next

    branches = store.branches(session_id)
    checked = 0
    for b in branches:
        state = store.load_branch(session_id, b.branch)
        assert [s.pos for s in state.messages] == list(range(1, len(state.messages) + 1)), b
        assert len(state.messages) == b.length
        chain = ""
        for s in state.messages:
            chain = chain_next(chain, s.message.fingerprint())
            assert s.chain == chain, f"branch {b.branch}: chain broken at {s.pos}"
        ids = [s.message.id for s in state.messages]
        assert len(set(ids)) == len(ids), f"branch {b.branch}: duplicate ids on one path"
        assert [e.seq for e in state.events] == list(range(1, len(state.events) + 1))
        r = MemorySession(store, session_id, policy=NoOpPolicy())
        r._load(b.branch)
        r.view.validate(allow_open_tail=True)
        validate_history([parse_message(s.message) for s in state.messages], allow_open_tail=True)
        checked += len(state.messages)
    return {"branches": len(branches), "messages_checked": checked}


def replayed_view(store: Store, session_id: str, branch: int) -> list[dict[str, Any]]:
    """The view of a branch rebuilt from the store alone (a fresh session object, as after a restart)."""
    r = MemorySession(store, session_id, policy=NoOpPolicy())
    r._load(branch)
    return r.view.render()
