"""The examples run as a user would run them, and say what they should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_quickstart_replays_a_shared_trajectory_within_budget(shared_data):
    text = _run("examples/quickstart.py", str(shared_data / "swe_deepseek_public.jsonl"), "--budget", "6000")
    m = re.search(r"peak raw (\d+) tokens → peak view (\d+) tokens", text)
    assert m, text[-500:]
    raw, view = map(int, m.groups())
    assert raw > 20_000 and view <= 6000 + 2000  # one round's new messages can land on a just-managed view


def test_langgraph_example_recalls_a_folded_value():
    text = _run("examples/langgraph_agent.py", "--budget", "3000")
    assert "answer: Page 0's invoice is INV-1000." in text, text
    m = re.search(r"last view was (\d+) tokens; (\d+) memory events", text)
    assert m and int(m.group(1)) <= 3000 + 1500 and int(m.group(2)) >= 1, text


def test_create_agent_example_is_bounded_and_recalls_a_folded_value():
    for extra in ((), ("--async",)):
        text = _run("examples/create_agent.py", "--budget", "3000", *extra)
        assert "answer: Page 0's invoice is INV-1000." in text, text
        m = re.search(r"the last request was (\d+) tokens .* against (\d+); (\d+) memory events", text)
        assert m and int(m.group(1)) <= int(m.group(2)) == 3000 and int(m.group(3)) >= 1, text
