"""Replay: loading trajectory files (and rejecting bad ones clearly), causality, and equality with the live path."""

from __future__ import annotations

import json

import pytest

from agentmem import AgentMemory, Store, validate_history
from agentmem.replay import Trajectory, TrajectoryFormatError, load_trajectories, replay, replay_views, run_replay
from agentmem.testing import ScriptedCompletion, synthetic_history


def _swe(shared_data, rounds_at_least=40):
    trajs = load_trajectories(shared_data / "swe_deepseek_public.jsonl")
    return min((t for t in trajs if t.rounds >= rounds_at_least), key=lambda t: (t.rounds, t.id))


# --- loading ---------------------------------------------------------------------------------------------------
def test_loads_common_format_with_stable_ids(shared_data):
    trajs = load_trajectories(shared_data / "taubench_airline.jsonl", limit=3)
    assert len(trajs) == 3
    t = trajs[0]
    assert t.id == "gpt-4o/airline/task0/trial0" and t.source == "taubench_airline" and t.model == "gpt-4o"
    assert [m["id"] for m in t.messages[:3]] == ["m0000", "m0001", "m0002"]
    assert t.rounds == sum(m["role"] == "assistant" for m in t.messages)
    validate_history(t.messages, allow_open_tail=True)
    swe = load_trajectories(shared_data / "swe_deepseek_public.jsonl", limit=1)[0]
    call = next(m for m in swe.messages if m.get("tool_calls"))["tool_calls"][0]
    assert set(call) == {"id", "type", "function"} and set(call["function"]) == {"name", "arguments"}


def test_selects_by_ids_and_reports_unknown_ids(shared_data):
    path = shared_data / "taubench_airline.jsonl"
    got = load_trajectories(path, ids=["gpt-4o/airline/task3/trial0", "gpt-4o/airline/task0/trial1"])
    order = [t.id for t in load_trajectories(path)]
    assert [t.id for t in got] == sorted([t.id for t in got], key=order.index)  # file order, not argument order
    assert len(got) == 2
    with pytest.raises(TrajectoryFormatError, match="no trajectory with id 'nope'"):
        load_trajectories(path, ids=["nope"])


OPENAI_CONV = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "find order 4411"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"id\": 4411}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "{\"order\": 4411, \"sku\": \"SKU_77123\"}"},
    {"role": "assistant", "content": "done"},
]


def test_loads_openai_chat_format_jsonl_and_json(tmp_path):
    jsonl = tmp_path / "chats.jsonl"
    jsonl.write_text(json.dumps({"messages": OPENAI_CONV, "tools": []}) + "\n\n" + json.dumps(OPENAI_CONV) + "\n")
    got = load_trajectories(jsonl)
    assert [t.id for t in got] == ["chats:1", "chats:3"] and all(t.rounds == 2 for t in got)
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"messages": OPENAI_CONV}, indent=2))
    assert load_trajectories(one)[0].id == "one"
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"messages": OPENAI_CONV}, OPENAI_CONV]))
    assert [t.id for t in load_trajectories(many)] == ["many:0", "many:1"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(OPENAI_CONV))
    assert load_trajectories(bare)[0].rounds == 2


