"""How fast is the local thinker? llama.cpp and transformers side by side, on the same shipped GGUF, in one run.

    python bench/thinker_speed.py                         # llama.cpp full + transformers short; table + JSON
    python bench/thinker_speed.py --transformers skip     # llama.cpp only
    python bench/thinker_speed.py --model smollm2 --prompt-tokens 1000    # the small test model (seconds)

Each backend runs in its own subprocess, so load time and peak RSS are its own (transformers' fp32 copy of the
model would otherwise inflate llama.cpp's RSS). llama.cpp: load (from the joined GGUF), one fold-sized call over a
~3,000-token agent span with the new-token cap a summarize-by-thinking fold uses (prefill and decode rates from
llama.cpp's own timings), then a second call that shares the span (KV prefix reuse). transformers: the same model
through LocalThinker (de-quantized fp32); "short" = a ~500-token prompt and 16 new tokens, enough for its rates
without taking a quarter of an hour. Targets (issue 10, 2-core CPU): load <= 10 s, decode >= 15 tok/s, prefill
>= 50 tok/s, RSS <= 3 GB, <= 60 s for a 3,000-token span. Writes bench/results/thinker_speed.json.
The machine's load average is recorded at start and end: timings on a shared box are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["agent_span_messages", "main", "measure_backend"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "thinker_speed.json"
TARGETS = {"load_s": 10.0, "decode_tok_s": 15.0, "prefill_tok_s": 50.0, "rss_gb": 3.0, "fold_s": 60.0}

FOLD_SYSTEM = (
    "You maintain the working memory of a coding agent. Compress the trajectory span below into a memory note: "
    "keep file paths, function names, commands, error messages, test results, decisions and open questions; drop "
    "everything that can be re-derived. Write terse bullet points."
)

_STEPS = [
    ("I'll start by looking at the repository layout.", "bash", "ls -R src tests | head -40",
     "src/\n  inventory/\n    __init__.py\n    models.py\n    pricing.py\n    importer.py\ntests/\n  test_pricing.py\n"
     "  test_importer.py\n  conftest.py\n"),
    ("Let me read the pricing module where the discount bug was reported.", "read_file", "src/inventory/pricing.py",
     "from decimal import Decimal, ROUND_HALF_UP\n\nfrom .models import Item, Order\n\n\n"
     "def unit_price(item: Item, qty: int) -> Decimal:\n    price = item.base_price\n    for tier in item.tiers:\n"
     "        if qty > tier.min_qty:\n            price = tier.price\n    return price\n\n\n"
     "def order_total(order: Order) -> Decimal:\n    total = sum(unit_price(l.item, l.qty) * l.qty for l in order.lines)\n"
     "    if order.coupon:\n        total -= total * order.coupon.percent / 100\n"
     "    return total.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)\n"),
    ("Running the pricing tests to see the failure.", "bash", "python -m pytest tests/test_pricing.py -q",
     "..F.F.\n=================================== FAILURES ===================================\n"
     "____________________________ test_tier_boundary ____________________________\n"
     "    def test_tier_boundary():\n        item = make_item(base='10.00', tiers=[(10, '9.00'), (50, '8.00')])\n"
     ">       assert unit_price(item, 10) == Decimal('9.00')\nE       AssertionError: assert Decimal('10.00') == "
     "Decimal('9.00')\ntests/test_pricing.py:31: AssertionError\n____________________________ test_coupon_rounding"
     " ____________________________\n>       assert order_total(order) == Decimal('26.99')\nE       AssertionError: "
     "assert Decimal('27.00') == Decimal('26.99')\ntests/test_pricing.py:58: AssertionError\n"
     "2 failed, 4 passed in 0.21s\n"),
    ("The tier comparison is off by one: `qty > tier.min_qty` should be `>=`. Fixing it.", "edit_file",
     "src/inventory/pricing.py: replace 'if qty > tier.min_qty:' with 'if qty >= tier.min_qty:'",
     "Edited src/inventory/pricing.py (1 line changed).\n"),
    ("Re-running the tests.", "bash", "python -m pytest tests/test_pricing.py -q",
     ".....F\n____________________________ test_coupon_rounding ____________________________\n"
     ">       assert order_total(order) == Decimal('26.99')\nE       AssertionError: assert Decimal('27.00') == "
     "Decimal('26.99')\n1 failed, 5 passed in 0.19s\n"),
    ("The coupon should be applied per line before rounding, according to docs/pricing.md. Checking.",
     "bash", "grep -n -A6 'coupon' docs/pricing.md",
     "41:## Coupons\n42:A coupon's percentage applies to each line after tier pricing. Each discounted line is\n"
     "43:rounded half-up to the cent, and the order total is the sum of the rounded lines.\n"
     "44:Coupons never apply to shipping.\n"),
    ("Rewriting order_total to round per line.", "edit_file",
     "src/inventory/pricing.py: order_total -> per-line discount and rounding",
     "Edited src/inventory/pricing.py (6 lines changed).\n"),
    ("Running the whole suite now.", "bash", "python -m pytest -q",
     "............F....\n____________________________ test_import_csv_semicolon ____________________________\n"
     "    def test_import_csv_semicolon(tmp_path):\n>       rows = load_rows(tmp_path / 'stock.csv')\n"
     "src/inventory/importer.py:22: in load_rows\n    qty = int(row['qty'])\nE   KeyError: 'qty'\n"
     "1 failed, 16 passed in 0.88s\n"),
    ("An unrelated importer failure: the CSV uses ';' as delimiter. Let me look at the importer.",
     "read_file", "src/inventory/importer.py",
     "import csv\nfrom pathlib import Path\n\n\ndef load_rows(path: Path) -> list[dict]:\n    with open(path, "
     "newline='') as fh:\n        reader = csv.DictReader(fh)\n        out = []\n        for row in reader:\n"
     "            qty = int(row['qty'])\n            out.append({'sku': row['sku'], 'qty': qty})\n    return out\n"),
    ("Using csv.Sniffer to detect the delimiter.", "edit_file",
     "src/inventory/importer.py: sniff delimiter from the first 2 KiB",
     "Edited src/inventory/importer.py (4 lines changed).\n"),
    ("Full suite again.", "bash", "python -m pytest -q", "................. \n17 passed in 0.84s\n"),
]


def agent_span_messages(target_tokens: int, count_tokens=None, *, question: str = "Memory note:") -> list[dict]:
    """A realistic agent trajectory span (tool calls and outputs) as one fold request of ~target tokens
    (counted with tiktoken by default; the model's own tokenizer reports its count in the result)."""
    if count_tokens is None:
        from agentmem.tokens import TokenCounter

        counter = TokenCounter("gpt-4o")
        count_tokens = counter.messages

    def render(n_steps: int) -> str:
        lines = []
        for i in range(n_steps):
            thought, tool, arg, output = _STEPS[i % len(_STEPS)]
            rnd = f" (round {i // len(_STEPS) + 1})" if i >= len(_STEPS) else ""
            lines.append(f"[step {i + 1}] assistant: {thought}{rnd}\n[step {i + 1}] call {tool}: {arg}\n"
                         f"[step {i + 1}] result:\n{output}")
        return "\n".join(lines)

    n = 1
    while True:
        msgs = [{"role": "system", "content": FOLD_SYSTEM},
                {"role": "user", "content": "Trajectory span to fold:\n\n" + render(n) + "\n\n" + question}]
        if count_tokens(msgs) >= target_tokens or n > 500:
            return msgs
        n += 1


def _rss_gb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, GB."""
    cur = peak = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024 / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return round(cur, 2), round(peak, 2)


def measure_backend(backend: str, model: str, *, prompt_tokens: int, max_new_tokens: int, threads: int | None
                    ) -> dict:
    """One backend in this process: load, a fold-sized call, and (llama.cpp) a call that reuses the span's KV."""
    from agentmem.thinkers import ThinkRequest, make_thinker

    spec = f"{'llamacpp' if backend == 'llama.cpp' else 'transformers'}:{model}"
    kw = {}
    if threads:
        kw = {"n_threads": threads, "n_threads_batch": threads} if backend == "llama.cpp" else {"num_threads": threads}
    th = make_thinker(spec, **kw)
    res: dict = {"backend": backend, "model": th.label, "spec": spec, "prompt_tokens_target": prompt_tokens,
                 "max_new_tokens": max_new_tokens}
    if backend == "llama.cpp":
        th.gguf_path()  # the join from the installed parts is a one-time step, not load time
        res["threads"] = {"decode": th.n_threads, "prompt": th.n_threads_batch}
    t0 = time.perf_counter()
    th.load()
    res["load_s"] = round(time.perf_counter() - t0, 2)
    if backend == "transformers":
        res["loaded_from"] = th.loaded_from
        import torch

        res["threads"] = torch.get_num_threads()
    print(f"[{backend}] load {res['load_s']} s", flush=True)
    msgs = agent_span_messages(prompt_tokens)
    r = th.think(ThinkRequest(messages=msgs, max_new_tokens=max_new_tokens, purpose="fold"))
    prefill = (r.tokens_in - r.cached_tokens) / r.prefill_seconds if r.prefill_seconds > 0 else None
    decode = (r.tokens_out - 1) / r.decode_seconds if r.decode_seconds > 0 and r.tokens_out > 1 else None
    res["fold"] = {"tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "seconds": round(r.seconds, 2),
                   "prefill_s": round(r.prefill_seconds, 2), "decode_s": round(r.decode_seconds, 2),
                   "text": r.text}
    res["prefill_tok_s"] = round(prefill, 1) if prefill else None
    res["decode_tok_s"] = round(decode, 1) if decode else None
    print(f"[{backend}] fold call {r.tokens_in} in / {r.tokens_out} out: {r.seconds:.1f} s "
          f"(prefill {res['prefill_tok_s']} tok/s, decode {res['decode_tok_s']} tok/s)", flush=True)
    if backend == "llama.cpp":
        again = agent_span_messages(prompt_tokens, question="List the files the agent edited:")
        r2 = th.think(ThinkRequest(messages=again, max_new_tokens=16, purpose="fold"))
        res["same_span_again"] = {"tokens_in": r2.tokens_in, "cached_tokens": r2.cached_tokens,
                                  "seconds": round(r2.seconds, 2)}
        print(f"[{backend}] same span, new question: {r2.cached_tokens}/{r2.tokens_in} prompt tokens from the KV "
              f"cache, {r2.seconds:.1f} s", flush=True)
    res["rss_gb"], res["rss_peak_gb"] = _rss_gb()
    return res


def _run_child(args: list[str], timeout_s: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    sys.stderr.write(out.stderr[-4000:])
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"error": f"exit {out.returncode}: {out.stderr.strip()[-500:]}"}
    res = json.loads(lines[-1])
    res["child_wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def _fmt(v: object, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(rows: list[dict]) -> str:
    head = ["backend", "load s", "prefill tok/s", "decode tok/s", "peak RSS GB", "fold call s", "in/out tok",
            "KV reuse"]
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['backend']} | {r['error']}")
            continue
        f = r["fold"]
        reuse = r.get("same_span_again")
        lines.append(" | ".join([
            r["backend"], _fmt(r["load_s"], 2), _fmt(r["prefill_tok_s"]), _fmt(r["decode_tok_s"]),
            _fmt(r["rss_peak_gb"], 2), _fmt(f["seconds"]), f"{f['tokens_in']}/{f['tokens_out']}",
            f"{reuse['cached_tokens']}/{reuse['tokens_in']} in {reuse['seconds']} s" if reuse else "-"]))
    t = TARGETS
    lines.append(f"targets (llama.cpp, 2-core CPU): load <= {t['load_s']:.0f} s, prefill >= {t['prefill_tok_s']:.0f} "
                 f"tok/s, decode >= {t['decode_tok_s']:.0f} tok/s, RSS <= {t['rss_gb']:.0f} GB, fold call <= "
                 f"{t['fold_s']:.0f} s")
    return "\n".join(lines)


def verdict(r: dict) -> dict:
    """Which targets one backend's figures meet (None where it was not measured)."""
    if "error" in r:
        return {}
    return {"load": r["load_s"] <= TARGETS["load_s"],
            "prefill": r["prefill_tok_s"] is not None and r["prefill_tok_s"] >= TARGETS["prefill_tok_s"],
            "decode": r["decode_tok_s"] is not None and r["decode_tok_s"] >= TARGETS["decode_tok_s"],
            "rss": r["rss_peak_gb"] <= TARGETS["rss_gb"],
            "fold_s": r["fold"]["seconds"] <= TARGETS["fold_s"]}


def main(argv: list[str] | None = None) -> int:
    from agentmem.primitives import SummarizeConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="local", help='"local" (the offline default GGUF), "smollm2", or a .gguf path')
    ap.add_argument("--prompt-tokens", type=int, default=3000)
    ap.add_argument("--max-new-tokens", type=int, default=SummarizeConfig().max_new_tokens,
                    help="new-token cap of the fold call (default: what a summarize-by-thinking fold asks for)")
    ap.add_argument("--transformers", choices=("short", "full", "skip"), default="short",
                    help="short: ~500-token prompt, 16 new tokens; full: same call as llama.cpp; skip")
    ap.add_argument("--transformers-timeout", type=float, default=900.0,
                    help="give up on the transformers side after this many seconds (its first load de-quantizes)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for both backends (default: each its own)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--one", choices=("llama.cpp", "transformers"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:  # child process: one backend, JSON on the last line
        print(json.dumps(measure_backend(a.one, a.model, prompt_tokens=a.prompt_tokens,
                                         max_new_tokens=a.max_new_tokens, threads=a.threads)))
        return 0
    common = ["--model", a.model] + (["--threads", str(a.threads)] if a.threads else [])
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
                 "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                 "loadavg_start": [round(x, 2) for x in os.getloadavg()], "targets": TARGETS}
    t0 = time.perf_counter()
    rows = [_run_child(["--one", "llama.cpp", "--prompt-tokens", str(a.prompt_tokens), "--max-new-tokens",
                        str(a.max_new_tokens), *common], timeout_s=900)]
    rows[0].setdefault("backend", "llama.cpp")
    if a.transformers != "skip":
        short = a.transformers == "short"
        tr = _run_child(["--one", "transformers", "--prompt-tokens", str(500 if short else a.prompt_tokens),
                         "--max-new-tokens", str(16 if short else a.max_new_tokens), *common],
                        timeout_s=a.transformers_timeout)
        tr.setdefault("backend", "transformers")
        tr["mode"] = a.transformers
        rows.append(tr)
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["backends"] = rows
    res["meets_targets"] = {r["backend"]: verdict(r) for r in rows}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(rows))
    print(f"load average {res['loadavg_start']} -> {res['loadavg_end']} on {res['cpus']} CPUs; "
          f"llama.cpp meets: {res['meets_targets'].get('llama.cpp')}")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
