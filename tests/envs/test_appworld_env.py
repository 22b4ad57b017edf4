"""appworld-lite environment: registry, API docs, errors as observations, pagination, token expiry, evaluator,
determinism."""

from __future__ import annotations

import json

import pytest

from agentmem.envs import get_env, list_envs
from agentmem.envs.appworld_lite.framework import PAGE_SIZE, TOKEN_TTL
from agentmem.envs.runner import run_episode


def _obs(task, app, api, **args):
    return json.loads(task.step("call_api", {"app": app, "api": api, "arguments": args}))


def _login(task, app="email"):
    prof = _obs(task, "supervisor", "show_profile")["response"]
    pws = {p["account_name"]: p["password"] for p in _obs(task, "supervisor", "show_account_passwords")["response"]}
    user = prof["phone_number"] if app == "phone" else prof["email"]
    return _obs(task, app, "login", username=user, password=pws[app])["response"]["access_token"]


def test_registry():
    assert "appworld-lite" in list_envs()
    with pytest.raises(KeyError):
        get_env("no-such-env")
    env = get_env("appworld-lite")
    with pytest.raises(KeyError):
        env.load("no_such_template-0")


def test_tools_and_initial_messages(env):
    task = env.load("todo_add_task-0")
    names = [t["function"]["name"] for t in task.tools]
    assert names == ["call_api", "show_app_descriptions", "show_api_descriptions", "show_api_doc"]
    msgs = task.initial_messages()
    assert msgs[0]["role"] == "system" and msgs[1]["role"] == "user"
    assert task.instruction in msgs[1]["content"]


def test_api_docs_are_machine_readable(env):
    task = env.load("todo_add_task-0")
    apps = json.loads(task.step("show_app_descriptions", {}))["response"]
    names = {a["name"] for a in apps}
    assert {"supervisor", "api_docs", "email", "music", "payments", "expenses", "phone", "notes", "todo",
            "file_system"} <= names
    for app in names:
        apis = json.loads(task.step("show_api_descriptions", {"app_name": app}))["response"]
        assert apis and all(a["description"] for a in apis)
        for a in apis:
            doc = json.loads(task.step("show_api_doc", {"app_name": app, "api_name": a["name"]}))["response"]
            assert doc["api_name"] == a["name"] and isinstance(doc["parameters"], list)
            assert doc["parameters_schema"]["type"] == "object"
    doc = _obs(task, "api_docs", "show_api_doc", app_name="payments", api_name="send_money")["response"]
    params = {p["name"]: p for p in doc["parameters"]}
    assert params["amount"]["type"] == "number" and params["amount"]["required"]
    assert params["access_token"]["required"] and doc["mutates_state"]


def test_errors_come_back_as_observations(env):
    task = env.load("todo_add_task-0")
    err = lambda o: (o["status"], o["error"]["type"])  # noqa: E731
    assert err(_obs(task, "nope", "x")) == ("error", "UnknownApp")
    assert err(_obs(task, "todo", "nope")) == ("error", "UnknownAPI")
    assert err(_obs(task, "todo", "show_tasks")) == ("error", "ValidationError")  # no access_token
    assert err(_obs(task, "todo", "show_tasks", access_token="at-todo-000000000000")) == ("error", "InvalidToken")
    assert err(_obs(task, "todo", "login", username="x@y.z", password="bad")) == ("error", "AuthenticationFailed")
    tok = _login(task, "todo")
    assert err(_obs(task, "todo", "show_tasks", access_token=tok, page_index=-1)) == ("error", "ValidationError")
    assert err(_obs(task, "todo", "mark_task_done", access_token=tok, task_id=99999)) == ("error", "NotFound")
    assert err(_obs(task, "todo", "create_task", access_token=tok, title="x", priority="urgent")) == \
        ("error", "ValidationError")
    assert err(_obs(task, "todo", "show_tasks", access_token=tok, bogus=1)) == ("error", "ValidationError")
    email_tok = _login(task, "email")
    assert err(_obs(task, "todo", "show_tasks", access_token=email_tok)) == ("error", "InvalidToken")
    assert json.loads(task.step("call_api", "{not json"))["error"]["type"] == "InvalidArguments"
    assert json.loads(task.step("call_api", {"app": "todo"}))["error"]["type"] == "InvalidArguments"
    assert json.loads(task.step("delete_everything", {}))["error"]["type"] == "UnknownTool"
    # secrets are never echoed back
    o = _obs(task, "todo", "show_tasks", access_token=tok)
    assert o["status"] == "ok" and "access_token" not in o["args"]
    assert not task.done


