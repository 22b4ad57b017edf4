"""Identifier-like values: what an agent must carry across rounds (ids, paths, numbers, tokens).

Serves the faithfulness guard of summarize-by-thinking (values in a thinker's output that are not in its source
are hallucinations, and values it left out are merged back) and BudgetPolicy's auto-recall query. The extractive
fold ranks lines with `agentmem.salience`, and the retention metric has its own definition in `agentmem.metrics`:
neither uses this module, so the metric does not check what this extractor was built to find.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["extract_values", "identifier_like"]

# Order matters: longer, more specific shapes first.
_PATTERNS = [
    r"https?://[^\s\"'<>)\]]+",  # URLs
    r"[\w.+-]+@[\w-]+\.[\w.-]+",  # emails
    r"(?:\.{0,2}/)?(?:[\w.-]+/)+[\w.-]+",  # paths with at least one slash
    r"\b[\w-]+\.(?:py|js|ts|json|yaml|yml|toml|md|txt|csv|sql|cfg|ini|html|rs|go|java|c|h|cpp|sh)\b",  # files
    r"\b[A-Za-z]+[_-][A-Za-z0-9_-]*\d[A-Za-z0-9_-]*\b",  # ids like user_123, call_00_ab, mia_li_3668
    r"\b[A-Z]{2,}\d+[A-Z0-9]*\b",  # codes like HAT136, ABC123
    r"\b(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{8,}\b",  # hashes / tokens mixing letters and digits
    r"\$?-?\d[\d,]*\.\d+\b",  # decimals and amounts
    r"\b\d{3,}\b",  # long integers (ids, line numbers, amounts)
    r"\b\d{4}-\d{2}-\d{2}\b",  # dates
]
_VALUE_RE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS))
_STOP = {"http://", "https://"}


def extract_values(text: str, *, limit: int | None = None) -> list[str]:
    """Distinct identifier-like values in order of first appearance."""
    out: list[str] = []
    seen: set[str] = set()
    if limit is not None and limit <= 0:
        return out
    for m in _VALUE_RE.finditer(text or ""):
        v = m.group(0).strip(".,;:'\"()[]{}")
        if len(v) < 3 or v in _STOP or v in seen:
            continue
        seen.add(v)
        out.append(v)
        if limit is not None and len(out) >= limit:
            break
    return out


def identifier_like(values: Iterable[str]) -> list[str]:
    """Keep only values that look like identifiers (for the guard: plain small numbers are too common)."""
    return [v for v in values if any(c.isdigit() for c in v) or "/" in v or "@" in v or "_" in v]
