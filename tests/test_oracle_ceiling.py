"""bench/oracle_ceiling.py: the counterfactual row is told the run's calls, and only while it runs."""

from __future__ import annotations

import json

import pytest

from agentmem.replay import Trajectory
from histories import bench_script, paging_run

pytest.importorskip("langmem")  # bench/benchmark.py, which the script builds on, needs the bench extra


@pytest.fixture(scope="module")
def ceiling():
    return bench_script("oracle_ceiling")


def test_calls_by_round_reads_both_call_formats(ceiling):
    traj = Trajectory.from_messages("t", [
        {"role": "user", "content": "fix it"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function",
             "function": {"name": "bash", "arguments": json.dumps({"command": "sed -n 1,9p src/app/models.py"})}}]},
        {"role": "tool", "tool_call_id": "a", "content": "class Invoice:"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "b", "name": "lookup", "arguments": json.dumps({"invoice_id": "INV-2024-0093", "limit": 5})}]},
        {"role": "tool", "tool_call_id": "b", "content": "{}"},
    ])
    first, second = ceiling.calls_by_round(traj)
    assert {"src/app/models.py", "models"} <= first and "inv-2024-0093" in second
    assert "invoice" not in first | second  # only what the calls say, not what came back


def _paging_run(rounds: int = 40) -> Trajectory:
    run = paging_run(rounds)
    return Trajectory.from_messages(run["id"], run["messages"])


def test_the_oracle_keeps_more_of_what_the_run_uses_and_is_undone(ceiling):
    online = ceiling.FOLD.referenced_terms
    trajs = [_paging_run()]
    plain = ceiling.run_group(trajs, 1500, horizon=0)
    near = ceiling.run_group(trajs, 1500, horizon=3)
    told = ceiling.run_group(trajs, 1500, horizon=None)
    assert ceiling.FOLD.referenced_terms is online
    assert plain["retention"]["carried_old"] == told["retention"]["carried_old"] > 0
    old = [r["retention"]["retention_old_10"] for r in (plain, near, told)]
    assert old[0] < old[1] <= old[2], old  # three calls ahead already tell the closing calls' records apart
    assert max(r["footprint"]["max_peak_view"] for r in (plain, near, told)) <= 1500  # what is kept, not how much


def test_bad_horizons_are_refused_before_anything_runs(ceiling, capsys, tmp_path):
    for bad in ("0", "x", "5,-1", ","):
        with pytest.raises(SystemExit) as refused:
            ceiling.main(["--horizon", bad, "--out", str(tmp_path)])
        assert refused.value.code == 2
        assert "--horizon" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing replayed, nothing written


def test_each_oracle_row_carries_its_gain_over_the_online_fold_on_the_same_runs(ceiling):
    trajs = [Trajectory.from_messages(f"paging-{k}", paging_run(40, f"paging-{k}", offset=k)["messages"])
             for k in range(3)]
    rows = ceiling.group_rows("paging@1500", trajs, 1500, {0: "online", 3: "next 3", None: "whole run"})
    plain, near, told = rows
    assert "gain" not in plain and [r["horizon"] for r in rows] == [0, 3, None]
    for row in (near, told):
        gain = row["gain"]["retention_old"]
        assert gain["runs"] == 3
        assert gain["estimate"] == pytest.approx(row["retention_old"] - plain["retention_old"])
        assert 0 <= gain["low"] <= gain["estimate"] <= gain["high"]
    # the whole run known keeps more in every paging run; three calls ahead, in two of the three
    assert told["gain"]["retention_old"]["low"] > 0 and near["gain"]["retention_old"]["low"] == 0