def test_pagination(env):
    task = env.load("email_delete_from_sender-0")
    tok = _login(task, "email")
    n_inbox = task.world.q("SELECT COUNT(*) AS n FROM email_messages WHERE folder = 'inbox'")[0]["n"]
    seen, page = [], 0
    while True:
        r = _obs(task, "email", "show_inbox", access_token=tok, page_index=page)["response"]
        assert len(r["items"]) <= PAGE_SIZE and r["page_index"] == page
        seen += [e["email_id"] for e in r["items"]]
        if not r["has_more"]:
            break
        assert len(r["items"]) == PAGE_SIZE
        page += 1
    assert len(seen) == len(set(seen)) == n_inbox and page == (n_inbox - 1) // PAGE_SIZE
    beyond = _obs(task, "email", "show_inbox", access_token=tok, page_index=page + 3)["response"]
    assert beyond["items"] == [] and beyond["has_more"] is False


def test_token_expiry(env):
    task = env.load("todo_add_task-1")
    tok = _login(task, "todo")
    for _ in range(TOKEN_TTL):
        assert _obs(task, "todo", "show_tasks", access_token=tok)["status"] == "ok"
    o = _obs(task, "todo", "show_tasks", access_token=tok)
    assert o["status"] == "error" and o["error"]["type"] == "TokenExpired"
    tok2 = _login(task, "todo")
    assert tok2 != tok and _obs(task, "todo", "show_tasks", access_token=tok2)["status"] == "ok"


def _solve(env, tid):
    task = env.load(tid)
    res = run_episode(task, task.scripted_agent(), count_tokens=lambda m: 0)
    assert res.summary["success"], res.summary["checks"]
    return task, res


def test_evaluator_detects_a_wrong_answer(env):
    task, _ = _solve(env, "music_most_played-0")
    good = task.evaluate()
    assert good.success and good.score == 1.0
    task.world.answer = "Some Other Song"
    bad = task.evaluate()
    assert not bad.success and bad.score < good.score
    assert [c["name"] for c in bad.checks if not c["passed"]] == ["answer"]


def test_evaluator_detects_collateral_damage(env):
    task, _ = _solve(env, "notes_append_line-0")
    assert task.evaluate().success
    tok = _login(task, "notes")
    victim = task.world.q("SELECT note_id FROM notes_notes WHERE title != ? ORDER BY note_id LIMIT 1",
                          (task.params["title"],))[0]["note_id"]
    assert _obs(task, "notes", "delete_note", access_token=tok, note_id=victim)["status"] == "ok"
    ev = task.evaluate()
    assert not ev.success and ev.score < 1.0
    assert [c["name"] for c in ev.checks if not c["passed"]] == ["no collateral changes"]


def test_evaluator_detects_missing_and_wrong_changes(env):
    # doing nothing but completing: the expected changes are missing
    task = env.load("payments_send_relation-0")
    assert _obs(task, "supervisor", "complete_task")["status"] == "ok"
    ev = task.evaluate()
    assert not ev.success and any(c["name"].startswith("expected changes") and not c["passed"] for c in ev.checks)
    # paying the wrong amount: expected change missing and a collateral change
    task = env.load("payments_send_relation-0")
    tok = _login(task, "payments")
    role = task.params["role"]
    email = task.world.q("SELECT email FROM phone_contacts WHERE relationship = ?", (role,))[0]["email"]
    _obs(task, "payments", "send_money", access_token=tok, receiver_email=email, amount=task.params["amount"] + 1,
         note=task.params["note"])
    _obs(task, "supervisor", "complete_task")
    failed = {c["name"] for c in task.evaluate().checks if not c["passed"]}
    assert "no collateral changes" in failed and "expected changes in payments_transactions" in failed
    # the right payment, made by hand, passes (order of rows and auto ids do not matter)
    task = env.load("payments_send_relation-0")
    tok = _login(task, "payments")
    _obs(task, "payments", "send_money", access_token=tok, receiver_email=email, amount=task.params["amount"],
         note=task.params["note"])
    _obs(task, "supervisor", "complete_task")
    assert task.evaluate().success


def test_evaluator_ignores_insert_order(env):
    """Creating the expected rows in another order (other auto ids) still passes."""
    task = env.load("notes_meeting_todos-0")
    tok = _login(task, "todo")
    ctx, params = task.template.build(0)
    sol = task.template.oracle(ctx.world, params)
    assert len(sol.calls) > 10
    for app, api_name, args in reversed(sol.calls):
        assert _obs(task, app, api_name, access_token=tok, **args)["status"] == "ok"
    _obs(task, "supervisor", "complete_task")
    assert task.evaluate().success


def test_determinism(env):
    a, b = env.load("expenses_settle_all-1"), env.load("expenses_settle_all-1")
    assert a.world.dump() == b.world.dump()
    assert a.instruction == b.instruction
    assert env.load("expenses_settle_all-2").world.dump() != a.world.dump()
    ra = run_episode(a, a.scripted_agent(), count_tokens=lambda m: 0)
    rb = run_episode(b, b.scripted_agent(), count_tokens=lambda m: 0)
    assert ra.messages == rb.messages
    assert a.world.dump() == b.world.dump()
    assert [r["tools"] for r in ra.records] == [r["tools"] for r in rb.records]
