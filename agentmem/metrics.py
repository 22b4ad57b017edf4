"""Replay metrics: pure functions over a trajectory, the views a policy produced, and the per-round stats.

- **footprint** — peak view tokens / peak raw tokens; mean of view/raw over rounds; least-squares slope of view
  tokens per round after round 80 (≈0 means bounded; the raw history's own slope is reported beside it).
- **carried-value retention** — identifier-like values (`extract_values`: ids, paths, numbers with context) that
  an assistant tool call at round t uses, that first appeared in an earlier *tool result* and not in the pinned
  task text (system message + first user message): the share still present (as a substring) in the view the
  model got before that call; overall, and for values last seen 10+ rounds earlier.
- **prefix reuse** — share of each view's tokens that form an exact message prefix of the previous view (what a
  provider prompt cache / KV cache can reuse); token-weighted over all rounds after the first.
- **invalid views** — views a provider would reject (broken tool-call pairing); only external baselines can
  produce them, agentmem validates every view before sending it.
- **cost** — bookkeeping ms per round on the critical path (ingest + policy + primitives + store writes, thinker
  time excluded), and thinker seconds per model fold.

Rounds count assistant messages from 0; "the view at round t" is what the model got before assistant turn t.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmem.values import extract_values

__all__ = [
    "OLD_ROUNDS",
    "SLOPE_AFTER",
    "CarriedValue",
    "dict_text",
    "call_values",
    "carried_values_by_round",
    "view_text",
    "retention",
    "prefix_reuse",
    "footprint",
    "cost",
    "summarize_rounds",
    "slope",
    "percentile",
]

OLD_ROUNDS = 10  # "values last seen 10+ rounds earlier"
SLOPE_AFTER = 80  # footprint slope is fitted over rounds >= this


# --- text of OpenAI-format message dicts --------------------------------------------------------------------
def _call_parts(tc: Mapping[str, Any]) -> tuple[str, str]:
    fn = tc.get("function")
    if isinstance(fn, Mapping):
        return str(fn.get("name") or ""), str(fn.get("arguments") or "")
    return str(tc.get("name") or ""), str(tc.get("arguments") or "")


def _leaves(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield str(obj)


def _decoded_args(arguments: str) -> list[str]:
    try:
        return list(_leaves(json.loads(arguments or "{}")))
    except (json.JSONDecodeError, RecursionError):
        return [arguments]


def dict_text(message: Mapping[str, Any]) -> str:
    """All text of one message dict: content (string or text parts) and tool calls (raw and decoded arguments).

    Decoded argument strings are included so a value written with JSON escapes in a call still matches its
    plain occurrence elsewhere.
    """
    parts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts.extend(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    for tc in message.get("tool_calls") or []:
        name, args = _call_parts(tc)
        parts.append(f"{name}({args})")
        parts.extend(_decoded_args(args))
    return "\n".join(parts)


def view_text(view: Sequence[Mapping[str, Any]]) -> str:
    """The searchable text of a whole view."""
    return "\n".join(dict_text(m) for m in view)


def call_values(message: Mapping[str, Any]) -> list[str]:
    """Identifier-like values an assistant message's tool calls use (from their decoded arguments)."""
    out: list[str] = []
    for tc in message.get("tool_calls") or []:
        _name, args = _call_parts(tc)
        for leaf in _decoded_args(args):
            for v in extract_values(leaf):
                if v not in out:
                    out.append(v)
    return out


# --- carried-value retention ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CarriedValue:
    """A value the call at `round` uses, first seen in a tool result, last seen `age` rounds earlier."""

    value: str
    round: int
    first_index: int  # message index of its first appearance (a tool result)
    last_round: int  # round of the last message before the call that contains it

    @property
    def age(self) -> int:
        return self.round - self.last_round


def _rounds_of(messages: Sequence[Mapping[str, Any]]) -> list[int]:
    """Round of each message: the index of the latest assistant turn at or before it (-1 before the first)."""
    out, r = [], -1
    for m in messages:
        if m.get("role") == "assistant":
            r += 1
        out.append(r)
    return out


