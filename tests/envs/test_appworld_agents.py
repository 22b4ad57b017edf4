"""ScriptedAgent reads everything from its view (and recalls what is missing); LLMAgent drives the same tools."""

from __future__ import annotations

import json
import re

import pytest

from agentmem.envs.agents import LLMAgent
from agentmem.envs.appworld_lite import TOOLS
from agentmem.envs.appworld_lite.scripted import View
from agentmem.envs.runner import RECALL_TOOL, run_episode

_WITH_RECALL = [*TOOLS, RECALL_TOOL]  # what a memory with a recall tool offers the agent


def _call(resp):
    msg = resp["choices"][0]["message"]
    calls = msg.get("tool_calls") or []
    assert len(calls) == 1
    return calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"]), msg


def _transcript(env, tid, upto=None):
    task = env.load(tid)
    res = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0, max_rounds=upto or 400)
    return task, res.messages


def test_scripted_agent_is_stateless(env):
    """The same view gives the same next step, for the same or a fresh agent instance."""
    task, msgs = _transcript(env, "music_most_common_song-0", upto=40)
    a, b = task.scripted_agent(), env.load("music_most_common_song-0").scripted_agent()
    r1 = a(model="scripted", messages=msgs, tools=task.tools)
    r2 = a(model="scripted", messages=msgs, tools=task.tools)
    r3 = b(model="scripted", messages=msgs, tools=task.tools)
    assert _call(r1)[:2] == _call(r2)[:2] == _call(r3)[:2]
    # it picks up from a shorter prefix of the transcript just as well (no hidden progress)
    r4 = b(model="scripted", messages=msgs[:30], tools=task.tools)
    assert _call(r4)[1] == json.loads(msgs[30]["tool_calls"][0]["function"]["arguments"])


def _drop_tool_result(msgs, pred):
    """The view with the tool results matching `pred` replaced by an eviction stub."""
    out, dropped = [], []
    for m in msgs:
        if m["role"] == "tool" and pred(m["content"]):
            dropped.append(m)
            out.append({**m, "content": "[agentmem: evicted tool result, 420 tokens; recall_memory can read it]"})
        else:
            out.append(m)
    assert dropped
    return out, dropped


def test_scripted_agent_writes_one_line_thoughts_and_no_carried_state(env):
    """No notes, totals or credentials in its messages: one line each, re-derived from the view every turn."""
    task, msgs = _transcript(env, "music_most_common_song-0")
    own = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert own and all("\n" not in c and len(c) < 400 for c in own)
    assert not any(re.search(r"\b(NOTE|ACC|CRED) ", c) for c in own)
    # no value read from an observation is carried: no token, password or playlist/song id in its thoughts
    assert not any("at-music-" in c or "\"password\"" in c for c in own)


def test_scripted_agent_recalls_a_missing_value_by_the_call_it_made_then_uses_it(env):
    task, msgs = _transcript(env, "music_most_common_song-0")
    like_at = next(i for i, m in enumerate(msgs)
                   if m["role"] == "assistant" and "like_song" in str(m.get("tool_calls")))
    view = msgs[:like_at]
    agent = task.scripted_agent()
    expected = _call(agent(model="scripted", tools=_WITH_RECALL, messages=view))[1]
    assert expected["api"] == "like_song"
    # one playlist page gone from the view, and the notes the agent wrote of what each playlist held folded away
    # too: the tally cannot be re-derived, so the agent asks its memory - first for its own notes of that step,
    # then with the query a careful agent writes: the API it called and the ids it saw in its view
    lossy, dropped = _drop_tool_result(view, lambda c: '"api": "show_playlist_songs"' in c and
                                       '"args": {"page_index": 0, "playlist_id": 3}' in c)
    note = re.compile(r" FOUND s\d+\.[\d.]+ = \S+")
    assert any(note.search(m.get("content") or "") for m in lossy if m["role"] == "assistant")
    lossy = [{**m, "content": note.sub("", m["content"])} if m["role"] == "assistant" else m for m in lossy]
    name, args, msg = _call(agent(model="scripted", tools=_WITH_RECALL, messages=lossy))
    assert name == "recall_memory" and re.fullmatch(r'"FOUND s\d+\."', args["query"])

    def answered(view, call_msg, content):
        return view + [call_msg, {"role": "tool", "tool_call_id": call_msg["tool_calls"][0]["id"], "content": content}]

    lossy = answered(lossy, msg, "[agentmem: nothing in the archive matches query 'x']")
    name, args, msg = _call(agent(model="scripted", tools=_WITH_RECALL, messages=lossy))
    assert name == "recall_memory" and args == {"query": "show_playlist_songs playlist_id 3 page_index 0"}
    # a recall that brings it back (inside other text, with a paging note): the agent does the right thing
    answer = ("[agentmem: recalled archived messages for query 'x', exact matches first] (page 1 of 2)\n--- m-17 "
              "(tool)\n" + dropped[0]["content"] + "\n[agentmem: 3 more message(s) (700 tokens) on 1 more page(s): "
              "call recall_memory again with the same arguments and page=2]")
    name2, args2, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=answered(lossy, msg, answer)))
    assert (name2, args2) == ("call_api", expected)
    # the first page of the answer lacks it, but the answer says there is more: the agent pages on
    partial = answer.replace(dropped[0]["content"], "(something else)")
    name3, args3, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=answered(lossy, msg, partial)))
    assert name3 == "recall_memory" and args3 == {"query": "show_playlist_songs playlist_id 3 page_index 0", "page": 2}
    # a recall that finds nothing: no second recall for the same value, the agent acts on what it has
    name4, _, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=answered(lossy, msg, "[agentmem: nothing matches]")))
    assert name4 == "call_api"


