"""How fast is a local thinker? Load time (first and cached reload), prefill and decode speed, one fold-sized call.

    python bench/thinker_speed.py smollm2
    python bench/thinker_speed.py local --max-new-tokens 48 --cold
    python bench/thinker_speed.py local:Qwen/Qwen3-0.6B --json out/qwen3.json

--cold deletes this model's dequantized-weights cache first, so the first load is the real first-ever load (GGUF
dequantization); the second load then comes from the safetensors cache. Prints a summary and writes JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from agentmem.thinkers import ThinkRequest, make_thinker

__all__ = ["agent_span_messages", "main", "measure"]

FOLD_SYSTEM = (
    "You maintain the working memory of a coding agent. Compress the trajectory span below into a memory note: "
    "keep file paths, function names, commands, error messages, test results, decisions and open questions; drop "
    "everything that can be re-derived. Write terse bullet points."
)

_STEPS = [
    ("assistant", "I'll start by looking at the repository layout.", "bash", "ls -R src tests | head -40",
     "src/\n  inventory/\n    __init__.py\n    models.py\n    pricing.py\n    importer.py\ntests/\n  test_pricing.py\n"
     "  test_importer.py\n  conftest.py\n"),
    ("assistant", "Let me read the pricing module where the discount bug was reported.", "read_file",
     "src/inventory/pricing.py",
     "from decimal import Decimal, ROUND_HALF_UP\n\nfrom .models import Item, Order\n\n\n"
     "def unit_price(item: Item, qty: int) -> Decimal:\n    price = item.base_price\n    for tier in item.tiers:\n"
     "        if qty > tier.min_qty:\n            price = tier.price\n    return price\n\n\n"
     "def order_total(order: Order) -> Decimal:\n    total = sum(unit_price(l.item, l.qty) * l.qty for l in order.lines)\n"
     "    if order.coupon:\n        total -= total * order.coupon.percent / 100\n"
     "    return total.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)\n"),
    ("assistant", "Running the pricing tests to see the failure.", "bash", "python -m pytest tests/test_pricing.py -q",
     "..F.F.\n=================================== FAILURES ===================================\n"
     "____________________________ test_tier_boundary ____________________________\n"
     "    def test_tier_boundary():\n        item = make_item(base='10.00', tiers=[(10, '9.00'), (50, '8.00')])\n"
     ">       assert unit_price(item, 10) == Decimal('9.00')\nE       AssertionError: assert Decimal('10.00') == "
     "Decimal('9.00')\ntests/test_pricing.py:31: AssertionError\n____________________________ test_coupon_rounding"
     " ____________________________\n>       assert order_total(order) == Decimal('26.99')\nE       AssertionError: "
     "assert Decimal('27.00') == Decimal('26.99')\ntests/test_pricing.py:58: AssertionError\n"
     "2 failed, 4 passed in 0.21s\n"),
    ("assistant", "The tier comparison is off by one: `qty > tier.min_qty` should be `>=`. Fixing it.", "edit_file",
     "src/inventory/pricing.py: replace 'if qty > tier.min_qty:' with 'if qty >= tier.min_qty:'",
     "Edited src/inventory/pricing.py (1 line changed).\n"),
    ("assistant", "Re-running the tests.", "bash", "python -m pytest tests/test_pricing.py -q",
     ".....F\n____________________________ test_coupon_rounding ____________________________\n"
     ">       assert order_total(order) == Decimal('26.99')\nE       AssertionError: assert Decimal('27.00') == "
     "Decimal('26.99')\n1 failed, 5 passed in 0.19s\n"),
    ("assistant", "The coupon should be applied per line before rounding, according to docs/pricing.md. Checking.",
     "bash", "grep -n -A6 'coupon' docs/pricing.md",
     "41:## Coupons\n42:A coupon's percentage applies to each line after tier pricing. Each discounted line is\n"
     "43:rounded half-up to the cent, and the order total is the sum of the rounded lines.\n"
     "44:Coupons never apply to shipping.\n"),
    ("assistant", "Rewriting order_total to round per line.", "edit_file",
     "src/inventory/pricing.py: order_total -> per-line discount and rounding",
     "Edited src/inventory/pricing.py (6 lines changed).\n"),
    ("assistant", "Running the whole suite now.", "bash", "python -m pytest -q",
     "............F....\n____________________________ test_import_csv_semicolon ____________________________\n"
     "    def test_import_csv_semicolon(tmp_path):\n>       rows = load_rows(tmp_path / 'stock.csv')\n"
     "src/inventory/importer.py:22: in load_rows\n    qty = int(row['qty'])\nE   KeyError: 'qty'\n"
     "1 failed, 16 passed in 0.88s\n"),
    ("assistant", "An unrelated importer failure: the CSV uses ';' as delimiter. Let me look at the importer.",
     "read_file", "src/inventory/importer.py",
     "import csv\nfrom pathlib import Path\n\n\ndef load_rows(path: Path) -> list[dict]:\n    with open(path, "
     "newline='') as fh:\n        reader = csv.DictReader(fh)\n        out = []\n        for row in reader:\n"
     "            qty = int(row['qty'])\n            out.append({'sku': row['sku'], 'qty': qty})\n    return out\n"),
    ("assistant", "Using csv.Sniffer to detect the delimiter.", "edit_file",
     "src/inventory/importer.py: sniff delimiter from the first 2 KiB",
     "Edited src/inventory/importer.py (4 lines changed).\n"),
    ("assistant", "Full suite again.", "bash", "python -m pytest -q", "................. \n17 passed in 0.84s\n"),
]


def agent_span_messages(target_tokens: int, count_tokens) -> list[dict]:
    """A realistic agent trajectory span (tool calls and outputs) rendered as one fold request of ~target tokens."""
    def render(n_steps: int) -> str:
        lines = []
        for i in range(n_steps):
            _, thought, tool, arg, output = _STEPS[i % len(_STEPS)]
            rnd = f" (round {i // len(_STEPS) + 1})" if i >= len(_STEPS) else ""
            lines.append(f"[step {i + 1}] assistant: {thought}{rnd}\n[step {i + 1}] call {tool}: {arg}\n"
                         f"[step {i + 1}] result:\n{output}")
        return "\n".join(lines)

    n = 1
    while True:
        msgs = [{"role": "system", "content": FOLD_SYSTEM},
                {"role": "user", "content": "Trajectory span to fold:\n\n" + render(n) + "\n\nMemory note:"}]
        if count_tokens(msgs) >= target_tokens or n > 500:
            return msgs
        n += 1


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / (1024 if sys.platform == "darwin" else 1)


def measure(spec: str, *, prompt_tokens: int = 1500, max_new_tokens: int = 200, cold: bool = False,
            reload: bool = True, threads: int | None = None) -> dict:
    import torch

    from agentmem.thinkers.local import LocalThinker

    kw = {"num_threads": threads} if threads else {}
    th = make_thinker(spec, **kw)
    if not isinstance(th, LocalThinker):
        raise SystemExit(f"{spec!r} is not a local thinker spec")
    res: dict = {"spec": spec, "model": th.label, "python": platform.python_version(), "torch": torch.__version__,
                 "torch_threads": torch.get_num_threads(), "prompt_tokens_target": prompt_tokens,
                 "max_new_tokens": max_new_tokens, "cpu_count": os.cpu_count(),
                 "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    conv = th.converted_path()
    if cold and conv is not None and conv.exists():
        shutil.rmtree(conv)
    res["converted_cache"] = str(conv) if conv else None

    t0 = time.perf_counter()
    th.load()
    res["load_first_s"] = round(time.perf_counter() - t0, 2)
    res["load_first_from"] = th.loaded_from
    res["device"], res["dtype"] = th.device, str(th.dtype)
    res["torch_threads"] = torch.get_num_threads()
    res["rss_mb_after_load"] = round(_rss_mb())
    print(f"[{spec}] first load {res['load_first_s']} s from {th.loaded_from}", flush=True)

    if reload:
        th.unload()
        gc.collect()
        th2 = make_thinker(spec, **kw)
        t0 = time.perf_counter()
        th2.load()
        res["load_reload_s"] = round(time.perf_counter() - t0, 2)
        res["load_reload_from"] = th2.loaded_from
        th = th2
        print(f"[{spec}] reload {res['load_reload_s']} s from {th.loaded_from}", flush=True)

    count = lambda msgs: len(th.prompt_ids(msgs))  # noqa: E731
    msgs = agent_span_messages(prompt_tokens, count)

    th.think(ThinkRequest(messages=[{"role": "user", "content": "Hi"}], max_new_tokens=2))  # warm-up

    # the fold-sized call; prefill = time to the first token, decode = the rest (LocalThinker.last_timing)
    r = th.think(ThinkRequest(messages=msgs, max_new_tokens=max_new_tokens, purpose="fold"))
    tm = th.last_timing
    prefill_s, decode_s = tm["prefill_s"], tm["decode_s"]
    prefill_tps = r.tokens_in / prefill_s
    decode_tps = (r.tokens_out - 1) / decode_s if r.tokens_out > 1 and decode_s > 0 else float("nan")
    res["prefill"] = {"tokens": r.tokens_in, "seconds": round(prefill_s, 2), "tok_per_s": round(prefill_tps, 1)}
    res["decode"] = {"tokens": r.tokens_out - 1, "seconds": round(decode_s, 2), "tok_per_s": round(decode_tps, 2)}
    res["fold"] = {
        "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "seconds": round(r.seconds, 2),
        "est_seconds_for_200_out": round(prefill_s + 199 / decode_tps, 1) if decode_tps == decode_tps else None,
        "text": r.text,
    }
    print(f"[{spec}] prefill {r.tokens_in} tok in {prefill_s:.2f} s = {prefill_tps:.1f} tok/s", flush=True)
    print(f"[{spec}] decode {r.tokens_out - 1} tok in {decode_s:.2f} s = {decode_tps:.2f} tok/s", flush=True)
    res["rss_mb_peak"] = round(_peak_rss_mb())
    res["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]  # other processes on the box skew timings
    print(f"[{spec}] fold call: {r.tokens_in} in / {r.tokens_out} out in {r.seconds:.2f} s; "
          f"peak RSS {res['rss_mb_peak']} MB", flush=True)
    print("----- fold output -----\n" + r.text + "\n-----------------------", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help='thinker spec: "smollm2", "local", "local:<hf id or path>"')
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--cold", action="store_true", help="delete the dequantized cache first (true first load)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--no-reload", action="store_true", help="skip the second (cached) load")
    ap.add_argument("--json", type=Path, default=None, help="where to write JSON (default out/thinker_speed_<spec>.json)")
    a = ap.parse_args(argv)
    res = measure(a.spec, prompt_tokens=a.prompt_tokens, max_new_tokens=a.max_new_tokens, cold=a.cold,
                  reload=not a.no_reload, threads=a.threads)
    out = a.json or Path("out") / f"thinker_speed_{a.spec.replace('/', '_').replace(':', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "fold"}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
