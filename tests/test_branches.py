"""Sessions are trees, on SQLite and PostgreSQL: retry, crash-resume, edits, concurrent calls in one process.

Each test runs against a real SQLite file and the PostgreSQL server the test command starts (any_store)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentmem import AgentMemory
from agentmem.actions import FoldAction
from agentmem.messages import HistoryError
from agentmem.policies import NoOpPolicy
from agentmem.session import BranchPoint, MemorySession, SessionBusyError
from agentmem.testing import ScriptedCompletion, ScriptedThinker, make_response
from agentmem.view import BlockItem
from branching import SYSTEM, TASK, budget_policy, check_tree, replayed_view, tool_reply, tool_result
from test_session import ScriptedPolicy


def _run_rounds(memory, history, tag, rounds, start=0):
    """An agent loop: call, append the reply, run its tool call."""
    for k in range(start, start + rounds):
        response = memory.completion(model="m", messages=history)
        reply = response["choices"][0]["message"]
        history.append(reply)
        history.append(tool_result(reply))
    return history


def _tool_model(tag):
    counter = {"n": 0}

    def script(messages, tools):
        counter["n"] += 1
        r = tool_reply(tag, counter["n"])
        return make_response(r["content"], [(r["tool_calls"][0]["id"], "read_file", {"path": f"/data/inv/{tag}-"
                                                                                           f"{counter['n']}.json"})])
    return ScriptedCompletion(script)


def test_retry_is_a_fork_from_before_the_old_reply(any_store, session_id):
    client = _tool_model("a")
    memory = AgentMemory(client, store=any_store, session_id=session_id, policy=budget_policy())
    history = _run_rounds(memory, [SYSTEM, TASK], "a", 12)
    assert any(e.kind == "fold" for e in any_store.load_events(session_id)), "the budget never folded"
    first = memory.completion(model="m", messages=history)  # a bad answer: the agent asks again
    second = memory.completion(model="m", messages=history)
    assert client.calls[-1]["messages"] == client.calls[-2]["messages"]  # same history -> same view
    assert memory.session.branch == 1 and memory.last_round["forks"][0]["fork_at"] == len(history)
    for branch, response in ((0, first), (1, second)):
        stored = any_store.load_messages(session_id, branch=branch)
        assert len(stored) == len(history) + 1
        assert stored[-1].message.content == response["choices"][0]["message"]["content"]
    # the agent keeps the first answer after all: the session continues on branch 0, nothing forks again
    reply = first["choices"][0]["message"]
    history += [reply, tool_result(reply)]
    memory.completion(model="m", messages=history)
    assert memory.session.branch == 0 and len(any_store.branches(session_id)) == 2
    assert memory.last_round["forks"][0].get("switched")
    figures = check_tree(any_store, session_id)
    assert figures["branches"] == 2


def test_crash_between_reply_and_save_resumes_with_memory(any_store, session_id):
    """The store has the reply, the agent's saved history does not (SIGKILL in between): a new process sends a
    history one reply behind, and continues from there with every memory event that covered it."""
    client = _tool_model("c")
    memory = AgentMemory(client, store=any_store, session_id=session_id, policy=budget_policy())
    history = _run_rounds(memory, [SYSTEM, TASK], "c", 14)
    memory.completion(model="m", messages=history)  # stored, then the agent dies before saving its history
    seen_before_crash = client.calls[-1]["messages"]
    events_before = any_store.load_events(session_id)
    restarted = AgentMemory(client, store=type(any_store)(any_store.url), session_id=session_id,
                            policy=budget_policy())
    assert restarted.session.message_count == len(history) + 1  # it resumes the stored branch...
    restarted.completion(model="m", messages=history)  # ...and the agent re-sends what it had saved
    assert client.calls[-1]["messages"] == seen_before_crash  # the folds that covered this history still apply
    inherited = [e for e in any_store.load_events(session_id, branch=1) if e.kind != "fork"]
    assert inherited == [e for e in events_before if e.after_message <= len(history)]
    assert restarted.session.branch == 1
    check_tree(any_store, session_id)
    restarted.store.close()


def test_events_past_the_fork_point_do_not_apply_on_the_new_branch(any_store, session_id):
    policy = ScriptedPolicy()
    s = MemorySession(any_store, session_id, policy=policy)
    history = [SYSTEM, TASK]
    for k in range(4):
        r = tool_reply("e", k)
        history += [r, tool_result(r)]
    s.prepare(history[:4])
    policy.rounds = [[FoldAction(span=tuple(s.view.keys()[2:4]))]]  # folds round 0, applied after message 6
    s.prepare(history[:6])
    policy.rounds = [[FoldAction(span=tuple(s.view.keys()[3:5]))]]  # folds round 1, applied after message 8
    s.prepare(history[:8])
    s.prepare(history)
    assert [e.kind for e in any_store.load_events(session_id)] == ["fold", "fold"]
    edited = history[:7] + [{**history[7], "content": "a redacted result"}]
    view = s.prepare(edited)
    blocks = [it for it in s.view.items if isinstance(it, BlockItem)]
    assert len(blocks) == 1 and blocks[0].covers == tuple(m.id for m, _ in s._path[2:4])  # only the first fold
    assert view[-1]["content"] == "a redacted result"
    assert view == replayed_view(any_store, session_id, s.branch)
    assert replayed_view(any_store, session_id, 0)[-1]["content"] == history[-1]["content"]


def test_prefix_of_the_stored_history_with_an_open_call_is_rejected_before_any_write(any_store, session_id):
    s = MemorySession(any_store, session_id, policy=NoOpPolicy())
    r = tool_reply("o", 0)
    s.prepare([SYSTEM, TASK, r, tool_result(r)])
    with pytest.raises(HistoryError, match="have no result at the end"):
        s.prepare([SYSTEM, TASK, r])
    assert len(any_store.branches(session_id)) == 1 and s.branch == 0


def test_two_coroutines_on_one_session_fork_instead_of_failing(any_store, session_id):
    async def slow_model(model=None, messages=(), tools=None, **kw):
        await asyncio.sleep(0.05)
        return make_response(f"sample {len(messages)}-{time.perf_counter_ns()}")

    memory = AgentMemory(acompletion=slow_model, store=any_store, session_id=session_id, policy="noop")
    history = [SYSTEM, TASK]

    async def fan_out(n):
        return await asyncio.gather(*(memory.acompletion(model="m", messages=history) for _ in range(n)))

    responses = asyncio.run(fan_out(6))
    contents = {r["choices"][0]["message"]["content"] for r in responses}
    assert len(contents) == 6
    stored = {s.message.content for s in any_store.archive(session_id) if s.message.role == "assistant"}
    assert stored == contents  # every sample kept, each right after the history it answers
    branches = any_store.branches(session_id)
    assert len(branches) == 6 and all(b.length == 3 for b in branches)
    # the agent continues with one of them, then the next call on this session works
    chosen = responses[3]["choices"][0]["message"]
    asyncio.run(memory.acompletion(model="m", messages=history + [chosen, {"role": "user", "content": "go on"}]))
    assert memory.session._path[2][0].content == chosen["content"]
    check_tree(any_store, session_id)


def test_a_thread_holding_the_session_does_not_block_the_event_loop(any_store, session_id):
    """A sync prepare() in a thread holds the session during a slow inline thinker call; an aprepare() on the
    same session waits for it without stalling the event loop, and both rounds are recorded."""
    thinker = ScriptedThinker(lambda req: "the invoices so far: total 10.00", delay_s=0.6)
    s = MemorySession(any_store, session_id, policy=budget_policy(900, fold_mode="think", block_tokens=100),
                      thinker=thinker)
    history = [SYSTEM, TASK]
    for k in range(6):
        r = tool_reply("t", k)
        history += [r, tool_result(r, chars=600)]

    async def main():
        gaps, stop = [], asyncio.Event()

        async def heartbeat():
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        beat = asyncio.create_task(heartbeat())
        worker = threading.Thread(target=s.prepare, args=(history,))
        worker.start()
        await asyncio.sleep(0.1)  # the thread is inside its thinker call now
        view = await s.aprepare(history)
        worker.join()
        stop.set()
        await beat
        return view, max(gaps)

    view, worst_gap = asyncio.run(main())
    assert worst_gap < 0.3, f"the event loop stalled for {worst_gap:.2f}s"
    assert thinker.requests and view == replayed_view(any_store, session_id, s.branch)


def test_sync_call_inside_a_coroutine_holding_the_session_is_an_error_not_a_deadlock(any_store, session_id):
    s = MemorySession(any_store, session_id, policy=NoOpPolicy())

    async def main():
        async with s._lock:
            with pytest.raises(SessionBusyError):
                s.prepare([SYSTEM, TASK])

    asyncio.run(main())
    assert s.prepare([SYSTEM, TASK])


def test_threads_and_many_sessions_at_once(any_store, session_id):
    """8 threads on one session (each its own conversation after a shared start) and 4 other sessions."""
    memories = {sid: AgentMemory(_tool_model(sid), store=any_store, session_id=sid, policy=budget_policy())
                for sid in [session_id] + [f"{session_id}-{i}" for i in range(4)]}
    shared = memories[session_id]
    finals: dict[str, list] = {}
    errors: list[BaseException] = []

    def agent(name, memory, rounds):
        try:
            history = [SYSTEM, {"role": "user", "content": f"task for {name}"}] if memory is not shared else \
                [SYSTEM, TASK, {"role": "assistant", "content": f"I am {name}"}, {"role": "user", "content": "go"}]
            for k in range(rounds):
                reply = memory.completion(model="m", messages=history)["choices"][0]["message"]
                history += [reply, tool_result(reply, chars=200)]
            finals[name] = history
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    jobs = [(f"w{i}", shared, 6) for i in range(8)] + [(sid, m, 6) for sid, m in memories.items() if m is not shared]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        list(pool.map(lambda j: agent(*j), jobs))
    assert not errors, errors
    for name, history in finals.items():
        sid = session_id if name.startswith("w") else name
        paths = [[s.message.fingerprint() for s in any_store.load_messages(sid, branch=b.branch)]
                 for b in any_store.branches(sid)]
        from agentmem.messages import parse_message

        want = [parse_message(m).fingerprint() for m in history[:-1]]  # the last tool result was never sent
        assert any(p[:len(want)] == want for p in paths), f"{name}'s history is on no branch"
        check_tree(any_store, sid)


def test_a_stale_session_object_refreshes_instead_of_failing(any_store, session_id):
    policy = ScriptedPolicy()
    a = MemorySession(any_store, session_id, policy=policy)
    b = MemorySession(type(any_store)(any_store.url), session_id, policy=NoOpPolicy())
    history = [SYSTEM, TASK]
    for k in range(3):
        r = tool_reply("s", k)
        history += [r, tool_result(r)]
    a.prepare(history[:4])
    policy.rounds = [[FoldAction(span=tuple(a.view.keys()[2:4]))]]
    a.prepare(history[:6])
    view = b.prepare(history)  # b never saw a's writes: it takes them in (messages and the fold) and goes on
    assert b.branch == 0 and b.message_count == len(history)
    assert view == replayed_view(any_store, session_id, 0)
    assert any(isinstance(it, BlockItem) for it in b.view.items)
    a.prepare(history + [{"role": "user", "content": "next"}])  # and a, now stale, catches up in turn
    assert a.message_count == len(history) + 1 and len(any_store.branches(session_id)) == 1
    b.store.close()


def test_record_response_at_an_explicit_point(any_store, session_id):
    s = MemorySession(any_store, session_id, policy=NoOpPolicy())
    s.prepare([SYSTEM, TASK])
    at = s.point
    s.record_response({"role": "assistant", "content": "one"})
    s.record_response({"role": "assistant", "content": "two"}, at=at)  # a second sample for the same view
    s.record_response({"role": "assistant", "content": "two"}, at=BranchPoint(s.branch, 2))  # recorded already
    assert [b.length for b in any_store.branches(session_id)] == [3, 3]
    assert any_store.message_count(session_id) == 4


def test_many_sessions_many_coroutines(any_store, session_id):
    """5 sessions × 3 concurrent coroutines each, 3 rounds each: every call answered, every reply stored."""
    async def model(model=None, messages=(), tools=None, **kw):
        await asyncio.sleep(0.01)
        return make_response(f"r{len(messages)}-{time.perf_counter_ns()}")

    memories = [AgentMemory(acompletion=model, store=any_store, session_id=f"{session_id}-{i}", policy="noop")
                for i in range(5)]

    async def agent(memory, k):
        history = [SYSTEM, {"role": "user", "content": f"coroutine {k}"}]
        for _ in range(3):
            reply = (await memory.acompletion(model="m", messages=history))["choices"][0]["message"]
            history += [reply, {"role": "user", "content": "more"}]
        return history

    async def main():
        return await asyncio.gather(*(agent(m, k) for m in memories for k in range(3)))

    histories = asyncio.run(main())
    for i, memory in enumerate(memories):
        stored = {s.message.content for s in any_store.archive(memory.session_id) if s.message.role == "assistant"}
        replies = {m["content"] for h in histories[3 * i:3 * i + 3] for m in h if m["role"] == "assistant"}
        assert replies <= stored and len(replies) == 9
        check_tree(any_store, memory.session_id)


def test_langchain_message_objects_edited_in_place_are_seen(any_store, session_id):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    s = MemorySession(any_store, session_id, policy=NoOpPolicy())
    history = [SystemMessage(content="sys"), HumanMessage(content="my card is 4111"), AIMessage(content="ok"),
               HumanMessage(content="next")]
    s.prepare(history)
    assert s.prepare(history) and s.branch == 0  # the same objects again: nothing to do
    history[1].content = "my card is [redacted]"
    view = s.prepare(history)
    assert view[1]["content"] == "my card is [redacted]" and s.branch == 1