def test_scripted_agent_recalls_only_when_it_is_offered_the_tool(env):
    task, msgs = _transcript(env, "music_most_common_song-0")
    like_at = next(i for i, m in enumerate(msgs)
                   if m["role"] == "assistant" and "like_song" in str(m.get("tool_calls")))
    note = re.compile(r" FOUND s\d+\.[\d.]+ = \S+")
    lossy, _ = _drop_tool_result(msgs[:like_at], lambda c: '"api": "show_playlist_songs"' in c and
                                 '"args": {"page_index": 0, "playlist_id": 3}' in c)
    lossy = [{**m, "content": note.sub("", m["content"])} if m["role"] == "assistant" else m for m in lossy]
    agent = task.scripted_agent()
    assert _call(agent(model="scripted", tools=_WITH_RECALL, messages=lossy))[0] == "recall_memory"
    assert _call(agent(model="scripted", tools=task.tools, messages=lossy))[0] == "call_api"


def test_scripted_agent_reads_a_token_from_fold_text_or_logs_in_again(env):
    task, msgs = _transcript(env, "todo_add_task-0", upto=3)  # profile, passwords, login
    agent = task.scripted_agent()
    token = _call(agent(model="scripted", tools=_WITH_RECALL, messages=msgs))[1]["arguments"]["access_token"]
    assert re.fullmatch(r"at-todo-[0-9a-f]{12}", token)
    login = msgs[6]
    assert "login" in login["tool_calls"][0]["function"]["arguments"]
    stub = {"role": "tool", "tool_call_id": login["tool_calls"][0]["id"], "content": "[agentmem: evicted tool result]"}
    fold = {"role": "user", "content": f"[agentmem: fold block blk-1 covers 4 earlier messages] values: {token}, 42"}
    # everything but the last call is folded; the token survives only in the block's extractive text
    name, args, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=msgs[:2] + [fold, login, stub]))
    assert name == "call_api" and args["api"] == "create_task" and args["arguments"]["access_token"] == token
    # without the block the token is gone: the agent logs in again, with the password it still sees
    name, args, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=msgs[:6] + [login, stub]))
    assert name == "call_api" and args["api"] == "login"
    assert View(msgs).tokens == [("todo", token)]


class _NewestRoundOnly:
    """The 'memory' of the issue: system message, task and the newest assistant turn with its results."""

    def __init__(self, agent):
        self.agent, self.last_round = agent, {}

    def completion(self, *, model, messages, tools=None, **kw):
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        view = messages[:2] + messages[last:]
        self.last_round = {"raw_tokens": len(json.dumps(messages)) // 4, "view_tokens": len(json.dumps(view)) // 4}
        return self.agent(model=model, messages=view, tools=tools)

    def execute_recall(self, arguments):
        return "[agentmem: nothing in the archive matches]"


def test_hard_tasks_discriminate_memories(env):
    """Newest-rounds-only memory fails most hard tasks; no management at all solves every one."""
    hard = [t for t in env.task_ids("hard") if t.endswith("-0")]
    newest_ok, noop_ok = 0, 0
    for tid in hard:
        task = env.load(tid)
        noop_ok += run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0).summary["success"]
        task = env.load(tid)
        agent = task.scripted_agent()
        res = run_episode(task, agent, _NewestRoundOnly(agent), count_tokens=lambda m: 0, max_rounds=300)
        newest_ok += res.summary["success"]
    assert noop_ok == len(hard)
    assert newest_ok <= len(hard) // 4, f"newest-rounds-only memory solved {newest_ok} of {len(hard)} hard tasks"


