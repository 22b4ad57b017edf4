"""Task templates, task instances and the state-based evaluator (TGC / SGC as in AppWorld).

A template seeds its data on top of the base world, states the instruction, and gives an *oracle*: the
mutating API calls a correct solution makes (computed from the seeded database) and the expected answer.
The evaluator replays the oracle on a fresh copy of the seeded world and compares database diffs:

* expected changes present (per table),
* no collateral changes (nothing else changed),
* the answer, when the task asks a question.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .framework import World
from .scripted import Stage
from .seed import SeedContext, build_world

__all__ = ["EvalResult", "TaskTemplate", "TEMPLATES", "Solution", "evaluate", "diff_snapshots", "SEEDS"]

SEEDS = (0, 1, 2)
Difficulty = Literal["easy", "medium", "hard"]
TEMPLATES: dict[str, type["TaskTemplate"]] = {}

IGNORED_COLUMNS = frozenset({"created_at", "updated_at", "liked_at", "added_at", "sent_at", "position"})
# foreign keys that may point at rows the agent inserted (auto ids are not comparable across runs)
FOREIGN_KEYS = {
    ("expenses_shares", "expense_id"): "expenses_expenses",
    ("music_playlist_songs", "playlist_id"): "music_playlists",
}


@dataclass
class Solution:
    calls: list[tuple[str, str, dict]] = field(default_factory=list)  # mutating calls a correct solution makes
    answer: Any = None


class TaskTemplate:
    """Subclass to define a template; it registers itself under `name`."""

    name: ClassVar[str] = ""
    difficulty: ClassVar[Difficulty] = "easy"
    apps: ClassVar[tuple[str, ...]] = ()
    sizes: ClassVar[dict[str, int]] = {}
    description: ClassVar[str] = ""
    # apps whose password expires with each access token (see World); the supervisor's store gets a new one
    rotating_passwords: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name:
            if cls.name in TEMPLATES:
                raise ValueError(f"duplicate template {cls.name}")
            TEMPLATES[cls.name] = cls

    @staticmethod
    def setup(ctx: SeedContext) -> dict:
        """Add template data to the world; return params including 'instruction'."""
        raise NotImplementedError

    @staticmethod
    def oracle(w: World, p: dict) -> Solution:
        """The mutating calls and the answer of a correct solution (read the seeded DB directly)."""
        raise NotImplementedError

    @staticmethod
    def plan(p: dict) -> list[Stage]:
        """The ScriptedAgent's plan (it reads every value from its view)."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, seed: int) -> tuple[SeedContext, dict]:
        ctx = build_world(f"{cls.name}-{seed}", cls.sizes)
        ctx.world.rotating_passwords = frozenset(cls.rotating_passwords)
        params = cls.setup(ctx)
        ctx.params = params
        return ctx, params


# ---------------------------------------------------------------------------------------------------------
Snapshot = dict[str, dict[tuple, dict]]


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        return "\n".join(" ".join(line.split()) for line in v.strip().splitlines()).casefold()
    return v


def _auto_pk(w: World, table: str) -> str | None:
    sql = w.q("SELECT sql FROM sqlite_master WHERE name = ?", (table,))[0]["sql"] or ""
    if "AUTOINCREMENT" in sql.upper():
        return w.primary_key(table)[0]
    return None


def diff_snapshots(w: World, before: Snapshot, after: Snapshot) -> dict[str, dict]:
    """{table: {"inserted": Counter[json], "deleted": set[pk], "updated": {pk: {col: new}}}} (non-empty only)."""
    out: dict[str, dict] = {}
    inserted_key: dict[tuple[str, Any], str] = {}  # (table, auto id) -> content key of an inserted row
    rows_inserted: dict[str, list[dict]] = {}
    for t in after:
        b, a = before.get(t, {}), after[t]
        rows_inserted[t] = [a[k] for k in a if k not in b]
    auto = {t: _auto_pk(w, t) for t in after}

    def content(t: str, r: dict) -> str:
        drop = IGNORED_COLUMNS | ({auto[t]} if auto[t] else set())
        vals = {}
        for c, v in r.items():
            if c in drop:
                continue
            ref = FOREIGN_KEYS.get((t, c))
            if ref is not None and (ref, v) in inserted_key:
                v = "new:" + inserted_key[(ref, v)]
            vals[c] = _norm(v)
        return json.dumps(vals, sort_keys=True, default=str)

    for t in ("expenses_expenses", "music_playlists"):  # referenced tables first
        for r in rows_inserted.get(t, []):
            inserted_key[(t, r[auto[t]])] = content(t, r)
    for t in after:
        b, a = before.get(t, {}), after[t]
        ins = Counter(content(t, r) for r in rows_inserted[t])
        dele = {k for k in b if k not in a}
        upd: dict[Any, dict] = {}
        for k in a:
            if k in b and a[k] != b[k]:
                ch = {c: _norm(v) for c, v in a[k].items() if c not in IGNORED_COLUMNS and b[k].get(c) != v}
                if ch:
                    upd[k] = ch
        if ins or dele or upd:
            out[t] = {"inserted": ins, "deleted": dele, "updated": upd}
    return out


