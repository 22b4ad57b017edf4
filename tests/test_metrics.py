"""Metrics: pure functions over trajectories, views and round records."""

from __future__ import annotations

import json

import pytest

from agentmem.metrics import (
    bootstrap_retention,
    call_values,
    carried_values_by_round,
    cost,
    dict_text,
    footprint,
    metric_tokens,
    plain_words,
    prefix_reuse,
    retention,
    slope,
    summarize_rounds,
)


def _call(cid, name, **args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


TRAJ = [
    {"role": "system", "content": "policy: refunds above 500 need approval"},
    {"role": "user", "content": "Cancel reservation ABC123 for user mia_li_3668"},
    {"role": "assistant", "content": None, "tool_calls": [_call("c0", "get_user", user_id="mia_li_3668")]},
    {"role": "tool", "tool_call_id": "c0", "content": '{"reservations": ["ABC123", "XYZ789"], "card": "card_7788"}'},
    {"role": "assistant", "content": None, "tool_calls": [_call("c1", "get_res", id="XYZ789")]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"flight": "HAT136", "path": "/data/res/XYZ789.json"}'},
    {"role": "user", "content": "also use voucher_5521"},
    {"role": "assistant", "content": None,
     "tool_calls": [_call("c2", "refund", card="card_7788", voucher="voucher_5521", reservation="ABC123")]},
    {"role": "tool", "tool_call_id": "c2", "content": "ok"},
]


def test_text_and_call_values_handle_both_tool_call_shapes():
    flat = {"role": "assistant", "content": "x",
            "tool_calls": [{"id": "c", "name": "f", "arguments": "{\"p\": \"src/ab.py\"}"}]}
    assert "src/ab.py" in dict_text(flat) and call_values(flat) == ["src/ab.py"]
    assert call_values(TRAJ[7]) == ["card_7788", "voucher_5521", "ABC123"]
    assert dict_text({"role": "user", "content": [{"type": "text", "text": "hi 1234"}]}) == "hi 1234"
    bad = {"role": "assistant", "tool_calls": [{"id": "c", "name": "f", "arguments": "not json 999999"}]}
    assert call_values(bad) == ["999999"]


def test_metric_tokens_are_identifier_like_and_independent_of_the_primitives():
    text = "see self.templated_file.templated_str, np.hstack and ./pvlib/iam.py:123 at 2ee20ccd; plain words, 643"
    assert metric_tokens(text) == ["self.templated_file.templated_str", "np.hstack", "pvlib/iam.py:123", "2ee20ccd"]
    assert plain_words("def physical(aoi, n=1.5): returns the iam of pvlib/iam.py") == \
        {"def", "physical", "aoi", "returns", "iam"}
    import agentmem.metrics as metrics_module

    source = open(metrics_module.__file__, encoding="utf-8").read()
    for shared in ("agentmem.values", "agentmem.salience", "primitives", "policies"):
        assert shared not in source.split('"""', 2)[2], shared  # the instrument shares no part with the fold


def test_a_bare_identifier_list_scores_high_on_presence_and_low_in_context():
    call = lambda cid, cmd: {"role": "assistant", "content": None,  # noqa: E731
                             "tool_calls": [_call(cid, "bash", command=cmd)]}
    traj = [{"role": "system", "content": "fix the bug"}, {"role": "user", "content": "the tests fail"},
            call("c0", "grep -rn hstack src"),
            {"role": "tool", "tool_call_id": "c0", "content": "src/geometry/stack.py:88: result = np.hstack(parts)\n"
                                                                  "src/geometry/frame.py:12: frame_id = rec.frame_id"},
            call("c1", "sed -n 80,95p src/geometry/stack.py && grep -n rec.frame_id src/geometry/frame.py")]
    carried = carried_values_by_round(traj)[1]
    assert {c.value for c in carried} == {"src/geometry/stack.py", "src/geometry/frame.py", "rec.frame_id"}
    head = traj[:2]
    bare = head + [{"role": "user", "content": "values: src/geometry/stack.py, src/geometry/frame.py, rec.frame_id"}]
    lines = head + [{"role": "user", "content": "src/geometry/stack.py:88: result = np.hstack(parts)\n"
                                                "src/geometry/frame.py:12: frame_id = rec.frame_id"}]
    r_bare, r_lines = retention(carried, bare), retention(carried, lines)
    assert r_bare["carried_present"] == 3 and r_bare["carried_in_context"] == 0
    assert r_lines["carried_present"] == 3 and r_lines["carried_in_context"] == 3


def test_carried_values_come_from_tool_results_not_the_task_or_the_user():
    carried = carried_values_by_round(TRAJ)
    # round 0 uses mia_li_3668 (in the task): not carried; round 1 uses XYZ789 from the tool result of round 0
    assert 0 not in carried
    assert [(c.value, c.age, c.first_index) for c in carried[1]] == [("XYZ789", 1, 3)]
    # round 2: card_7788 from a tool result (last seen round 0, age 2); voucher (user) and ABC123 (task) excluded
    assert [(c.value, c.last_round, c.age) for c in carried[2]] == [("card_7788", 0, 2)]


def test_retention_counts_presence_in_the_view_and_old_values():
    carried = carried_values_by_round(TRAJ)[2]
    assert retention(carried, TRAJ[:7])["carried_present"] == 1
    folded = [TRAJ[0], TRAJ[1], {"role": "user", "content": "[agentmem: fold block] values: XYZ789"}]
    r = retention(carried, folded)
    assert r == {"carried": 1, "carried_present": 0, "carried_in_context": 0, "carried_old": 0,
                 "carried_old_present": 0, "carried_old_in_context": 0, "lost": ["card_7788"]}
    assert retention(carried, folded, old_rounds=2)["carried_old"] == 1


def test_prefix_reuse_is_exact_message_prefix():
    a = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "x"}]
    b = a + [{"role": "user", "content": "more"}]
    assert prefix_reuse(None, a, [5, 5, 5]) == (0, 15)
    assert prefix_reuse(a, b, [5, 5, 5, 10]) == (15, 25)
    changed = [a[0], {"role": "user", "content": "[agentmem block]"}, a[2]]
    assert prefix_reuse(a, changed, lambda m: 5) == (5, 15)


