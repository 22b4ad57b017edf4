"""Salience of tool-output lines: what in a folded span an agent is likely to need again.

The extractive fold keeps *lines* in their original wording, not bare values, and has to choose which. A line
scores by
- **reference**: terms the agent itself wrote in its text and call arguments (anywhere in the session, also in
  rounds already folded: the agent naming a file, a function or an id is the best evidence it matters), and,
  weaker, paths in a directory of a path it wrote (the sibling files of the ones it works on);
- **novelty**: terms neither a chosen line nor the rest of the memory holds yet; identifier-like compounds weigh
  more than plain words;
- **kind**: locations (`file.py:120`, `line 88`), definitions (`def`, `class`, `key: value`), test results and
  errors are what later steps most often look up;
- **recency**: later lines weigh more (in the fold's own ordering).
Lines are chosen greedily by what they add per token (maximal coverage): a line whose terms the memory already
holds adds little, so the budget buys many different facts rather than the same one many times. Before ranking,
tool outputs lose what names nothing: installer progress, and the middle frames of tracebacks. Nothing here is
tied to an environment: the same rules read shell output, code, JSON entities and API replies.

Terms are word pieces and their dotted/slashed compounds (`self.templated_file.templated_str` gives the compound
and each part). This module serves the primitives only; the retention metric has its own, separate definition.
"""

from __future__ import annotations

import heapq
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

__all__ = ["terms", "line_kind", "is_noise", "Candidate", "select", "entity_lines", "output_lines",
           "is_installer_progress", "KIND_WEIGHT"]

_COMPOUND = re.compile(r"[\w$@%+-]+(?:[./:#][\w$@%+-]+)*")
_PIECE = re.compile(r"[a-z_][a-z0-9_]{2,}|\d{3,}")
_LETTERS = re.compile(r"[a-z]{3,}")
_LOCATION = re.compile(r"\b[\w./-]+\.\w{1,6}:\d+|\bline \d+|\bFile \"[^\"]+\"")
_DEFINITION = re.compile(r"^\s*(?:(?:async\s+)?def|class|function|fn|func|interface|struct|type|const|let|var|"
                         r"public|private|protected|static|export|import|from)\b|^\s*[\w.\[\]\"']+\s*(?:=|:)\s*\S")
_ERROR = re.compile(r"(?i)\b(?:error|exception|traceback|failed|failure|fatal|not found|no such|invalid|denied|"
                    r"expired|cannot|can't|unable|refused|assert\w*)\b")
_TEST = re.compile(r"(?i)\b(?:passed|failed|skipped|xfail\w*|errors?|ok)\b.*\b(?:in \d|tests?|\d+)\b|"
                   r"^(?:PASS|FAIL|OK)\b|\b\d+ (?:passed|failed)\b")
_NOISE = re.compile(r"^\W*$|^\s*<\/?\w+>\s*$|^\s*(?:#|//)\s*$")

# recency: a line's gain is scaled from RECENCY_FLOOR (oldest) to RECENCY_FLOOR + RECENCY_SPAN (newest). Mild: a
# merged block's lines sit at the start of the span and would otherwise lose to every new line at each merge
# (measured: 0.6 + 0.8 × order kept fewer old values on the held-out SWE runs than this)
RECENCY_FLOOR, RECENCY_SPAN = 0.9, 0.2
MIN_GAIN = 2.0  # what a line must add: two new identifier-like terms, one the agent named, or a kind (error…)
REFERENCE_WEIGHT = 3.0  # a term the agent wrote itself counts this many times
# a path the agent did not write, in a directory of one it did (`backends/sqlite3/base.py` in a `find` listing,
# beside the `backends/sqlite3/creation.py` it is fixing): agents come back to the siblings of the files they work
# on, 14-71 rounds after the listing in the SWE runs. SWE@6000 values last seen 10+ rounds back 81.4 -> 83.1 %,
# held-out 89.7 % either way (1.5: no change on either; 3.0 as 2.0; the other subdirectories of its directories'
# parents too: fewer on the 13 runs at 6,000 and 8,000; files of the same name anywhere: fewer held out)
REFERENCE_DIRECTORY_WEIGHT = 2.0
# error lines get a modest bonus: the fold's state section already holds every failing call with its error line,
# and on the SWE runs lines of failing runs were reused least (values from a run of the agent's own script: 0.9 %
# reused 10+ rounds later, from a file it read: 5.6 %); 3.0 here kept ~2 points fewer old values on the 13 tuning
# runs and on the 25 held-out runs alike. Test results keep theirs (the same either way there).
KIND_WEIGHT = {"error": 1.5, "test": 2.5, "location": 2.0, "definition": 1.2, "text": 0.0}


