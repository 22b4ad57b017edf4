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


# --- the middleware contract -------------------------------------------------------------------------------------
import json  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from agentmem import RECALL_TOOL_NAME, recall_tool_schema  # noqa: E402
from agentmem.messages import InvalidMessageError, parse_message  # noqa: E402

TOOLS = [{"type": "function", "function": {
    "name": "read_file", "description": "read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]


def _rows(store, sid):
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT seq, payload, sha256 FROM agentmem_messages WHERE session_id = :s ORDER BY seq"), {"s": sid})]


def _agent_loop(memory, client_turns, history, tool_output):
    """Run a real agent loop: call the model, append its reply, execute its tool calls, repeat."""
    for _ in range(client_turns):
        response = memory.completion(model="gpt-4o", messages=history, tools=TOOLS)
        msg = response["choices"][0]["message"]
        history.append(msg)
        for tc in msg.get("tool_calls") or []:
            history.append({"role": "tool", "tool_call_id": tc["id"], "content": tool_output(tc)})
    return history


def test_response_identity_tools_and_kwargs_pass_through(tmp_path):
    replies = [make_response("first"), make_response(None, [("c1", "read_file", {"path": "/a"})])]
    client = ScriptedCompletion(replies)
    memory = AgentMemory(client, store=tmp_path / "m.db", policy="noop")
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    tools = [dict(t) for t in TOOLS]
    r1 = memory.completion(model="gpt-4o", messages=history, tools=tools, temperature=0.3, max_tokens=50)
    assert r1 is replies[0]
    call = client.calls[0]
    assert call["model"] == "gpt-4o" and call["tools"] == TOOLS and call["temperature"] == 0.3
    assert call["max_tokens"] == 50 and call["messages"] == history
    assert tools == TOOLS  # the caller's list is not modified
    history.append(r1["choices"][0]["message"])
    history.append({"role": "user", "content": "go on"})
    r2 = memory.completion(model="gpt-4o", messages=history)
    assert r2 is replies[1] and client.calls[1]["tools"] is None
    stored = memory.store.load_messages(memory.session_id)
    assert [s.message.role for s in stored] == ["system", "user", "assistant", "user", "assistant"]
    assert stored[-1].message.tool_calls[0].name == "read_file"


def test_recall_tool_is_added_once(tmp_path):
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=tmp_path / "m.db", policy="noop", recall_tool=True)
    history = [{"role": "user", "content": "task"}]
    memory.completion(model="gpt-4o", messages=history, tools=TOOLS)
    names = [t["function"]["name"] for t in client.calls[-1]["tools"]]
    assert names == ["read_file", RECALL_TOOL_NAME]
    assert client.calls[-1]["tools"][-1] == recall_tool_schema() == memory.recall_tool_schema
    history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "again"}]
    memory.completion(model="gpt-4o", messages=history, tools=client.calls[-1]["tools"])  # already there
    assert [t["function"]["name"] for t in client.calls[-1]["tools"]].count(RECALL_TOOL_NAME) == 1
    history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "no tools"}]
    memory.completion(model="gpt-4o", messages=history)
    assert [t["function"]["name"] for t in client.calls[-1]["tools"]] == [RECALL_TOOL_NAME]
    assert TOOLS[0]["function"]["name"] == "read_file" and len(TOOLS) == 1


def test_folded_value_comes_back_through_the_recall_tool(tmp_path):
    secret = "purple elephant"  # prose, not identifier-like: the extractive fold does not keep it
    turn = {"n": 0}

    def script(messages, tools):
        turn["n"] += 1
        if turn["n"] <= 30:
            return make_response(f"step {turn['n']}", [(f"c{turn['n']}", "read_file", {"path": f"/f{turn['n']}"})])
        return make_response(None, [("r1", RECALL_TOOL_NAME, {"query": "secret phrase"}),
                                    ("r2", "read_file", {"path": "/x"})])

    client = ScriptedCompletion(script)
    memory = AgentMemory(client, store=tmp_path / "m.db", budget_tokens=3000, recall_tool=True)
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Find the secret token."}]

    def output(tc):
        n = int(tc["id"][1:])
        return "filler text " * 80 + (f"\nthe secret phrase is {secret}" if n == 1 else "")

    _agent_loop(memory, 30, history, output)
    sent = client.calls[-1]["messages"]
    assert not any(secret in (m.get("content") or "") for m in sent), "the value should have been folded away"
    response = memory.completion(model="gpt-4o", messages=history, tools=TOOLS)
    answers = memory.answer_recall_calls(response)
    assert len(answers) == 1  # read_file is left to the agent
    assert answers[0]["role"] == "tool" and answers[0]["tool_call_id"] == "r1"
    assert answers[0]["name"] == RECALL_TOOL_NAME and secret in answers[0]["content"]
    by_message = memory.answer_recall_calls(response["choices"][0]["message"])
    assert by_message == answers
    blk = next(m["content"] for m in sent if (m.get("content") or "").startswith("[agentmem: fold block"))
    key = blk.split("block ", 1)[1].split(" ", 1)[0]
    assert secret in memory.execute_recall({"ids": [key]})


