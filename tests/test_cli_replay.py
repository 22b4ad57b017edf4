"""`agentmem replay` through typer's CliRunner and once through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentmem.cli import app
from agentmem.replay import load_trajectories

runner = CliRunner()


@pytest.fixture
def small_file(tmp_path, shared_data):
    """Two real runs, the SWE one cut to 25 rounds, in the common format."""
    swe = load_trajectories(shared_data / "swe_deepseek_public.jsonl", limit=1)[0].truncated(25)
    tau = load_trajectories(shared_data / "taubench_airline.jsonl", limit=1)[0]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps({"id": t.id, "source": t.source, "messages": t.messages, "meta": t.meta}) + "\n"
                            for t in (swe, tau)))
    return path, swe, tau


def test_replay_writes_rounds_summary_plot_and_exact_views(tmp_path, small_file):
    path, swe, tau = small_file
    out = tmp_path / "out"
    res = runner.invoke(app, ["replay", str(path), "--policy", "budget", "--budget", "2500", "--out", str(out),
                              "--dump-views", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "carried values present in the view" in res.output and "prefix reuse" in res.output
    assert "in context" in res.output
    rounds = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert len(rounds) == swe.rounds + tau.rounds
    keys = {"trajectory", "round", "raw_tokens", "view_tokens", "actions", "bookkeeping_ms", "thinker_ms"}
    assert keys <= set(rounds[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["policy"] == "budget" and summary["budget_tokens"] == 2500 and summary["trajectories"] == 2
    assert summary["footprint"]["peak_ratio"] < 0.8  # managed: smaller than the raw history
    assert (out / "footprint.png").stat().st_size > 10_000
    views = [json.loads(x) for x in (out / "views.jsonl").read_text().splitlines()]
    assert [(v["trajectory"], v["round"]) for v in views] == [(r["trajectory"], r["round"]) for r in rounds]
    first_swe = [v for v in views if v["trajectory"] == swe.id]
    assert [v["round"] for v in first_swe] == list(range(swe.rounds))
    # round 0's view is the raw history before the first assistant turn, in OpenAI dict format
    i0 = swe.assistant_indices()[0]
    assert first_swe[0]["messages"] == [{k: v for k, v in m.items() if k != "id"} for m in swe.messages[:i0]]
    later = first_swe[-1]["messages"]
    calls = [tc for m in later if m["role"] == "assistant" for tc in m.get("tool_calls") or []]
    assert calls and all(set(tc["function"]) == {"name", "arguments"} for tc in calls)
    assert all("tool_call_id" in m for m in later if m["role"] == "tool")
    assert any(str(m["content"]).startswith("[agentmem") for m in later)  # folded: the view is managed


def test_ids_limit_and_policy_settings(tmp_path, small_file):
    path, swe, tau = small_file
    out = tmp_path / "o"
    res = runner.invoke(app, ["replay", str(path), "--ids", tau.id, "--policy", "observation_masking", "--set",
                              "keep_recent_rounds=3", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trajectories"] == 1 and summary["policy_config"] == {"keep_recent_rounds": 3}
    res = runner.invoke(app, ["replay", str(path), "--limit", "1", "--policy", "noop", "--out", str(out), "-q"])
    assert res.exit_code == 0 and json.loads((out / "summary.json").read_text())["rounds"] == swe.rounds


def test_clear_errors(tmp_path, small_file):
    path, _, _ = small_file
    bad = tmp_path / "bad.jsonl"
    bad.write_text(path.read_text().splitlines()[0] + "\n{\"role\": \"user\", \"content\": \"hi\"}\n")
    res = runner.invoke(app, ["replay", str(bad), "--out", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output and "single message" in res.output
    res = runner.invoke(app, ["replay", str(path), "--policy", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown policy 'nope'" in res.output
    res = runner.invoke(app, ["replay", str(path), "--policy", "window", "--set", "bogus=1", "--out",
                              str(tmp_path / "x")])
    assert res.exit_code == 2 and "bogus" in res.output
    res = runner.invoke(app, ["replay", str(path), "--ids", "nope", "--out", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 2 and "no trajectory with id 'nope'" in res.output


def test_help_names_every_option():
    res = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for opt in ("--policy", "--budget", "--thinker", "--out", "--limit", "--ids", "--dump-views", "--set"):
        assert opt in res.output


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path, shared_data):
    exe = shutil.which("agentmem", path=str(Path(sys.executable).parent)) or shutil.which("agentmem")
    assert exe, "the agentmem console script is not installed (pip install -e .)"
    out = tmp_path / "out"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.run([exe, "replay", str(shared_data / "swe_deepseek_public.jsonl"), "--limit", "1",
                           "--policy", "budget", "--budget", "8000", "--out", str(out), "--dump-views"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"rounds.jsonl", "summary.json", "footprint.png", "views.jsonl"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trajectories"] == 1 and summary["footprint"]["max_peak_view"] <= 8000 + 2000


def test_small_things_a_user_hits(tmp_path, small_file):
    """A directory is named as such; --set names the field and what it allows in one line; --no-dump-views."""
    path, _, _ = small_file
    res = runner.invoke(app, ["replay", str(tmp_path), "--out", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 2 and "is a directory" in res.output
    res = runner.invoke(app, ["replay", str(path), "--policy", "window", "--set", "bogus=1", "--out",
                              str(tmp_path / "x")], env={"COLUMNS": "400"})
    line = next(ln for ln in res.output.splitlines() if "bogus" in ln)
    assert "unknown field 'bogus'" in line and "keep_recent_rounds" in line  # the allowed fields, same line
    res = runner.invoke(app, ["replay", str(path), "--policy", "budget", "--set", "keep_recent_rounds=zero",
                              "--out", str(tmp_path / "x")], env={"COLUMNS": "400"})
    assert res.exit_code == 2 and "keep_recent_rounds='zero'" in res.output
    res = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    assert "--dump-views" in res.output and "--no-dump-views" in res.output
    res = runner.invoke(app, ["replay", str(path), "--limit", "1", "--policy", "noop", "--no-dump-views", "-q",
                              "--out", str(tmp_path / "nd")])
    assert res.exit_code == 0 and not (tmp_path / "nd" / "views.jsonl").exists()