def _answer_ok(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return True
    if isinstance(expected, (int, float)):
        if isinstance(got, bool) or got is None:
            return False
        if isinstance(got, (int, float)):
            return abs(float(got) - float(expected)) < 0.011
        m = re.search(r"-?\d[\d,]*\.?\d*", str(got))
        if not m:
            return False
        try:
            return abs(float(m.group(0).replace(",", "")) - float(expected)) < 0.011
        except ValueError:
            return False
    norm = lambda s: " ".join(str(s).strip().strip(".").strip("'\"").split()).casefold()  # noqa: E731
    return got is not None and norm(got) == norm(expected)


@dataclass
class EvalResult:
    success: bool
    score: float
    checks: list[dict]
    expected_answer: Any = None
    answer: Any = None

    def to_dict(self) -> dict:
        return {"success": self.success, "score": round(self.score, 4), "checks": self.checks,
                "expected_answer": self.expected_answer, "answer": self.answer}


def evaluate(template: type[TaskTemplate], seed: int, world: World, before: Snapshot | None = None) -> EvalResult:
    """Score the final state of `world` (the agent's) against the template's oracle."""
    octx, params = template.build(seed)
    ow = octx.world
    base = ow.snapshot() if before is None else before
    sol = template.oracle(ow, params)
    for app, api_name, args in sol.calls:
        env = ow.call(app, api_name, args, internal=True)
        if env["status"] != "ok":
            raise RuntimeError(f"oracle call failed for {template.name}-{seed}: {env}")
    expected = diff_snapshots(ow, base, ow.snapshot())
    actual = diff_snapshots(world, base, world.snapshot())
    checks: list[dict] = []
    if sol.answer is not None:
        checks.append({"name": "answer", "passed": _answer_ok(sol.answer, world.answer),
                       "detail": f"expected {sol.answer!r}, got {world.answer!r}"})
    checks.append({"name": "task completed", "passed": bool(world.completed),
                   "detail": "supervisor.complete_task was called" if world.completed else "never completed"})
    for t, d in sorted(expected.items()):
        a = actual.get(t, {"inserted": Counter(), "deleted": set(), "updated": {}})
        missing_ins = d["inserted"] - a["inserted"]
        missing_del = d["deleted"] - a["deleted"]
        missing_upd = {k: v for k, v in d["updated"].items() if a["updated"].get(k) != v}
        ok = not missing_ins and not missing_del and not missing_upd
        checks.append({"name": f"expected changes in {t}", "passed": ok,
                       "detail": "" if ok else f"missing inserts {sum(missing_ins.values())}, deletes "
                                               f"{len(missing_del)}, updates {len(missing_upd)}"})
    extra: list[str] = []
    for t, a in sorted(actual.items()):
        d = expected.get(t, {"inserted": Counter(), "deleted": set(), "updated": {}})
        n_ins = sum((a["inserted"] - d["inserted"]).values())
        n_del = len(a["deleted"] - d["deleted"])
        n_upd = sum(1 for k, v in a["updated"].items() if d["updated"].get(k) != v and k not in d["updated"])
        if n_ins or n_del or n_upd:
            extra.append(f"{t}: +{n_ins} -{n_del} ~{n_upd}")
    checks.append({"name": "no collateral changes", "passed": not extra, "detail": "; ".join(extra)})
    passed = sum(c["passed"] for c in checks)
    return EvalResult(passed == len(checks), passed / len(checks), checks, sol.answer, world.answer)
