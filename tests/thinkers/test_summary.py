"""The summary.json "thinker" object: exact keys, speed from ThinkerStats, decisions from the round records."""

from __future__ import annotations

import json

import pytest

from agentmem.replay import Trajectory, run_replay
from agentmem.testing import ScriptedThinker, synthetic_history
from agentmem.thinkers import THINKER_SUMMARY_KEYS, ThinkerStats, ThinkResult, thinker_summary


def test_stats_give_prefill_and_decode_rates():
    st = ThinkerStats()
    st.record(ThinkResult(text="x", model="m", tokens_in=1000, tokens_out=51, cached_tokens=200, seconds=6.0,
                          prefill_seconds=4.0, decode_seconds=2.0))
    st.record(ThinkResult(text="y", model="m", tokens_in=10, tokens_out=5, seconds=1.0))  # no timings: not in rates
    st.record_failure()
    d = st.as_dict()
    assert d["calls"] == 2 and d["seconds_per_call"] == 3.5 and d["failures"] == 1
    assert d["prefill_tok_s"] == 200.0  # (1000 - 200 cached) / 4 s
    assert d["decode_tok_s"] == 25.0  # 50 tokens after the first / 2 s
    assert ThinkerStats().as_dict()["prefill_tok_s"] is None


def test_summary_has_exactly_the_keys_and_counts_decisions():
    class Backend:
        backend, label, load_seconds = "llama.cpp", "tiny", 1.234

        def __init__(self):
            self.stats = ThinkerStats()

    rounds = [{"actions": [{"kind": "decision", "valid": True, "applied": 2}, {"kind": "fold"}]},
              {"actions": [{"kind": "decision", "valid": False, "applied": 0, "fallback": True}]},
              {"actions": [{"kind": "summarize", "fallback": "thinker failed: timeout"}]},
              {"actions": [{"kind": "decision", "valid": True, "applied": 0}]}]
    s = thinker_summary(Backend(), rounds)
    assert tuple(s) == THINKER_SUMMARY_KEYS
    assert s["backend"] == "llama.cpp" and s["model"] == "tiny" and s["load_s"] == 1.23 and s["calls"] == 0
    assert (s["decisions_valid"], s["decisions_applied"], s["fallbacks"]) == (2, 1, 2)
    assert thinker_summary(None, rounds) is None


def test_replay_writes_the_thinker_object(tmp_path):
    def answer(req):
        if req.purpose != "policy":
            return "notes"
        body = req.messages[-1]["content"].split("Movable items, oldest first:\n", 1)[1].rsplit("\nAnswer", 1)[0]
        keys = [ln.strip().split(" | ")[0] for ln in body.splitlines() if " | " in ln]
        return json.dumps({"actions": [{"op": "fold", "from": keys[0], "to": keys[-1]}]})

    traj = Trajectory.from_messages("synthetic", synthetic_history(40, output_chars=400))
    summary = run_replay([traj], tmp_path, policy="thinker", budget_tokens=4000, thinker=ScriptedThinker(answer),
                         plot=False)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["thinker"] == summary["thinker"]
    t = summary["thinker"]
    assert tuple(t) == THINKER_SUMMARY_KEYS and t["backend"] == "ScriptedThinker"
    assert t["decisions_valid"] >= 1 and t["decisions_applied"] >= 1
    none = run_replay([traj], tmp_path / "x", policy="budget", budget_tokens=4000, plot=False)
    assert none["thinker"] is None


def test_run_without_a_model_has_no_thinker_object(tmp_path):
    from typer.testing import CliRunner

    from agentmem.cli import app

    r = CliRunner().invoke(app, ["run", "--task", "todo_add_task-0", "--policy", "budget", "--budget", "4000",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "summary.json").read_text())["thinker"] is None


@pytest.mark.model
def test_run_with_the_small_model_reports_llamacpp_figures(tmp_path):
    from typer.testing import CliRunner

    from agentmem.cli import app

    r = CliRunner().invoke(app, ["run", "--task", "email_count_from-0", "--policy", "thinker", "--thinker", "smollm2",
                                 "--budget", "1500", "--set", "block_tokens=200", "--no-background",
                                 "--think-tokens", "64", "--max-rounds", "12", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    t = json.loads((tmp_path / "summary.json").read_text())["thinker"]
    assert tuple(t) == THINKER_SUMMARY_KEYS and t["backend"] == "llama.cpp"
    assert t["model"] == "smollm2-135m-instruct-q4_1" and t["calls"] >= 1 and t["prefill_tok_s"] > 0
    assert t["decisions_valid"] + t["fallbacks"] >= 1


def test_background_replay_counts_pending_and_stale_decisions_beside_the_thinker_object(tmp_path):
    """A slow background model: summary.json's "thinker" keeps its ten keys; "thinker_decisions" counts the rounds
    where the budget rule acted while the decision was pending, and the late and stale decisions."""
    import time

    def slow(req):
        time.sleep(0.4)
        if req.purpose != "policy":
            return "notes"
        body = req.messages[-1]["content"].split("Movable items, oldest first:\n", 1)[1].rsplit("\nAnswer", 1)[0]
        keys = [ln.strip().split(" | ")[0] for ln in body.splitlines() if " | " in ln]
        return json.dumps({"actions": [{"op": "fold", "from": keys[0], "to": keys[len(keys) // 2]}]})

    traj = Trajectory.from_messages("synthetic", synthetic_history(90, output_chars=400))
    summary = run_replay([traj], tmp_path, policy="thinker", budget_tokens=4000, thinker=ScriptedThinker(slow),
                         plot=False, policy_config={"background": True},
                         on_round=lambda rr: time.sleep(0.05))  # the agent's own model call
    written = json.loads((tmp_path / "summary.json").read_text())
    assert tuple(written["thinker"]) == THINKER_SUMMARY_KEYS
    d = written["thinker_decisions"]
    assert set(d) == {"model_decisions", "late", "at_hard_budget", "stale", "partly_stale",
                      "pending_fallbacks"}
    assert d["pending_fallbacks"] >= 1 and d["model_decisions"] >= 1 and d["late"] == d["model_decisions"]
    assert written["thinker"]["fallbacks"] >= d["pending_fallbacks"]
    assert summary["footprint"]["max_peak_view"] <= 4000