@pytest.mark.parametrize("line, expected", [
    ("{not json", r"bad\.jsonl:2: not valid JSON"),
    (json.dumps({"role": "user", "content": "hi"}), r"bad\.jsonl:2: this is a single message"),
    (json.dumps({"conversation": []}), r"bad\.jsonl:2: no 'messages' key"),
    (json.dumps({"messages": [{"role": "tool", "content": "x"}]}), r"bad\.jsonl:2: .*index 0.*no tool_call_id"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}]}), r"bad\.jsonl:2: .*unknown role 'robot'"),
    (json.dumps({"messages": OPENAI_CONV[:3] + [{"role": "user", "content": "?"}]}),
     r"bad\.jsonl:2: .*c1 have no result"),
    (json.dumps(42), r"bad\.jsonl:2: expected a conversation object"),
])
def test_bad_lines_are_named(tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": OPENAI_CONV}) + "\n" + line + "\n")
    with pytest.raises(TrajectoryFormatError, match=expected):
        load_trajectories(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TrajectoryFormatError, match="empty"):
        load_trajectories(tmp_path / "empty.jsonl")
    with pytest.raises(TrajectoryFormatError, match="no such file"):
        load_trajectories(tmp_path / "nope.jsonl")
    (tmp_path / "broken.json").write_text("{\"messages\": [")
    with pytest.raises(TrajectoryFormatError, match=r"broken\.json:1: not valid JSON"):
        load_trajectories(tmp_path / "broken.json")


# --- causal replay ------------------------------------------------------------------------------------------
def test_replay_is_causal_truncation_does_not_change_earlier_views(shared_data):
    traj = _swe(shared_data)
    full = [r.view for r in replay(traj, policy="budget", budget_tokens=3000, score=False)]
    assert len(full) == traj.rounds
    t = 30
    cut = traj.truncated(t + 1)
    assert cut.rounds == t + 1 and len(cut.messages) < len(traj.messages)
    part = [r.view for r in replay(cut, policy="budget", budget_tokens=3000, score=False)]
    assert part == full[: t + 1]
    assert any("[agentmem" in str(m.get("content")) for m in full[t])  # folds happened before the cut


def test_views_are_byte_reproducible_and_valid(shared_data):
    traj = _swe(shared_data)
    a = [r.view for r in replay(traj, policy="budget", budget_tokens=4000, score=False)]
    b = [r.view for r in replay(traj, policy="budget", budget_tokens=4000, score=False)]
    assert json.dumps(a) == json.dumps(b)
    for v in a:
        validate_history(v)
    first = traj.assistant_indices()[0]
    assert a[0] == [{k: v for k, v in m.items() if k != "id"} for m in traj.messages[:first]]


def test_replay_views_equal_live_agentmemory_completion(shared_data, monkeypatch):
    """Replay drives MemorySession exactly like AgentMemory.completion does: the live path sends the same views.

    The live path draws a random id for each model reply (ids appear in block and stub text, so they change token
    counts); here it draws the id replay uses for that reply, so the two must agree byte for byte.
    """
    import agentmem.messages

    traj = _swe(shared_data)
    replayed = [r.view for r in replay(traj, policy="budget", budget_tokens=3000, score=False)]
    replies = iter([m for m in traj.messages if m["role"] == "assistant"])
    reply_ids = iter([m["id"] for m in traj.messages if m["role"] == "assistant"])
    monkeypatch.setattr(agentmem.messages, "new_message_id", lambda: next(reply_ids))
    client = ScriptedCompletion(lambda _m, _t: {"choices": [{"message": next(replies)}]})
    memory = AgentMemory(client, store=Store(":memory:"), policy="budget", budget_tokens=3000, model=traj.model)
    live = []
    for i in traj.assistant_indices():
        memory.completion(model="deepseek-chat", messages=traj.messages[:i])
        assert memory.session.view.items[-1].key == traj.messages[i]["id"]
        live.append(client.calls[-1]["messages"])
    assert json.dumps(live) == json.dumps(replayed)
    assert any("[agentmem" in str(m.get("content")) for v in live for m in v)


def test_replay_records_stats_and_metrics(shared_data):
    traj = Trajectory.from_messages("syn", synthetic_history(40, output_chars=800))
    recs = [r.record for r in replay(traj, policy="budget", budget_tokens=3000)]
    assert [r["round"] for r in recs] == list(range(40))
    r = recs[-1]
    for key in ("raw_tokens", "view_tokens", "actions", "bookkeeping_ms", "thinker_ms", "record_ms", "prefix_reuse",
                "carried", "carried_present", "carried_old", "carried_old_present", "view_messages"):
        assert key in r
    assert r["raw_tokens"] > 3 * 3000 and max(x["view_tokens"] for x in recs) <= 3000
    assert any(x["actions"] for x in recs) and recs[0]["prefix_reuse"] is None
    tau = load_trajectories(shared_data / "taubench_airline.jsonl", ids=["gpt-4o/airline/task3/trial0"])[0]
    noop = [x.record for x in replay(tau, policy="noop")]
    assert all(x["view_tokens"] == x["raw_tokens"] for x in noop)
    assert all(x["carried_present"] == x["carried"] for x in noop) and sum(x["carried"] for x in noop) > 0


def test_replay_views_scores_an_external_view_function_like_noop():
    traj = Trajectory.from_messages("syn", synthetic_history(25))
    ext = [r.record for r in replay_views(traj, lambda h: (list(h), 0.0, []))]
    noop = [r.record for r in replay(traj, policy="noop")]
    for a, b in zip(ext, noop, strict=True):
        assert (a["raw_tokens"], a["view_tokens"], a["carried"], a["carried_present"], a["reused_tokens"]) == \
               (b["raw_tokens"], b["view_tokens"], b["carried"], b["carried_present"], b["reused_tokens"])


def test_run_replay_writes_files(tmp_path):
    trajs = [Trajectory.from_messages(f"syn-{k}", synthetic_history(30, seed=k)) for k in range(2)]
    summary = run_replay(trajs, tmp_path / "out", policy="window", budget_tokens=3000, dump_views=True)
    out = tmp_path / "out"
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    views = [json.loads(line) for line in (out / "views.jsonl").read_text().splitlines()]
    assert len(rounds) == len(views) == 60
    assert {(v["trajectory"], v["round"]) for v in views} == {(r["trajectory"], r["round"]) for r in rounds}
    assert json.loads((out / "summary.json").read_text())["trajectories"] == 2 == summary["trajectories"]
    assert (out / "footprint.png").stat().st_size > 10_000
    assert summary["footprint"]["max_peak_view"] <= 3000 and summary["store"]["bytes"] > 0