def test_footprint_slope_and_peaks():
    rounds = [{"round": t, "raw_tokens": 1000 + 100 * t, "view_tokens": min(1000 + 100 * t, 5000)}
              for t in range(120)]
    fp = footprint(rounds)
    assert fp["peak_raw"] == 1000 + 100 * 119 and fp["peak_view"] == 5000
    assert fp["peak_ratio"] == pytest.approx(5000 / 12900)
    assert fp["slope_view"] == pytest.approx(0) and fp["slope_raw"] == pytest.approx(100)
    assert footprint(rounds[:50])["slope_view"] is None
    assert slope([1, 2, 3], [2, 4, 6]) == pytest.approx(2) and slope([1], [1]) is None


def test_cost_and_summary_pool_over_trajectories():
    rounds = []
    for tid in ("a", "b"):
        for t in range(10):
            rounds.append({"trajectory": tid, "round": t, "raw_tokens": 100 * (t + 1), "view_tokens": 100,
                           "bookkeeping_ms": 1.0, "record_ms": 0.5, "thinker_ms": 2000.0 if t == 5 else 0.0,
                           "actions": [{"kind": "summarize", "thinker": "m"}] if t == 5 else [],
                           "carried": 2, "carried_present": 1 if tid == "a" else 2, "carried_in_context": 1,
                           "carried_old": 1, "carried_old_in_context": 1,
                           "carried_old_present": 0, "reused_tokens": 90 if t else 0, "reuse_total": 100 if t else 0})
    c = cost(rounds)
    assert c["ms_per_round_p50"] == pytest.approx(1.5) and c["model_folds"] == 2
    assert c["thinker_s_per_fold"] == pytest.approx(2.0)
    s = summarize_rounds(rounds)
    assert s["trajectories"] == 2 and s["rounds"] == 20
    assert s["retention"]["retention"] == pytest.approx(30 / 40) and s["retention"]["retention_old_10"] == 0
    assert s["retention"]["in_context"] == pytest.approx(0.5) and s["retention"]["in_context_old_10"] == 1
    assert s["prefix_reuse"] == pytest.approx(0.9)
    assert s["footprint"]["peak_ratio"] == pytest.approx(0.1) and s["actions"] == {"summarize": 2}


