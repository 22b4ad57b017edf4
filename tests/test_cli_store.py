"""The store inspection commands, through typer's runner and through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess

from typer.testing import CliRunner

from agentmem import MemorySession, Store
from agentmem.cli import app
from agentmem.policies import BudgetPolicy
from agentmem.testing import synthetic_history


def _populate(path):
    store = Store(path)
    session = MemorySession(store, "demo", policy=BudgetPolicy(budget_tokens=3000))
    history = synthetic_history(30, output_chars=400)
    session.prepare(history)
    return session, history


def test_sessions_view_events_export(tmp_path):
    db = tmp_path / "s.db"
    session, history = _populate(db)
    runner = CliRunner()
    r = runner.invoke(app, ["sessions", "--db", str(db)])
    assert r.exit_code == 0 and "demo" in r.output and f"{len(history)} messages" in r.output
    r = runner.invoke(app, ["view", "demo", "--db", str(db), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.output) == session.view.render()
    r = runner.invoke(app, ["events", "demo", "--db", str(db)])
    assert r.exit_code == 0 and " fold " in r.output
    out = tmp_path / "export.jsonl"
    r = runner.invoke(app, ["export", "demo", "--db", str(db), "--out", str(out)])
    assert r.exit_code == 0
    exported = out.read_text(encoding="utf-8").splitlines()
    assert len(exported) == len(history)
    assert [json.loads(line)["content"] for line in exported] == [m["content"] for m in history]
    r = runner.invoke(app, ["view", "missing", "--db", str(db)])
    assert r.exit_code == 2 and "no session 'missing'" in r.output


def test_console_script_help_on_every_command():
    exe = shutil.which("agentmem")
    assert exe, "the agentmem console script is not installed"
    top = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    commands = [c for c in ("sessions", "view", "events", "export", "replay", "run") if f" {c} " in top]
    assert {"sessions", "view", "events", "export"} <= set(commands)
    for c in commands:
        out = subprocess.run([exe, c, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "Usage" in out.stdout, (c, out.stderr)


def test_a_mistyped_db_creates_nothing(tmp_path):
    runner = CliRunner()
    typo = tmp_path / "no" / "such" / "typo.db"
    r = runner.invoke(app, ["sessions", "--db", str(typo)])
    assert r.exit_code == 2 and "no store at" in r.output
    assert not (tmp_path / "no").exists()
    r = runner.invoke(app, ["sessions", "--db", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.output


def test_branches_through_the_cli(tmp_path):
    db = tmp_path / "b.db"
    session, history = _populate(db)
    session.prepare(history[:10])  # back in time: a branch
    runner = CliRunner()
    r = runner.invoke(app, ["sessions", "--db", str(db)])
    assert "2 branches" in r.output
    r = runner.invoke(app, ["events", "demo", "--db", str(db)])
    assert r.exit_code == 0 and " fork " in r.output
    r = runner.invoke(app, ["view", "demo", "--db", str(db), "--branch", "0", "--json"])
    assert json.loads(r.output) != session.view.render()
    out = tmp_path / "b0.jsonl"
    runner.invoke(app, ["export", "demo", "--db", str(db), "--branch", "0", "--out", str(out)])
    assert len(out.read_text().splitlines()) == len(history)
    r = runner.invoke(app, ["events", "demo", "--db", str(db), "--branch", "7"])
    assert r.exit_code == 2 and "no branch 7" in r.output