def test_a_task_done_on_partial_data_reports_the_look_ups_it_went_on_without(env):
    """When recall does not bring a value back, the ScriptedAgent goes on with a default; the run's summary names
    those look-ups (lookups_given_up), so a task completed on partial data says so instead of failing silently."""
    tid = "music_playlist_minutes-0"
    task = env.load(tid)
    full = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0).summary
    assert full["success"] and full["lookups_given_up"] == []
    task = env.load(tid)
    agent = task.scripted_agent()
    lossy = run_episode(task, agent, _NewestRoundOnly(agent), count_tokens=lambda m: 0, max_rounds=300).summary
    assert not lossy["success"]
    assert lossy["lookups_given_up"] and all(isinstance(q, str) and q for q in lossy["lookups_given_up"])
    assert len(set(lossy["lookups_given_up"])) == len(lossy["lookups_given_up"])  # each look-up once


def test_expiring_passwords_task_discriminates(env):
    """music_playlist_genres_note (passwords expire with each token): no management solves every seed, the
    newest-rounds-only memory none - its note needs what was found in every playlist, 80 rounds back."""
    for seed in range(3):
        task = env.load(f"music_playlist_genres_note-{seed}")
        assert run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0).summary["success"]
        task = env.load(f"music_playlist_genres_note-{seed}")
        agent = task.scripted_agent()
        res = run_episode(task, agent, _NewestRoundOnly(agent), count_tokens=lambda m: 0, max_rounds=300)
        assert not res.summary["success"]


