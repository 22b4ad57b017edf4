"""Replay metrics: pure functions over a trajectory, the views a policy produced, and the per-round stats.

- **footprint** — peak view tokens / peak raw tokens; mean of view/raw over rounds; least-squares slope of view
  tokens per round after round 80 (≈0 means bounded; the raw history's own slope is reported beside it).
- **carried-value retention** — carried values are tokens an assistant tool call at round t uses that first
  appeared in an earlier *tool result* and are not in the pinned task text (system message + first user message).
  A token here is `metric_tokens`: any run of letters, digits and `_ . / : -` of 6+ characters holding a digit,
  `_`, `/`, `.` or `:` (ids, paths, `file.py:123`, `self.templated_file.templated_str`, `np.hstack`, 6+ digit
  numbers). The definition lives only in this module: no primitive, policy or extractor shares it, so the metric
  cannot check what a fold was built to keep. Two readings, each overall and for values last seen 10+ rounds
  earlier:
  * **presence** — the value occurs (substring) anywhere in the view the model got before that call;
  * **in context** — the value occurs on a view line that also holds a *plain word* (a letters-only token of 3+
    letters, not a stop word, not part of the value) of a tool-result line it came from. A bare list of values
    scores high on presence and zero in context; a line kept in its original wording scores on both.
- **prefix reuse** — share of each view's tokens that form an exact message prefix of the previous view (what a
  provider prompt cache / KV cache can reuse); token-weighted over all rounds after the first.
- **invalid views** — views a provider would reject (broken tool-call pairing); only external baselines can
  produce them, agentmem validates every view before sending it.
- **cost** — bookkeeping ms per round on the critical path (ingest + policy + primitives + store writes, thinker
  time excluded), and thinker seconds per model fold.
- **intervals** — `bootstrap_retention`: a retention column's 95 % interval over runs, or one memory's lead over
  another's with a paired interval (the same runs resampled for both); `bootstrap_ratio` does the same for any
  per-unit counts (task success on appworld-lite). A benchmark quotes one run of a handful of trajectories; the
  interval says which differences those runs can tell from chance.

Rounds count assistant messages from 0; "the view at round t" is what the model got before assistant turn t.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OLD_ROUNDS",
    "SLOPE_AFTER",
    "CarriedValue",
    "dict_text",
    "call_values",
    "metric_tokens",
    "plain_words",
    "carried_values_by_round",
    "view_text",
    "retention",
    "in_context",
    "prefix_reuse",
    "footprint",
    "cost",
    "summarize_rounds",
    "slope",
    "percentile",
    "RETENTION_COUNTS",
    "bootstrap_ratio",
    "bootstrap_retention",
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


# --- the metric's own notion of a value (shared with nothing a primitive uses) -----------------------------
_TOKEN = re.compile(r"[A-Za-z0-9_./:\-]+")
_EDGE = "./:-"
_MARKS = re.compile(r"[0-9_/.:]")
_WORD = re.compile(r"[A-Za-z]{3,}")
MIN_VALUE_CHARS = 6
_STOP_WORDS = frozenset("""
    the and for are but not you all any can had her was one our out day get has him his how man new now old see two
    way who boy did its let put say she too use that with have this will your from they know want been good much some
    time very when come here just like long make many more only over such take than them well were what into then
    there these those which while would could should about after again also because before being between both each
    other same than their where does done none true false null return self value values""".split())


def metric_tokens(text: str) -> list[str]:
    """Identifier-like tokens of `text` in order, distinct: 6+ characters holding a digit, `_`, `/`, `.` or `:`."""
    out: list[str] = []
    seen: set[str] = set()
    for m in _TOKEN.finditer(text or ""):
        tok = m.group(0).strip(_EDGE)
        if len(tok) < MIN_VALUE_CHARS or tok in seen or not _MARKS.search(tok):
            continue
        seen.add(tok)
        out.append(tok)
    return out


def plain_words(line: str) -> set[str]:
    """Letters-only tokens of 3+ letters standing on their own (not inside an identifier), lower-cased, no stop
    words: the words that give a value its meaning on a line."""
    out: set[str] = set()
    for m in _TOKEN.finditer(line):
        tok = m.group(0).strip(_EDGE)
        if _WORD.fullmatch(tok):
            w = tok.lower()
            if w not in _STOP_WORDS:
                out.add(w)
    return out


def call_values(message: Mapping[str, Any]) -> list[str]:
    """The tokens (`metric_tokens`) an assistant message's tool calls use, from their decoded arguments."""
    out: list[str] = []
    for tc in message.get("tool_calls") or []:
        _name, args = _call_parts(tc)
        for leaf in _decoded_args(args):
            for v in metric_tokens(leaf):
                if v not in out:
                    out.append(v)
    return out


