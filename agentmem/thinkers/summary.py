"""The "thinker" object of summary.json (`agentmem replay`, `agentmem run`): which model, how fast, how it decided.

Speed comes from the thinker's own running totals (ThinkerStats); decisions and fallbacks from the round records
the run wrote (their "actions"), so one function serves every command that writes a summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["THINKER_SUMMARY_KEYS", "thinker_summary", "decision_timing", "PENDING_REASONS"]

# The budget rule acted alone while the model was still deciding in the background (the agent did not wait).
PENDING_REASONS = ("decision pending", "no decision asked yet", "model busy with the last decision's thinking folds")

THINKER_SUMMARY_KEYS = ("backend", "model", "load_s", "calls", "seconds_per_call", "prefill_tok_s", "decode_tok_s",
                        "decisions_valid", "decisions_applied", "fallbacks")


def _decision_counts(rounds: Iterable[Mapping[str, Any]]) -> tuple[int, int, int]:
    """(valid decisions, decisions with at least one model action applied, fallbacks) over round records.

    A fallback is a model answer agentmem could not use: a decision that failed validation (the budget rule
    acted instead), or a thinking fold that became an extractive one (thinker error, empty or unfaithful text).
    """
    valid = applied = fallbacks = 0
    for rec in rounds:
        for a in rec.get("actions") or ():
            if not isinstance(a, Mapping):
                continue
            if a.get("kind") == "decision":
                valid += bool(a.get("valid"))
                applied += int(a.get("applied") or 0) > 0
                fallbacks += bool(a.get("fallback"))
            elif a.get("fallback"):
                fallbacks += 1
    return valid, applied, fallbacks


def thinker_summary(thinker: Any, rounds: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any] | None:
    """The summary.json "thinker" object (exactly THINKER_SUMMARY_KEYS), or None for a run without a model."""
    if thinker is None:
        return None
    stats = thinker.stats.as_dict() if hasattr(thinker, "stats") else {}
    valid, applied, fallbacks = _decision_counts(rounds)
    load_s = getattr(thinker, "load_seconds", None)
    return {
        "backend": getattr(thinker, "backend", type(thinker).__name__),
        "model": getattr(thinker, "label", None) or getattr(thinker, "name", None),
        "load_s": round(load_s, 2) if isinstance(load_s, (int, float)) else None,
        "calls": stats.get("calls", 0),
        "seconds_per_call": stats.get("seconds_per_call"),
        "prefill_tok_s": stats.get("prefill_tok_s"),
        "decode_tok_s": stats.get("decode_tok_s"),
        "decisions_valid": valid,
        "decisions_applied": applied,
        "fallbacks": fallbacks,
    }


def decision_timing(rounds: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """summary.json's "thinker_decisions" (beside the "thinker" object, whose keys are fixed): how background
    decisions met the view. model_decisions: answers (or failures) of the model; late: collected rounds after
    they were asked; at_hard_budget: applied at the hard budget before their thinking folds were ready; stale: none
    of their actions still fitted the view (logged, not applied); partly_stale: some did not; pending_fallbacks:
    rounds over the budget where the budget rule acted while a decision was pending."""
    entries = [a for rec in rounds for a in rec.get("actions") or ()
               if isinstance(a, Mapping) and a.get("kind") == "decision"]
    model = [a for a in entries if a.get("reason") not in PENDING_REASONS]
    return {"model_decisions": len(model),
            "late": sum(int(a.get("rounds_late") or 0) > 0 for a in model),
            "at_hard_budget": sum(bool(a.get("at_hard_budget")) for a in model),
            "stale": sum(bool(a.get("stale_decision")) for a in model),
            "partly_stale": sum(bool(a.get("stale")) and not a.get("stale_decision") for a in model),
            "pending_fallbacks": sum(a.get("reason") in PENDING_REASONS for a in entries)}