def terms(text: str) -> set[str]:
    """Lower-cased compounds (`a.b_c/d:12`) and their word pieces (3+ letters or 3+ digit numbers)."""
    out: set[str] = set()
    for m in _COMPOUND.finditer(text):
        tok = m.group(0).lower()
        if len(tok) >= 3:
            out.add(tok)
        if any(c in tok for c in "./:#-_"):
            out.update(_PIECE.findall(tok))
            out.update(_LETTERS.findall(tok))
    return out


def line_kind(line: str) -> str:
    if _ERROR.search(line):
        return "error"
    if _TEST.search(line):
        return "test"
    if _LOCATION.search(line):
        return "location"
    if _DEFINITION.search(line):
        return "definition"
    return "text"


def is_noise(line: str) -> bool:
    """Blank lines, bare punctuation, lone tags: nothing to keep."""
    return bool(_NOISE.match(line))


# --- lines of one tool output --------------------------------------------------------------------------------
def _scalar(v: Any, max_chars: int) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    s = " ".join(s.split())
    return s if len(s) <= max_chars else s[: max_chars - 1] + "…"


def entity_lines(obj: Any, path: str = "", *, max_chars: int = 60) -> Iterator[str]:
    """A JSON value as one line per entity: `path: key=value, key=value` with its scalar fields in their order;
    nested objects and lists become their own lines, so an entity keeps its fields together."""
    if isinstance(obj, dict):
        scalars = [f"{k}={_scalar(v, max_chars)}" for k, v in obj.items() if not isinstance(v, (dict, list))]
        if scalars:
            yield (f"{path}: " if path else "") + ", ".join(scalars)
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from entity_lines(v, f"{path}.{k}" if path else str(k), max_chars=max_chars)
    elif isinstance(obj, list):
        if obj and all(not isinstance(v, (dict, list)) for v in obj):
            yield (f"{path}: " if path else "") + ", ".join(_scalar(v, max_chars) for v in obj)
            return
        for i, v in enumerate(obj):
            yield from entity_lines(v, f"{path}[{i}]", max_chars=max_chars)
    elif obj is not None and obj != "":
        yield (f"{path}: " if path else "") + _scalar(obj, max_chars * 4)


_FRAME = re.compile(r"^\s*File \"([^\"]+)\", line \d+")
_INSTALLER = re.compile(r"^\s*(?:Collecting |Downloading |Using cached |Requirement already satisfied|"
                        r"Installing collected packages|Obtaining |Preparing metadata|Building wheels? for |"
                        r"Created wheel for |Stored in directory|Attempting uninstall|Found existing installation|"
                        r"Uninstalling |Successfully uninstalled|Getting requirements to build|"
                        r"WARNING: Running pip as the 'root' user|\[notice\] |npm (?:WARN|notice) |"
                        r"(?:Get|Hit|Ign):\d+ |Reading (?:package lists|state information)|Building dependency tree)|"
                        r"[\u2500-\u259f#=>\-\s]{10,}\s*[\d.]+\s*/?\s*[\d.]*\s*[kMG]?B")


_TRACEBACK_JOINT = re.compile(r"^\s*(?:The above exception was the direct cause of the following exception:|"
                              r"During handling of the above exception, another exception occurred:)\s*$")


def _trim_tracebacks(lines: list[str]) -> list[str]:
    """A Python traceback keeps its first frame (the agent's own entry point) and its last two (where it failed),
    each with its code line, and the error line; its header, the seams of chained exceptions and the interpreter's
    `<frozen …>` frames go. The frames between (an import chain through a framework) are dozens of location lines
    that name nothing the agent works on, and a ranking that prizes locations would otherwise spend a block on them.
    A run of frames without its header (the tail of a long traceback) is cut the same way."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if _TRACEBACK_JOINT.match(lines[i]) or lines[i].startswith("Traceback (most recent call last)"):
            i += 1  # a seam or a header: no fact the frames and the error line do not carry
            continue
        if not _FRAME.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        frames: list[list[str]] = []
        while i < len(lines) and (_FRAME.match(lines[i]) or (frames and lines[i][:1].isspace())):
            if _FRAME.match(lines[i]):
                frames.append([])
            frames[-1].append(lines[i])
            i += 1
        frames = [f for f in frames if "<frozen " not in f[0]]
        keep = frames if len(frames) <= 3 else [frames[0], *frames[-2:]]
        out.extend(line for frame in keep for line in frame)
    return out


def is_installer_progress(line: str) -> bool:
    """A package manager's progress line (pip/npm/apt: collecting, downloading, progress bars, root warnings):
    says that an install ran, which the state's `done:` entry already records, and nothing a later step looks up."""
    return bool(_INSTALLER.match(line))