# --- carried-value retention ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CarriedValue:
    """A value the call at `round` uses, first seen in a tool result, last seen `age` rounds earlier.

    `context` holds the plain words of the tool-result lines it appeared on (minus the value's own letters): what
    a view line must share with its source for the value to count as kept *in context*. A source line with no
    plain word (a file listing, a bare id) lends `near`: the plain words of its neighbouring lines and of the call
    that printed it; a view line then counts when it or a line next to it shares one of those.
    """

    value: str
    round: int
    first_index: int  # message index of its first appearance (a tool result)
    last_round: int  # round of the last message before the call that contains it
    context: frozenset[str] = frozenset()
    near: frozenset[str] = frozenset()

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


def _own_words(value: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", value)}


def _call_words(messages: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """tool_call_id → plain words of the call (its name and decoded arguments)."""
    out: dict[str, set[str]] = {}
    for m in messages:
        for tc in m.get("tool_calls") or []:
            name, args = _call_parts(tc)
            words = plain_words(name.replace("_", " "))
            for leaf in _decoded_args(args):
                for line in leaf.splitlines():
                    words |= plain_words(line)
            out[str(tc.get("id") or "")] = words
    return out


def carried_values_by_round(messages: Sequence[Mapping[str, Any]]) -> dict[int, list[CarriedValue]]:
    """For each round t, the values its tool calls carry from an earlier tool result (see the module docstring).

    Depends on the trajectory only, so one computation serves every policy replayed over it.
    """
    texts = [dict_text(m) for m in messages]
    rounds = _rounds_of(messages)
    task = _task_text(messages)
    tool_lines: dict[int, list[str]] = {j: texts[j].splitlines() for j, m in enumerate(messages)
                                        if m.get("role") == "tool"}
    call_words = _call_words(messages)
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
            own = _own_words(v)
            words: set[str] = set()
            near: set[str] = set()
            for j, lines in tool_lines.items():
                if j >= i or v not in texts[j]:
                    continue
                for k, line in enumerate(lines):
                    if v not in line:
                        continue
                    here = plain_words(line) - own
                    if here:
                        words |= here
                        continue
                    for n in (k - 1, k + 1):
                        if 0 <= n < len(lines):
                            near |= plain_words(lines[n])
                    near |= call_words.get(str(messages[j].get("tool_call_id") or ""), set())
            found.append(CarriedValue(value=v, round=t, first_index=first, last_round=rounds[last],
                                      context=frozenset(words), near=frozenset(near - own)))
        if found:
            out[t] = found
    return out


def in_context(value: CarriedValue, lines: Sequence[str]) -> bool:
    """The value stands on one of `lines` with a plain word of a line it came from (or, for a source line without
    plain words, next to a line sharing a word of its neighbours or of the call that printed it)."""
    for k, line in enumerate(lines):
        if value.value not in line:
            continue
        words = plain_words(line)
        if not value.context.isdisjoint(words):
            return True
        if value.near:
            around = words.union(*(plain_words(lines[n]) for n in (k - 1, k + 1) if 0 <= n < len(lines)))
            if not value.near.isdisjoint(around):
                return True
    return False


def retention(carried: Sequence[CarriedValue], view: Sequence[Mapping[str, Any]] | str,
              *, old_rounds: int = OLD_ROUNDS) -> dict[str, Any]:
    """How many of `carried` (one round's values) the view still holds (presence and in context), overall and
    for the old ones."""
    text = view if isinstance(view, str) else view_text(view)
    lines = text.splitlines() if carried else []
    present = {c.value for c in carried if c.value in text}
    placed = {c.value for c in carried if c.value in present and in_context(c, lines)}
    old = [c for c in carried if c.age >= old_rounds]
    return {"carried": len(carried), "carried_present": sum(c.value in present for c in carried),
            "carried_in_context": sum(c.value in placed for c in carried),
            "carried_old": len(old), "carried_old_present": sum(c.value in present for c in old),
            "carried_old_in_context": sum(c.value in placed for c in old),
            "lost": [c.value for c in carried if c.value not in present][:10]}


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


# the retention columns as (numerator, denominator) keys of a `summarize_rounds` per-trajectory entry
RETENTION_COUNTS: dict[str, tuple[str, str]] = {
    "retention": ("carried_present", "carried"),
    "retention_old": ("carried_old_present", "carried_old"),
    "in_context": ("carried_in_context", "carried"),
    "in_context_old": ("carried_old_in_context", "carried_old"),
}


def bootstrap_ratio(counts: Mapping[str, tuple[int, int]], baseline: Mapping[str, tuple[int, int]] | None = None,
                    *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """A pooled ratio over units (runs, tasks) with its confidence interval: the units are resampled with
    replacement and sum(numerators) / sum(denominators) recomputed (a percentile bootstrap). `counts`: unit ->
    (numerator, denominator); units with a zero denominator are left out.

    With `baseline` (the same units under another memory), the difference `counts - baseline` is estimated,
    paired: each resample draws the same units for both, so what the units have in common (how hard they are)
    cancels and only the memories' difference varies. Units missing from either side are left out. Deterministic
    for a given `seed`.

    Returns {"estimate", "low", "high", "runs"}: a ratio (or a difference of ratios) and its interval; "runs" is the
    number of units compared.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    other = baseline or {}
    ids = sorted(set(counts) & set(other)) if baseline is not None else sorted(counts)
    ids = [i for i in ids if counts[i][1] and (baseline is None or other[i][1])]
    if not ids:
        return {"estimate": None, "low": None, "high": None, "runs": 0}

    def ratio(of: Mapping[str, tuple[int, int]], sample: Sequence[str]) -> float:
        return sum(of[i][0] for i in sample) / sum(of[i][1] for i in sample)

    def stat(sample: Sequence[str]) -> float:
        return ratio(counts, sample) - (ratio(other, sample) if baseline is not None else 0.0)

    rng = random.Random(seed)
    draws = sorted(stat([ids[rng.randrange(len(ids))] for _ in ids]) for _ in range(resamples))
    tail = (1 - level) / 2 * 100
    return {"estimate": stat(ids), "low": percentile(draws, tail), "high": percentile(draws, 100 - tail),
            "runs": len(ids)}


def bootstrap_retention(runs: Sequence[Mapping[str, Any]], column: str,
                        baseline: Sequence[Mapping[str, Any]] | None = None, **options: Any) -> dict[str, Any]:
    """A retention column (`RETENTION_COUNTS`) over runs with its interval, or one memory's lead over another with
    a paired interval (`bootstrap_ratio`). Runs, not values, are resampled: the values of one run share its fold
    decisions, so they do not vary independently. `runs`, `baseline`: `summarize_rounds(...)["per_trajectory"]`."""
    if column not in RETENTION_COUNTS:
        raise ValueError(f"unknown retention column {column!r}; known: {', '.join(RETENTION_COUNTS)}")
    num, den = RETENTION_COUNTS[column]

    def counts(entries: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
        return {str(r["trajectory"]): (int(r.get(num) or 0), int(r.get(den) or 0)) for r in entries}

    return bootstrap_ratio(counts(runs), counts(baseline) if baseline is not None else None, **options)


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
    in_context: int = 0
    old: int = 0
    old_present: int = 0
    old_in_context: int = 0
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
            t.in_context += int(r.get("carried_in_context", 0))
            t.old += int(r.get("carried_old", 0))
            t.old_present += int(r.get("carried_old_present", 0))
            t.old_in_context += int(r.get("carried_old_in_context", 0))
            if r.get("reuse_total"):
                t.reused += int(r.get("reused_tokens", 0))
                t.reuse_total += int(r["reuse_total"])
            for a in r.get("actions") or []:
                kind = a.get("kind") if isinstance(a, Mapping) else str(a)
                t.actions[kind] = t.actions.get(kind, 0) + 1
        fp = footprint(rs, after=after)
        per.append({"trajectory": tid, "rounds": len(rs), **fp,
                    "carried": t.carried, "carried_present": t.present, "carried_in_context": t.in_context,
                    "carried_old_present": t.old_present, "carried_old_in_context": t.old_in_context,
                    "retention": t.present / t.carried if t.carried else None,
                    "in_context": t.in_context / t.carried if t.carried else None,
                    "carried_old": t.old, "retention_old": t.old_present / t.old if t.old else None,
                    "in_context_old": t.old_in_context / t.old if t.old else None,
                    "prefix_reuse": t.reused / t.reuse_total if t.reuse_total else None,
                    "actions": t.actions})
        acc.carried += t.carried
        acc.present += t.present
        acc.in_context += t.in_context
        acc.old += t.old
        acc.old_present += t.old_present
        acc.old_in_context += t.old_in_context
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
            "in_context": acc.in_context / acc.carried if acc.carried else None,
            "carried_old": acc.old,
            f"retention_old_{OLD_ROUNDS}": acc.old_present / acc.old if acc.old else None,
            f"in_context_old_{OLD_ROUNDS}": acc.old_in_context / acc.old if acc.old else None,
            "definition": "metric_tokens (agentmem.metrics; shares no code with any primitive): presence = "
                          "substring of the view; in context = on a view line with a plain word of its source line",
        },
        "prefix_reuse": acc.reused / acc.reuse_total if acc.reuse_total else None,
        "invalid_views": sum(1 for r in rounds if r.get("invalid_view")),
        "cost": cost(rounds),
        "actions": acc.actions,
        "per_trajectory": per,
    }
