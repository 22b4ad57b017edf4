"""`agentmem run` through the real CLI app: tasks run, outputs are written, bad options are named."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agentmem.cli import app


def test_run_writes_outputs_and_solves_easy_tasks(tmp_path):
    for policy in ("noop", "budget"):
        out = tmp_path / policy
        r = CliRunner().invoke(app, ["run", "--task", "todo_add_task-0,email_count_from-0", "--policy", policy,
                                     "--budget", "4000", "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "TGC 100.0%" in r.output
        for name in ("summary.json", "rounds.jsonl", "tokens.png", "agentmem.db"):
            assert (out / name).exists(), name
        summary = json.loads((out / "summary.json").read_text())
        assert summary["policy"] == policy and summary["aggregate"]["n_tasks"] == 2


def test_run_lists_tasks_and_names_bad_options(tmp_path):
    r = CliRunner().invoke(app, ["run", "--list", "--difficulty", "hard"])
    assert r.exit_code == 0 and len(r.output.split()) >= 30
    r = CliRunner().invoke(app, ["run", "--env", "nope", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "unknown environment 'nope'" in r.output
    r = CliRunner().invoke(app, ["run", "--policy", "magic", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "unknown policy 'magic'" in r.output
    r = CliRunner().invoke(app, ["run", "--task", "no_such_task-0", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "no_such_task" in r.output


def test_run_passes_policy_settings_and_rejects_bad_ones(tmp_path):
    out = tmp_path / "set"
    r = CliRunner().invoke(app, ["run", "--task", "music_most_played-0", "--policy", "budget", "--budget", "3000",
                                 "--set", "low_ratio=0.4", "--set", "keep_recent_rounds=2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert sum(rec["folds"] for rec in rounds) >= 1
    r = CliRunner().invoke(app, ["run", "--policy", "budget", "--set", "surprise=1", "--out", str(out)])
    assert r.exit_code != 0 and "policy 'budget': unknown field 'surprise'" in " ".join(r.output.split())