def output_lines(text: str, *, max_chars: int = 200) -> list[str]:
    """The lines of a tool output worth ranking: JSON becomes entity lines; other text its own lines, stripped of
    indentation and cut to `max_chars`; noise, installer progress and the middle frames of tracebacks dropped."""
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            obj = json.loads(stripped)
        except (json.JSONDecodeError, ValueError, RecursionError):
            obj = None
        if isinstance(obj, (dict, list)):
            return [ln if len(ln) <= max_chars else ln[: max_chars - 1] + "…" for ln in entity_lines(obj)]
    out = []
    for raw in _trim_tracebacks(text.splitlines()):
        line = " ".join(raw.split())
        if not line or is_noise(line) or is_installer_progress(line):
            continue
        out.append(line if len(line) <= max_chars else line[: max_chars - 1] + "…")
    return out


# --- choosing lines ---------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One line that may be kept: its text, the group it belongs to (the call that printed it) and its order."""

    text: str
    group: int
    order: float  # 0 = oldest … 1 = newest
    tokens: int


def _directory(term: str) -> str:
    """A path term's directory, without leading or trailing dots and slashes (`./a/b.py` and `a/b.py` agree)."""
    return posixpath.dirname(term.strip("./"))


def _term_weight(term: str, refs: AbstractSet[str], ref_directories: AbstractSet[str] = frozenset()) -> float:
    weight = 1.0 if len(term) >= 4 and any(ch.isdigit() or ch in "._/:" for ch in term) else 0.25
    if term in refs:
        return weight * REFERENCE_WEIGHT
    if "/" in term and ref_directories and _directory(term) in ref_directories:
        return weight * REFERENCE_DIRECTORY_WEIGHT
    return weight


def select(candidates: Sequence[Candidate], referenced: Iterable[str], budget: int,
           extra_cost: Callable[[int, set[int]], int] = lambda group, opened: 0,
           known: Iterable[str] = ()) -> list[Candidate]:
    """The lines to keep within `budget` tokens: greedy maximal coverage, best gain per token first.

    A line's gain is what it adds that the lines already chosen do not: the weight of its terms not yet covered
    (compound terms and terms the agent referred to weigh more), plus a bonus for its kind (error, test result,
    location, definition), scaled by recency. Exact repeats keep only the newest. `extra_cost(group, opened)`
    is what choosing a line of `group` costs besides its own tokens (a group header paid once). `known`: terms
    the rest of the memory already holds (other blocks' lines), covered from the start, so a line is worth what it
    adds to the memory as a whole, not to this block alone (SWE@6000 values last seen 10+ rounds back 74.3 ->
    75.1 %, held-out 82.3 -> 85.1 %, SWE@8000 84.7 -> 86.0 %, prefix reuse up 0.4-0.9 points)."""
    refs = set(referenced)
    ref_directories = {_directory(r) for r in refs if "/" in r} - {""}
    newest: dict[str, Candidate] = {}
    for c in candidates:
        prev = newest.get(c.text)
        if prev is None or c.order >= prev.order:
            newest[c.text] = c
    pool = list(newest.values())
    line_terms = [terms(c.text) for c in pool]
    weights: dict[str, float] = {}
    for ts in line_terms:
        for t in ts:
            if t not in weights:
                weights[t] = _term_weight(t, refs, ref_directories)
    bonus = [KIND_WEIGHT[line_kind(c.text)] for c in pool]
    covered: set[str] = set(known)
    opened: set[int] = set()

    def value(i: int) -> tuple[float, int]:
        c = pool[i]
        gain = bonus[i] + sum(weights[t] for t in line_terms[i] - covered)
        if gain < MIN_GAIN:  # a line that adds nothing new (an import, a lone word) is not worth its tokens
            return 0.0, c.tokens
        cost = c.tokens + extra_cost(c.group, opened)
        return gain * (RECENCY_FLOOR + RECENCY_SPAN * c.order) / max(4, cost), cost

    heap = [(-value(i)[0], i) for i in range(len(pool))]
    heapq.heapify(heap)
    chosen: list[Candidate] = []
    used = 0
    while heap and budget - used >= 4:
        _neg, i = heapq.heappop(heap)
        ratio, cost = value(i)
        if heap and ratio < -heap[0][0] - 1e-12:  # stale: re-queue with its current value
            heapq.heappush(heap, (-ratio, i))
            continue
        if ratio <= 0 or used + cost > budget:
            continue
        used += cost
        covered |= line_terms[i]
        opened.add(pool[i].group)
        chosen.append(pool[i])
    return chosen