def _runs(kept_old: dict[str, tuple[int, int]]) -> list[dict]:
    """Per-trajectory entries as summarize_rounds writes them, with only the old-value counts set."""
    return [{"trajectory": tid, "carried": total, "carried_present": kept, "carried_in_context": kept,
             "carried_old": total, "carried_old_present": kept, "carried_old_in_context": kept}
            for tid, (kept, total) in kept_old.items()]


def test_summarize_rounds_keeps_each_runs_counts_for_the_intervals():
    rounds = [{"trajectory": "a", "round": 0, "raw_tokens": 10, "view_tokens": 10, "carried": 4,
               "carried_present": 3, "carried_in_context": 2, "carried_old": 2, "carried_old_present": 1,
               "carried_old_in_context": 1}]
    per = summarize_rounds(rounds)["per_trajectory"][0]
    assert (per["carried"], per["carried_present"], per["carried_in_context"]) == (4, 3, 2)
    assert (per["carried_old"], per["carried_old_present"], per["carried_old_in_context"]) == (2, 1, 1)


def test_bootstrap_interval_holds_the_pooled_ratio_and_is_reproducible():
    runs = _runs({"a": (8, 10), "b": (30, 40), "c": (5, 10), "d": (19, 20)})
    ci = bootstrap_retention(runs, "retention_old")
    assert ci["estimate"] == pytest.approx(62 / 80) and ci["runs"] == 4
    assert ci["low"] < ci["estimate"] < ci["high"]
    assert 0.5 <= ci["low"] and ci["high"] <= 0.95  # within the runs' own ratios
    assert bootstrap_retention(runs, "retention_old") == ci  # same seed, same interval


def test_a_paired_lead_sees_a_steady_difference_that_separate_intervals_blur():
    """Runs differ a lot in how hard they are; one memory keeps two values more than the other in every run.
    Each memory's own interval is wide and the two overlap; the paired lead is positive throughout."""
    hard = {f"r{i}": (10 + 30 * (i % 3), 80) for i in range(9)}
    ours = _runs({tid: (kept + 2, total) for tid, (kept, total) in hard.items()})
    theirs = _runs(hard)
    mine, other = bootstrap_retention(ours, "retention_old"), bootstrap_retention(theirs, "retention_old")
    assert mine["low"] < other["high"]  # the separate intervals overlap
    lead = bootstrap_retention(ours, "retention_old", baseline=theirs)
    assert lead["estimate"] == pytest.approx(2 / 80) and lead["low"] > 0
    same = bootstrap_retention(theirs, "retention_old", baseline=theirs)
    assert same["estimate"] == same["low"] == same["high"] == 0


def test_a_lead_from_one_run_only_is_not_told_from_chance():
    theirs = _runs({f"r{i}": (20, 40) for i in range(8)})
    ours = _runs({**{f"r{i}": (20, 40) for i in range(7)}, "r7": (36, 40)})
    lead = bootstrap_retention(ours, "in_context_old", baseline=theirs)
    # a third of the resamples ((7/8)^8) miss the one run that differs: the interval's low end is no lead at all
    assert lead["estimate"] > 0 and lead["low"] == 0


def test_bootstrap_pairs_only_the_runs_both_memories_have_and_names_bad_input():
    ours = _runs({"a": (5, 10), "b": (9, 10), "only-ours": (0, 10)})
    theirs = _runs({"a": (4, 10), "b": (8, 10)})
    assert bootstrap_retention(ours, "retention", baseline=theirs)["runs"] == 2
    assert bootstrap_retention([], "retention") == {"estimate": None, "low": None, "high": None, "runs": 0}
    with pytest.raises(ValueError, match="unknown retention column 'recall'"):
        bootstrap_retention(ours, "recall")
    with pytest.raises(ValueError, match="level"):
        bootstrap_retention(ours, "retention", level=1.5)
