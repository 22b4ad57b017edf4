"""Divergence check: what does recognising "is this re-sent history still my branch, and where does it leave it"
cost per round, at 1,000 and 10,000 rounds?

    python bench/divergence_check.py                  # 1,000 and 10,000 rounds
    python bench/divergence_check.py --rounds 200     # any sizes

The agent re-sends its whole history every round. A synthetic agent run (agentmem.testing.synthetic_history)
grows one round at a time through MemorySession.ingest into a fresh SQLite file; before each ingest the check
alone (`MemorySession._common_prefix`, the longest common prefix of the re-sent history and the current branch)
is timed. Then, at the final length:

- cached, unchanged: the default. Messages equal to those passed last time (C-speed list comparisons that
  short-cut on identity), with equal content, are known unchanged; anything else is parsed and re-hashed.
- full: every message re-hashed (verify="full").
- ends: first and last only (verify="ends", O(1), misses edits in the middle).
- cached, one message edited in the middle (a new dict at a random position): where the history diverges.
- cached, in-place redaction (same dict, new content string).
- cached, every dict rebuilt (an agent that re-creates its messages each round): equal dicts, compared at C speed.

Prints a table and writes bench/results/divergence_check.json. Timings are wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agentmem.policies import NoOpPolicy  # noqa: E402
from agentmem.replay import machine_info  # noqa: E402
from agentmem.session import MemorySession  # noqa: E402
from agentmem.store import Store  # noqa: E402
from agentmem.testing import synthetic_history  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _ms(fn: Any, reps: int) -> float:
    """Median wall-clock milliseconds of fn() over reps runs."""
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_size(rounds: int, *, output_chars: int, seed: int) -> dict[str, Any]:
    history = synthetic_history(rounds, output_chars=output_chars)
    ends = [i for i, m in enumerate(history) if m["role"] == "assistant"][1:] + [len(history)]
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "div.db")
        s = MemorySession(store, "div", policy=NoOpPolicy())
        check_ms: list[float] = []
        ingest_ms: list[float] = []
        for end in ends:
            sent = history[:end]  # the agent's list: the same message objects every round, one round longer
            stored = s.message_count
            t0 = time.perf_counter()
            common, _ = s._common_prefix(sent)
            t1 = time.perf_counter()
            s.ingest(sent)
            t2 = time.perf_counter()
            assert common == stored  # the stored path is a prefix of what the agent sends
            check_ms.append((t1 - t0) * 1000)
            ingest_ms.append((t2 - t1) * 1000)
        n = len(history)
        final: dict[str, float] = {}
        final["cached, unchanged"] = _ms(lambda: s._common_prefix(history), 21)
        pos = rng.randrange(n // 4, 3 * n // 4)
        edited = list(history)
        edited[pos] = {**history[pos], "content": "edited: " + str(history[pos].get("content"))}
        result: list[int] = []
        final["cached, one middle message replaced"] = _ms(lambda: result.append(s._common_prefix(edited)[0]), 9)
        assert result[-1] == pos, (result[-1], pos)
        redacted = [dict(m) for m in history]
        s.ingest(redacted)  # the agent now holds these dicts
        assert s._common_prefix(redacted)[0] == n
        keep = redacted[pos]["content"]
        redacted[pos]["content"] = "[redacted]"
        final["cached, in-place redaction"] = _ms(lambda: result.append(s._common_prefix(redacted)[0]), 9)
        assert result[-1] == pos
        redacted[pos]["content"] = keep
        rebuilt = [dict(m) for m in history]
        final["cached, every dict rebuilt"] = _ms(lambda: s._common_prefix(rebuilt), 3)
        s.verify = "full"
        final["full re-hash"] = _ms(lambda: s._common_prefix(history), 3)
        s.verify = "ends"
        final["ends (first and last only)"] = _ms(lambda: s._common_prefix(history), 21)
        store.close()
    return {
        "rounds": rounds, "messages": n,
        "check_ms_per_round": {"median": statistics.median(check_ms), "mean": statistics.fmean(check_ms),
                               "p95": _pct(check_ms, 0.95), "max": max(check_ms),
                               "last_10pct_median": statistics.median(check_ms[-max(1, len(check_ms) // 10):])},
        "ingest_ms_per_round_median": statistics.median(ingest_ms),
        "at_final_length_ms": final,
        "edited_position": pos,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--output-chars", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    results = [run_size(r, output_chars=args.output_chars, seed=args.seed) for r in args.rounds]
    print("divergence check per round (ms): the re-sent history against the current branch")
    print(f"{'rounds':>7} {'messages':>8} {'median':>7} {'p95':>7} {'max':>7} {'last10%':>8} {'ingest':>7}")
    for r in results:
        c = r["check_ms_per_round"]
        print(f"{r['rounds']:>7,} {r['messages']:>8,} {c['median']:>7.3f} {c['p95']:>7.3f} {c['max']:>7.2f} "
              f"{c['last_10pct_median']:>8.3f} {r['ingest_ms_per_round_median']:>7.2f}")
    print("\nat the final length, one check (median ms):")
    names = list(results[0]["at_final_length_ms"])
    print(f"{'':40s}" + "".join(f"{r['rounds']:>12,}" for r in results))
    for name in names:
        print(f"{name:40s}" + "".join(f"{r['at_final_length_ms'][name]:>12.3f}" for r in results))
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine_info(),
               "load_avg": os.getloadavg(), "results": results}
    (args.out / "divergence_check.json").write_text(json.dumps(payload, indent=1))
    print(f"\nwrote {args.out / 'divergence_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