def _task_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The pinned task: a leading system message and the first user message."""
    parts = []
    for m in messages:
        if m.get("role") == "system" and not parts:
            parts.append(dict_text(m))
            continue
        if m.get("role") == "user":
            parts.append(dict_text(m))
        break
    return "\n".join(parts)


def carried_values_by_round(messages: Sequence[Mapping[str, Any]]) -> dict[int, list[CarriedValue]]:
    """For each round t, the values its tool calls carry from an earlier tool result (see the module docstring).

    Depends on the trajectory only, so one computation serves every policy replayed over it.
    """
    texts = [dict_text(m) for m in messages]
    rounds = _rounds_of(messages)
    task = _task_text(messages)
    out: dict[int, list[CarriedValue]] = {}
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        t = rounds[i]
        found: list[CarriedValue] = []
        for v in call_values(m):
            if v in task:
                continue
            first = next((j for j in range(i) if v in texts[j]), None)
            if first is None or messages[first].get("role") != "tool":
                continue
            last = next(j for j in range(i - 1, first - 1, -1) if v in texts[j])
            found.append(CarriedValue(value=v, round=t, first_index=first, last_round=rounds[last]))
        if found:
            out[t] = found
    return out


def retention(carried: Sequence[CarriedValue], view: Sequence[Mapping[str, Any]] | str,
              *, old_rounds: int = OLD_ROUNDS) -> dict[str, Any]:
    """How many of `carried` (one round's values) the view still holds, overall and for the old ones."""
    text = view if isinstance(view, str) else view_text(view)
    present = [c for c in carried if c.value in text]
    old = [c for c in carried if c.age >= old_rounds]
    old_present = [c for c in old if c.value in text]
    return {"carried": len(carried), "carried_present": len(present), "carried_old": len(old),
            "carried_old_present": len(old_present),
            "lost": [c.value for c in carried if c.value not in text][:10]}


# --- prefix reuse -------------------------------------------------------------------------------------------
def prefix_reuse(previous: Sequence[Mapping[str, Any]] | None, current: Sequence[Mapping[str, Any]],
                 tokens: Sequence[int] | Callable[[Mapping[str, Any]], int]) -> tuple[int, int]:
    """(tokens of `current` that are an exact message prefix of `previous`, tokens of `current`).

    `tokens` is the per-message token count of `current` (a list aligned with it, or a function).
    """
    toks = list(tokens) if not callable(tokens) else [tokens(m) for m in current]
    total = sum(toks)
    if not previous:
        return 0, total
    k = 0
    n = min(len(previous), len(current))
    while k < n and previous[k] == current[k]:
        k += 1
    return sum(toks[:k]), total


# --- aggregates ---------------------------------------------------------------------------------------------
def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ys over xs (None for fewer than 2 distinct xs)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank-with-interpolation percentile, q in [0, 100]."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _by_trajectory(rounds: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rounds:
        out.setdefault(str(r.get("trajectory", "")), []).append(r)
    return out


def footprint(rounds: Sequence[Mapping[str, Any]], *, after: int = SLOPE_AFTER) -> dict[str, Any]:
    """Footprint of one trajectory's rounds (dicts with round, raw_tokens, view_tokens)."""
    if not rounds:
        return {"peak_raw": 0, "peak_view": 0, "peak_ratio": None, "mean_ratio": None, "mean_view": None,
                "slope_view": None, "slope_raw": None}
    peak_raw = max(r["raw_tokens"] for r in rounds)
    peak_view = max(r["view_tokens"] for r in rounds)
    late = [r for r in rounds if r["round"] >= after]
    xs = [r["round"] for r in late]
    return {
        "peak_raw": peak_raw,
        "peak_view": peak_view,
        "peak_ratio": peak_view / peak_raw if peak_raw else None,
        "mean_ratio": sum(r["view_tokens"] / r["raw_tokens"] for r in rounds) / len(rounds),
        "mean_view": sum(r["view_tokens"] for r in rounds) / len(rounds),
        "slope_view": slope(xs, [r["view_tokens"] for r in late]),
        "slope_raw": slope(xs, [r["raw_tokens"] for r in late]),
    }


def cost(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Critical-path bookkeeping per round and thinker time per model fold."""
    ms = [float(r.get("bookkeeping_ms", 0.0)) + float(r.get("record_ms", 0.0)) for r in rounds]
    thinker_ms = sum(float(r.get("thinker_ms", 0.0)) for r in rounds)
    model_folds = sum(1 for r in rounds for a in r.get("actions") or []
                      if isinstance(a, Mapping) and ("thinker" in a or "thinker failed" in str(a.get("fallback", ""))))
    return {
        "ms_per_round_mean": sum(ms) / len(ms) if ms else None,
        "ms_per_round_p50": percentile(ms, 50),
        "ms_per_round_p95": percentile(ms, 95),
        "ms_per_round_max": max(ms) if ms else None,
        "thinker_s_total": thinker_ms / 1000,
        "model_folds": model_folds,
        "thinker_s_per_fold": thinker_ms / 1000 / model_folds if model_folds else None,
    }


@dataclass
class _Acc:
    carried: int = 0
    present: int = 0
    old: int = 0
    old_present: int = 0
    reused: int = 0
    reuse_total: int = 0
    actions: dict[str, int] = field(default_factory=dict)


def summarize_rounds(rounds: Sequence[Mapping[str, Any]], *, after: int = SLOPE_AFTER) -> dict[str, Any]:
    """All metrics over the rounds of any number of trajectories (as written to rounds.jsonl).

    Footprint ratios are averaged over trajectories (each trajectory counts once); retention and prefix reuse
    are pooled over rounds (each carried value / each view token counts once); cost is pooled over rounds.
    """
    per: list[dict[str, Any]] = []
    acc = _Acc()
    for tid, rs in _by_trajectory(rounds).items():
        rs = sorted(rs, key=lambda r: r["round"])
        t = _Acc()
        for r in rs:
            t.carried += int(r.get("carried", 0))
            t.present += int(r.get("carried_present", 0))
            t.old += int(r.get("carried_old", 0))
            t.old_present += int(r.get("carried_old_present", 0))
            if r.get("reuse_total"):
                t.reused += int(r.get("reused_tokens", 0))
                t.reuse_total += int(r["reuse_total"])
            for a in r.get("actions") or []:
                kind = a.get("kind") if isinstance(a, Mapping) else str(a)
                t.actions[kind] = t.actions.get(kind, 0) + 1
        fp = footprint(rs, after=after)
        per.append({"trajectory": tid, "rounds": len(rs), **fp,
                    "carried": t.carried, "retention": t.present / t.carried if t.carried else None,
                    "carried_old": t.old, "retention_old": t.old_present / t.old if t.old else None,
                    "prefix_reuse": t.reused / t.reuse_total if t.reuse_total else None,
                    "actions": t.actions})
        acc.carried += t.carried
        acc.present += t.present
        acc.old += t.old
        acc.old_present += t.old_present
        acc.reused += t.reused
        acc.reuse_total += t.reuse_total
        for k, v in t.actions.items():
            acc.actions[k] = acc.actions.get(k, 0) + v

    def mean(key: str) -> float | None:
        vals = [p[key] for p in per if p.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "trajectories": len(per),
        "rounds": len(rounds),
        "footprint": {
            "peak_ratio": mean("peak_ratio"),
            "mean_ratio": mean("mean_ratio"),
            "max_peak_view": max((p["peak_view"] for p in per), default=0),
            "mean_peak_view": mean("peak_view"),
            "mean_peak_raw": mean("peak_raw"),
            f"slope_view_after_{after}": mean("slope_view"),
            f"slope_raw_after_{after}": mean("slope_raw"),
            "trajectories_past_round_{}".format(after): sum(1 for p in per if p["slope_view"] is not None),
        },
        "retention": {
            "carried": acc.carried,
            "retention": acc.present / acc.carried if acc.carried else None,
            "carried_old": acc.old,
            f"retention_old_{OLD_ROUNDS}": acc.old_present / acc.old if acc.old else None,
        },
        "prefix_reuse": acc.reused / acc.reuse_total if acc.reuse_total else None,
        "invalid_views": sum(1 for r in rounds if r.get("invalid_view")),
        "cost": cost(rounds),
        "actions": acc.actions,
        "per_trajectory": per,
    }