@pytest.mark.parametrize(("args", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "takes an object"),
    ({"ids": [1, 2]}, "'ids' must be a list of strings"),
    ({"ids": {"a": 1}}, "'ids' must be a list of strings"),
    ({"query": 42}, "'query' must be a string"),
    ({}, "needs 'ids' or a 'query'"),
    ("", "needs 'ids' or a 'query'"),
])
def test_bad_recall_arguments_get_a_clear_message(tmp_path, args, message):
    memory = AgentMemory(ScriptedCompletion([]), store=tmp_path / "m.db", policy="noop")
    out = memory.execute_recall(args)
    assert out.startswith("[agentmem: recall_memory") and message in out, out


def test_recall_by_single_id_string_and_unknown_ids(tmp_path):
    memory = AgentMemory(ScriptedCompletion(lambda m, t: make_response("ok")), store=tmp_path / "m.db",
                         policy="noop")
    memory.completion(model="gpt-4o", messages=[{"role": "user", "content": "value HAT136 here"}])
    mid = memory.store.load_messages(memory.session_id)[0].message.id
    assert "HAT136" in memory.execute_recall({"ids": mid})
    assert "nothing in the archive" in memory.execute_recall({"ids": ["nope"]})
    # the message is still in the view in full, so a query skips it: recall brings back what was lost
    assert memory.execute_recall('{"query": "HAT136"}') == "[agentmem: nothing in the archive matches query 'HAT136']"


def test_bad_history_through_agent_memory_changes_nothing(tmp_path):
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=tmp_path / "m.db", policy="noop")
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    memory.completion(model="gpt-4o", messages=history)
    history.append({"role": "assistant", "content": "ok"})
    before = _rows(memory.store, memory.session_id)
    bad_tails = [
        [{"role": "wizard", "content": "x"}],
        [{"role": "tool", "tool_call_id": "ghost", "content": "x"}],
        [{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "name": "f", "arguments": "nope"}]}],
        [{"role": "user", "content": 12}],
    ]
    for tail in bad_tails:
        with pytest.raises(InvalidMessageError, match="index 3"):
            memory.completion(model="gpt-4o", messages=history + tail)
    assert _rows(memory.store, memory.session_id) == before
    assert len(client.calls) == 1  # the model was never called with a bad history
    # an edited history is not bad input: it continues on a branch, and nothing stored changes
    memory.completion(model="gpt-4o", messages=history[:2] + [{"role": "assistant", "content": "edited"},
                                                              {"role": "user", "content": "again"}])
    assert memory.session.branch == 1 and len(client.calls) == 2
    assert _rows(memory.store, memory.session_id)[0][:len(before[0])] == before[0]


def test_async_acompletion_path(tmp_path):
    client = ScriptedCompletion(lambda m, t: make_response("async ok"))
    memory = AgentMemory(client, acompletion=client.acall, store=tmp_path / "m.db", budget_tokens=3000,
                         recall_tool=True)
    history = synthetic_history(30, output_chars=600)
    response = asyncio.run(memory.acompletion(model="gpt-4o", messages=history, tools=TOOLS))
    assert response["choices"][0]["message"]["content"] == "async ok"
    sent = client.calls[-1]["messages"]
    validate_history(sent)
    assert memory.session.view.tokens <= 3000 and memory.last_round["actions"]
    assert [t["function"]["name"] for t in client.calls[-1]["tools"]] == ["read_file", RECALL_TOOL_NAME]
    assert memory.store.load_messages(memory.session_id)[-1].message.content == "async ok"


def test_budget_respected_every_round_of_an_agent_loop(tmp_path):
    n = {"i": 0}

    def script(messages, tools):
        n["i"] += 1
        calls = [(f"c{n['i']}_{k}", "read_file", {"path": f"/data/{n['i']}_{k}.json"}) for k in range(1 + n["i"] % 3)]
        return make_response(f"step {n['i']}", calls)

    client = ScriptedCompletion(script)
    memory = AgentMemory(client, store=tmp_path / "m.db", budget_tokens=4000)
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Reconcile all invoices."}]
    for _ in range(60):
        _agent_loop(memory, 1, history, lambda tc: json.dumps({"id": tc["id"], "notes": "lorem ipsum " * 60}))
        sent = client.calls[-1]["messages"]
        validate_history(sent)
        assert memory.session.counter.messages(sent) <= 4000
        assert sent[0]["content"] == "sys" and sent[1]["content"] == "Reconcile all invoices."
    assert memory.session.raw_tokens > 4 * 4000
    memory.session.ingest(history)  # the last tool results
    stored = memory.store.load_messages(memory.session_id)
    assert [s.message.fingerprint() for s in stored] == [parse_message(m).fingerprint() for m in history]