class _RecordingCompletion:
    """A local fake litellm.completion: answers with a scripted list of tool calls, records every call."""

    def __init__(self, steps):
        self.steps, self.calls = list(steps), []

    def __call__(self, **kw):
        self.calls.append(kw)
        step = self.steps.pop(0) if self.steps else None
        msg = {"role": "assistant", "content": None if step else "I am done."}
        if step:
            name, args = step
            msg["tool_calls"] = [{"id": f"c{len(self.calls)}", "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}]
        return {"choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if step else "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def test_llm_agent_with_a_recording_fake_completion(env):
    task = env.load("todo_add_task-0")
    p = task.params
    fake = _RecordingCompletion([
        ("show_api_doc", {"app_name": "todo", "api_name": "create_task"}),
        ("call_api", {"app": "supervisor", "api": "show_profile", "arguments": {}}),
        ("call_api", {"app": "supervisor", "api": "show_account_passwords", "arguments": {}}),
    ])
    agent = LLMAgent("openai/gpt-4o-mini", completion=fake)
    res = run_episode(task, agent, model="openai/gpt-4o-mini", max_rounds=6, count_tokens=lambda m: 0)
    first = fake.calls[0]
    assert first["model"] == "openai/gpt-4o-mini" and first["temperature"] == 0.0
    assert [t["function"]["name"] for t in first["tools"]][:1] == ["call_api"]
    assert first["messages"][0]["role"] == "system"
    assert len(fake.calls[1]["messages"]) == len(first["messages"]) + 2  # assistant + tool result appended
    doc = json.loads(fake.calls[1]["messages"][-1]["content"])
    assert doc["status"] == "ok" and doc["response"]["api_name"] == "create_task"
    # no tool call -> nudged a few times, then the episode stops; nothing was done, so it fails
    assert res.summary["rounds"] <= 6 and not res.summary["success"]
    assert not task.done and p["title"]


def test_llm_agent_solves_a_task_when_the_model_does(env):
    """A fake model that reads values from the messages it gets, like a real one would."""
    task = env.load("todo_add_task-1")
    p = task.params

    def model(**kw):
        msgs = kw["messages"]
        seen = "\n".join(str(m.get("content")) for m in msgs if m["role"] == "tool")  # observations only
        if '"api": "show_account_passwords"' not in seen:
            step = ("call_api", {"app": "supervisor", "api": "show_account_passwords", "arguments": {}})
        elif '"api": "show_profile"' not in seen:
            step = ("call_api", {"app": "supervisor", "api": "show_profile", "arguments": {}})
        elif "at-todo-" not in seen:
            pw = re.search(r'"account_name": "todo", "password": "([^"]+)"', seen).group(1)
            email = re.search(r'"email": "([^"]+)"', seen).group(1)
            step = ("call_api", {"app": "todo", "api": "login", "arguments": {"username": email, "password": pw}})
        elif '"api": "create_task"' not in seen:
            tok = re.search(r"at-todo-[0-9a-f]{12}", seen).group(0)
            step = ("call_api", {"app": "todo", "api": "create_task", "arguments": {
                "access_token": tok, "title": p["title"], "due_date": p["due"], "priority": p["priority"]}})
        else:
            step = ("call_api", {"app": "supervisor", "api": "complete_task", "arguments": {}})
        return _RecordingCompletion([step])(**kw)

    res = run_episode(task, LLMAgent("ollama_chat/llama3.1", completion=model), model="ollama_chat/llama3.1",
                      count_tokens=lambda m: 0)
    assert res.summary["success"] and res.summary["rounds"] == 5


@pytest.mark.slow  # importing litellm takes seconds
def test_llm_agent_through_litellm_mock_response(env):
    """The default path through litellm.completion (mock_response: no network)."""
    task = env.load("todo_add_task-2")
    agent = LLMAgent("gpt-4o-mini", mock_response="I cannot help with that.")
    resp = agent(model="gpt-4o-mini", messages=task.initial_messages(), tools=task.tools)
    assert resp["choices"][0]["message"]["content"] == "I cannot help with that."
    res = run_episode(task, agent, model="gpt-4o-mini", max_rounds=10, count_tokens=lambda m: 0)
    assert res.records[-1].get("stopped") == "no tool call" and not res.summary["success"]


def test_llm_agent_drives_recall_through_agentmemory(env, tmp_path):
    """An LLM agent behind AgentMemory gets the recall tool (with paging documented) and its answers from the
    archive: after the passwords were folded away under a small budget, it asks for them and logs in with them."""
    from agentmem import AgentMemory

    task = env.load("todo_add_task-0")
    seen_tools = []

    def model(**kw):
        seen_tools.append([t["function"]["name"] for t in kw.get("tools") or []])
        msgs = kw["messages"]
        tool_text = "\n".join(str(m.get("content")) for m in msgs if m["role"] == "tool")
        n = len(seen_tools) - 1  # the fake counts its own calls (a real model would reason from its view)
        if n == 0:
            step = ("call_api", {"app": "supervisor", "api": "show_account_passwords", "arguments": {}})
        elif n < 6:  # outputs that push the passwords out of a 1,500-token view
            step = ("show_api_doc", {"app_name": "todo", "api_name": "create_task"})
        elif '"account_name": "todo"' not in tool_text:
            step = ("recall_memory", {"query": "show_account_passwords"})
        else:
            pw = re.search(r'"account_name": "todo", "password": "([^"]+)"', tool_text).group(1)
            step = ("call_api", {"app": "todo", "api": "login", "arguments": {"username": "x", "password": pw}})
        return _RecordingCompletion([step])(**kw)

    agent = LLMAgent("hosted_vllm/any", completion=model)
    mem = AgentMemory(completion=agent, policy="window", budget_tokens=1500, recall_tool=True,
                      store=tmp_path / "a.db")
    res = run_episode(task, agent, mem, model="hosted_vllm/any", max_rounds=12)
    assert "recall_memory" in seen_tools[0]
    calls = [json.loads(c["function"]["arguments"]) for m in res.messages if m["role"] == "assistant"
             for c in m.get("tool_calls") or []]
    assert {"query": "show_account_passwords"} in calls
    login = next(c for c in calls if c.get("api") == "login")
    answer = next(m["content"] for m in res.messages if m["role"] == "tool" and "recalled" in str(m["content"]))
    assert login["arguments"]["password"] in answer and res.summary["recalls"] >= 1


def test_scripted_agent_asks_for_a_stages_notes_again_from_a_later_stage(env):
    """Notes of a stage recalled while that stage ran (fewer were written then) are asked for again, once, when a
    later stage needs them; a second miss in the same stage goes to the call itself."""
    from agentmem.envs.appworld_lite.scripted import MARK, _short

    task, msgs = _transcript(env, "music_most_common_song-0")
    like_at = next(i for i, m in enumerate(msgs)
                   if m["role"] == "assistant" and "like_song" in str(m.get("tool_calls")))
    lossy, _ = _drop_tool_result(msgs[:like_at], lambda c: '"api": "show_playlist_songs"' in c and
                                 '"args": {"page_index": 0, "playlist_id": 3}' in c)
    note = re.compile(r" FOUND s\d+\.[\d.]+ = \S+")
    lossy = [{**m, "content": note.sub("", m["content"])} if m["role"] == "assistant" else m for m in lossy]
    agent = task.scripted_agent()
    name, args, _ = _call(agent(model="scripted", tools=_WITH_RECALL, messages=lossy))
    assert name == "recall_memory"
    stage = re.fullmatch(r'"FOUND (s\d+)\."', args["query"]).group(1)
    last = max(i for i, m in enumerate(lossy) if m["role"] == "assistant")
    state = json.loads(lossy[last]["content"][len(MARK):].split(" ", 1)[0])
    assert int(state["k"]) > int(stage[1:])  # a later stage needs them

    def with_tried(key):
        st = {**state, "t": [_short(key)]}
        content = MARK + json.dumps(st, separators=(",", ":")) + " " + lossy[last]["content"].split(" ", 2)[2]
        return lossy[:last] + [{**lossy[last], "content": content}] + lossy[last + 1:]

    # recalled while the stage itself ran: asked again now
    name, args2, _ = _call(agent(model="scripted", tools=_WITH_RECALL,
                                 messages=with_tried(f"found:{stage}@{stage[1:]}")))
    assert (name, args2) == ("recall_memory", args)
    # recalled already from this stage: the call itself next
    name, args3, _ = _call(agent(model="scripted", tools=_WITH_RECALL,
                                 messages=with_tried(f"found:{stage}@{state['k']}")))
    assert name == "recall_memory" and args3 == {"query": "show_playlist_songs playlist_id 3 page_index 0"}


def test_many_far_facts_needed_together_decide_the_memory(env, tmp_path):
    """`phone_texts_summary_note` needs every page's count (72 one-line notes, ~3,000 tokens as recall answers)
    in one view at the end. No management solves it; a window with exact recall over the lossless store reads
    the notes back page by page: at 6,000 tokens it holds them all at once and solves it, at 4,000 it cannot,
    tries the calls one by one, and gives up within its bounded tries - the task fails for what the memory can
    hold at once, not for a missing look-up."""
    from agentmem import AgentMemory

    tid = "phone_texts_summary_note-0"
    task = env.load(tid)
    assert run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0).summary["success"]
    outcome = {}
    for budget in (6000, 4000):
        task = env.load(tid)
        agent = task.scripted_agent()
        mem = AgentMemory(completion=agent, policy="window", budget_tokens=budget, recall_tool=True,
                          store=tmp_path / f"w{budget}.db")
        res = run_episode(task, agent, mem, max_rounds=300, keep_messages=True)
        asked = [json.loads(c["function"]["arguments"])["query"] for m in res.messages if m["role"] == "assistant"
                 for c in m.get("tool_calls") or [] if c["function"]["name"] == "recall_memory"]
        assert '"FOUND s5."' in asked  # it asked for its own notes of the counting stage, and paged them
        outcome[budget] = (res.summary["success"], asked)
    assert outcome[6000][0] and not outcome[4000][0]
    assert any(q.startswith("show_text_messages") for q in outcome[4000][1])  # then for the pages themselves


def test_a_tool_call_written_as_text_is_recognised_only_for_known_tools():
    """LlamaCppChat(text_calls=True) accepts the JSON object a small model writes instead of its template's tags,
    and only when it names one of the offered tools with dict arguments (the shipped model's real replies)."""
    from agentmem.envs.llamacpp_chat import call_in_text

    fenced = ('```json\n{\n  "name": "call_api",\n  "arguments": {\n    "app": "notes",\n    "api": "show_notes",\n'
              '    "arguments": {}\n  }\n}\n```')
    call = call_in_text(fenced, _WITH_RECALL)
    assert call["name"] == "call_api" and json.loads(call["arguments"]) == {"app": "notes", "api": "show_notes",
                                                                            "arguments": {}}
    assert call_in_text('```json\n{"name": "todo", "arguments": {"task": "x"}}\n```', _WITH_RECALL) is None
    assert call_in_text('I will call {"name": "recall_memory", "arguments": {"query": "passwords"}} now',
                        _WITH_RECALL)["name"] == "recall_memory"
    assert call_in_text("To continue, I need to filter the emails.", _WITH_RECALL) is None
    assert call_in_text('{"name": "call_api", "arguments": "app=notes"}', _WITH_RECALL) is None
