"""appworld-lite tasks: the ScriptedAgent solves all of them without memory management; the task mix is long."""

from __future__ import annotations

import json

import pytest

from agentmem.envs.appworld_lite import TEMPLATES
from agentmem.envs.appworld_lite.apps import USER_APPS

TEMPLATE_NAMES = sorted(TEMPLATES)


def test_task_mix(env):
    ids = env.task_ids()
    assert len(TEMPLATES) >= 30
    assert len(ids) == 3 * len(TEMPLATES)  # three seeds per template
    assert {t.difficulty for t in TEMPLATES.values()} == {"easy", "medium", "hard"}
    assert len(USER_APPS) >= 6
    assert set(env.task_ids("hard")) < set(ids)
    used_apps = {a for t in TEMPLATES.values() for a in t.apps}
    assert len(used_apps) >= 6


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_scripted_agent_solves_every_task_without_memory(scripted_runs, name):
    runs = {tid: s for tid, s in scripted_runs.items() if tid.rsplit("-", 1)[0] == name}
    assert len(runs) == 3
    for tid, s in runs.items():
        failed = [c for c in s["checks"] if not c["passed"]]
        assert s["success"], (tid, failed)
        assert s["completed"] and s["score"] == 1.0
        assert s["recalls"] == 0  # nothing is ever missing from a full view


def test_at_least_a_third_of_tasks_need_80_rounds(scripted_runs):
    rounds = {tid: s["rounds"] for tid, s in scripted_runs.items()}
    long_tasks = [t for t, r in rounds.items() if r >= 80]
    assert len(long_tasks) * 3 >= len(rounds)
    for tid, s in scripted_runs.items():
        if TEMPLATES[tid.rsplit("-", 1)[0]].difficulty == "hard":
            assert 80 <= s["rounds"] <= 200, (tid, s["rounds"])
        else:
            assert s["rounds"] < 80, (tid, s["rounds"])


def test_tgc_and_sgc_are_100_percent_for_the_scripted_agent(scripted_runs):
    from agentmem.envs.runner import aggregate

    agg = aggregate(list(scripted_runs.values()))
    assert agg["tgc"] == 100.0 and agg["sgc"] == 100.0
    assert agg["n_scenarios"] == len(TEMPLATES)
    assert set(agg["by_difficulty"]) == {"easy", "medium", "hard"}


def test_long_tasks_carry_credentials_across_token_expiry(env):
    """Tokens expire after TOKEN_TTL calls: a hard task logs in again using the password read at round 2."""
    from agentmem.envs.runner import run_episode

    task = env.load("email_receipts_note-0")
    res = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0)
    assert res.summary["success"]
    expired = [m for m in res.messages if m["role"] == "tool" and '"TokenExpired"' in m["content"]]
    assert expired
    calls = [json.loads(c["function"]["arguments"]) for m in res.messages if m["role"] == "assistant"
             for c in m.get("tool_calls") or []]
    logins = [c for c in calls if c.get("api") == "login"]
    assert len(logins) >= 2 + len(expired)  # initial logins for email and notes, then one per expiry


