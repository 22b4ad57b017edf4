"""AgentMemory end to end with a recording fake client and a real SQLite file."""

from __future__ import annotations

import asyncio

from agentmem import AgentMemory, Store, validate_history
from agentmem.testing import ScriptedCompletion, ScriptedThinker, make_response, synthetic_history


def _turns(history):
    """Prefixes of the history at which the agent would call the model (after a user or the last tool result)."""
    for i in range(2, len(history) + 1):
        last = history[i - 1]
        nxt = history[i] if i < len(history) else None
        if last["role"] == "user" or (last["role"] == "tool" and (nxt is None or nxt["role"] != "tool")):
            yield history[:i]


def test_completion_sends_bounded_valid_view_and_returns_response_unchanged(tmp_path):
    history = synthetic_history(80, output_chars=800)
    replies = []

    def script(messages, tools):
        r = make_response(f"reply {len(replies)}")
        replies.append(r)
        return r

    client = ScriptedCompletion(script)
    store = Store(tmp_path / "mem.db")
    memory = AgentMemory(client, store=store, policy="budget", budget_tokens=6000)
    for prefix in _turns(history):
        # the agent's own history never contains our replies here: feed what the agent would have
        response = memory.session.prepare(prefix)
        assert response  # view non-empty
    raw = memory.session.raw_tokens
    assert raw > 3 * 6000
    assert memory.session.view.tokens <= 6000
    # a real completion call goes through the client with the managed view
    result = memory.completion(model="gpt-4o", messages=history + [{"role": "user", "content": "total?"}])
    assert result is replies[-1]
    sent = client.calls[-1]["messages"]
    validate_history(sent)
    assert sent[0]["role"] == "system" and sent[1]["content"].startswith("Reconcile")
    assert any(m["content"] and m["content"].startswith("[agentmem") for m in sent)
    # the reply was stored right after the history
    assert memory.session.message_count == len(history) + 2


def test_thinker_fold_and_async_share_one_plan(tmp_path):
    history = synthetic_history(40, output_chars=800)
    thinker = ScriptedThinker(["Read invoices 0-9; amounts in /data/invoices/0_0.json onward."])
    memory = AgentMemory(ScriptedCompletion(lambda m, t: make_response("ok")),
                         acompletion=None, store=Store(tmp_path / "a.db"), budget_tokens=4000, thinker=thinker)
    client = ScriptedCompletion(lambda m, t: make_response("ok"))

    async def acall(**kw):
        return client(**kw)

    memory._acompletion = acall
    asyncio.run(memory.acompletion(model="gpt-4o", messages=history + [{"role": "user", "content": "go on"}]))
    assert thinker.requests, "the thinker was never asked"
    kinds = [a["kind"] for a in memory.last_round["actions"]]
    assert "summarize" in kinds
    validate_history(client.calls[-1]["messages"])
