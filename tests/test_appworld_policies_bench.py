"""bench/appworld_policies.py: each row's TGC beside the budget policy's paired lead over it, from real runs."""

from __future__ import annotations

import json

import pytest

from histories import bench_script

pytest.importorskip("langmem")  # the script builds on bench/benchmark.py, which needs the bench extra


def test_rows_carry_task_outcomes_and_the_budget_policys_paired_lead(tmp_path):
    bench = bench_script("appworld_policies")
    # at 4,000 tokens a plain window loses the notes two of these tasks need; the budget policy solves all three
    tasks = "payments_handle_requests-0,music_most_played-0,todo_complete_overdue_high-0"
    res = bench.main(["--policies", "budget,window+norecall", "--budgets", "4000", "--tasks", tasks,
                      "--out", str(tmp_path / "runs"), "--results", str(tmp_path / "appworld")])
    budget, window = res["rows"]
    assert budget["task_success"] == dict.fromkeys(tasks.split(","), True) and "lead" not in budget
    assert window["task_success"]["todo_complete_overdue_high-0"] is True
    assert sum(window["task_success"].values()) == 1
    lead = window["lead"]
    assert lead["runs"] == 3 and lead["estimate"] == pytest.approx(2 / 3)
    assert lead["low"] <= lead["estimate"] <= lead["high"] and lead["low"] >= 0
    md = (tmp_path / "appworld.md").read_text()
    assert "budget's TGC lead [95 %]" in md and "| window+norecall |" in md and "+66.7 [" in md
    saved = json.loads((tmp_path / "appworld.json").read_text())
    assert saved["rows"][1]["lead"] == lead