def test_shared_trajectory_replayed_through_agent_memory(shared_data, tmp_path):
    line = (shared_data / "swe_deepseek_public.jsonl").read_text().splitlines()[0]
    traj = json.loads(line)["messages"]
    budget = 12000
    client = ScriptedCompletion([{"choices": [{"message": m}]} for m in traj if m["role"] == "assistant"])
    memory = AgentMemory(client, store=tmp_path / "traj.db", budget_tokens=budget, model="deepseek-chat")
    rounds = 0
    for i, m in enumerate(traj):
        if m["role"] != "assistant":
            continue
        memory.completion(model="deepseek-chat", messages=traj[:i])
        sent = client.calls[-1]["messages"]
        validate_history(sent)
        assert memory.session.counter.messages(sent) <= budget, (i, memory.session.counter.messages(sent))
        rounds += 1
    assert rounds > 80 and memory.session.raw_tokens > 2 * budget
    stored = memory.store.load_messages(memory.session_id)
    assert len(stored) == max(i for i, m in enumerate(traj) if m["role"] == "assistant") + 1
    for s, raw in zip(stored, traj, strict=False):  # lossless: every message comes back as the agent sent it
        assert s.message.fingerprint() == parse_message(raw).fingerprint()


def test_default_litellm_client_with_its_offline_mock_and_message_objects(tmp_path):
    """litellm.completion's own mock: real ModelResponse objects, and the agent appends litellm Message objects."""
    memory = AgentMemory(store=tmp_path / "ll.db", policy="budget", budget_tokens=2000)
    history = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    for i in range(4):
        response = memory.completion(model="gpt-4o", messages=history, mock_response=f"turn {i}", mock_tool_calls=[
            {"id": f"c{i}", "type": "function", "function": {"name": "read_file", "arguments": '{"path":"/a"}'}}])
        msg = response.choices[0].message
        assert type(response).__name__ == "ModelResponse" and msg.content == f"turn {i}"
        history.append(msg)  # a litellm Message object, not a dict
        history.append({"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": f"out {i}"})
    memory.session.ingest(history)
    stored = memory.store.load_messages(memory.session_id)
    assert len(stored) == len(history) == 10
    assert [s.message.role for s in stored[2:4]] == ["assistant", "tool"]
    assert stored[2].message.tool_calls[0].arguments == '{"path":"/a"}' and stored[2].message.content == "turn 0"


def test_messages_as_users_send_them(tmp_path):
    """developer role, provider keys, content parts, an empty history, a malformed reply (issue 11, item 4)."""
    from agentmem.messages import EmptyHistoryError

    bad_reply = {"id": "r", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "tool_calls",
                 "message": {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"path": "/a'}}]}}]}
    client = ScriptedCompletion([bad_reply])
    memory = AgentMemory(client, store=tmp_path / "m.db", policy="noop")
    with pytest.raises(EmptyHistoryError):
        memory.completion(model="gpt-4o", messages=[])
    assert client.calls == [] and memory.store.message_count(memory.session_id) == 0
    parts = [{"type": "text", "text": "long shared context", "cache_control": {"type": "ephemeral"}},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    history = [{"role": "developer", "content": "Answer in French."},
               {"role": "user", "content": parts, "cache_control": {"type": "ephemeral"}}]
    response = memory.completion(model="gpt-4o", messages=history)
    assert response is bad_reply  # returned as the provider sent it; nothing raised after the model was paid
    sent = client.calls[0]["messages"]
    assert sent == history  # developer role, the message-level key and both parts reach the model unchanged
    stored = [s.message for s in memory.store.load_messages(memory.session_id)]  # loads again after storing
    assert stored[0].role == "developer" and stored[1].provider_keys == {"cache_control": {"type": "ephemeral"}}
    assert stored[2].tool_calls[0].arguments == '{"path": "/a' and stored[2].malformed_arguments == ("c1",)
    # the agent passes the reply back as a plain dict: the next round's validator names the problem
    with pytest.raises(InvalidMessageError, match=r"index 2.*c1.*not valid JSON"):
        memory.completion(model="gpt-4o", messages=history + [bad_reply["choices"][0]["message"],
                                                              {"role": "tool", "tool_call_id": "c1", "content": "?"}])
    assert memory.last_round["tokenizer"] == "o200k_base"  # the first call's model names the tokenizer


def test_a_leading_developer_message_stays_first_through_folds(tmp_path):
    client = ScriptedCompletion(lambda m, t: make_response("ok"))
    memory = AgentMemory(client, store=tmp_path / "m.db", budget_tokens=3000)
    history = synthetic_history(40, output_chars=600)
    history[0] = {"role": "developer", "content": "You are an agent that uses tools."}
    memory.completion(model="gpt-4o", messages=history)
    sent = client.calls[-1]["messages"]
    assert memory.last_round["actions"] and sent[0] == history[0] and sent[1] == history[1]
    assert any("fold block" in str(m["content"]) for m in sent[2:])