def test_expiring_passwords_must_be_looked_up_again(env):
    """music_playlist_genres_note: a password expires with each token; the old one is refused ("PasswordExpired"),
    the account store shows the new one, and the evaluator does not count the rotation as the agent's change."""
    from agentmem.envs.runner import run_episode

    task = env.load("music_playlist_genres_note-0")
    w = task.world
    first = {r["account_name"]: r["password"] for r in w.q("SELECT * FROM supervisor_passwords")}
    profile = w.call("supervisor", "show_profile")["response"]
    token = w.call("music", "login", {"username": profile["email"], "password": first["music"]})["response"]
    for _ in range(61):
        w.call("supervisor", "show_profile")
    expired = w.call("music", "show_playlist_library", {"access_token": token["access_token"]})
    assert expired["error"]["type"] == "TokenExpired" and "password" in expired["error"]["message"]
    stale = w.call("music", "login", {"username": profile["email"], "password": first["music"]})
    assert stale["status"] == "error" and stale["error"]["type"] == "PasswordExpired"
    now = {r["account_name"]: r["password"] for r in w.call("supervisor", "show_account_passwords")["response"]}
    assert now["music"] != first["music"] and now["email"] == first["email"]  # only the rotating apps change
    assert w.call("music", "login", {"username": profile["email"], "password": now["music"]})["status"] == "ok"
    w.call("music", "show_playlist_library", {"access_token": token["access_token"]})  # same token: no new rotation
    assert w.q("SELECT password FROM supervisor_passwords WHERE account_name = 'music'")[0]["password"] == now["music"]

    # the ScriptedAgent without memory management: looks the passwords up again after each expiry and solves it
    for seed in range(3):
        task = env.load(f"music_playlist_genres_note-{seed}")
        res = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0)
        assert res.summary["success"], res.summary
        calls = [json.loads(c["function"]["arguments"]) for m in res.messages if m["role"] == "assistant"
                 for c in m.get("tool_calls") or []]
        lookups = [c for c in calls if c.get("api") == "show_account_passwords"]
        assert len(lookups) >= 3 and set(task.world.expired_passwords) == {"music", "notes"}
        assert res.summary["rounds"] >= 80


def test_scripted_agent_does_not_retry_an_expired_password(env):
    """A password the app refused as expired (or that expired with its token) is looked up anew, not reused."""
    from agentmem.envs.appworld_lite.scripted import View

    login = {"role": "assistant", "content": "[plan] {} login", "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "call_api", "arguments": json.dumps(
                 {"app": "music", "api": "login", "arguments": {"username": "a@b.c", "password": "OLDpass123"}})}}]}
    refused = {"role": "tool", "tool_call_id": "c1", "content": json.dumps(
        {"app": "music", "api": "login", "args": {"username": "a@b.c"}, "status": "error",
         "error": {"type": "PasswordExpired", "message": "This password of the music account has expired."}})}
    block = {"role": "user", "content": "[agentmem: fold block blk-1 covers 4 earlier messages]\n"
             "» call_api(app=\"supervisor\", api=\"show_account_passwords\", arguments={})\n"
             "response[3]: account_name=music, password=OLDpass123"}
    assert View([block]).passwords == [("music", "OLDpass123")]  # read off a block line
    v = View([block, login, refused])
    assert ("music", "OLDpass123") in v.stale_passwords
    expired = {"role": "tool", "tool_call_id": "c2", "content": json.dumps(
        {"app": "music", "api": "show_song", "args": {}, "status": "error", "error": {
            "type": "TokenExpired", "message": "The access token for 'music' has expired, and so has the password"}})}
    assert ("music", "OLDpass123") in View([block, expired]).stale_passwords
    assert not View([expired, block]).stale_passwords  # a password read after the expiry is the new one


def test_scripted_agent_treats_thinking_blocks_as_blocks():
    """A token quoted only in a block older than the newest one is not tried, whether the block was written by the
    extractive fold ("fold block") or by a thinking model ("summarize block")."""
    from agentmem.envs.appworld_lite.scripted import View

    token = "at-todo-0123456789ab"
    envelope = json.dumps({"app": "todo", "api": "login", "args": {}, "status": "ok",
                           "response": {"access_token": token, "token_type": "Bearer"}})
    for kind in ("fold", "summarize"):
        old = {"role": "user", "content": f"[agentmem: {kind} block blk-1 covers 9 earlier messages]\n{envelope}"}
        newer = {"role": "user", "content": f"[agentmem: {kind} block blk-2 covers 5 earlier messages]\n- ok"}
        assert View([old]).tokens == [("todo", token)], kind
        assert "todo" in View([old]).token_usable, kind  # the newest block: usable
        assert "todo" not in View([old, newer]).token_usable, kind  # a fold generation old: not tried
