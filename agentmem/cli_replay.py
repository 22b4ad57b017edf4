"""`agentmem replay`: replay recorded agent runs through a policy and report footprint, retention, reuse, cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["replay_command", "parse_settings", "checked_policy_config"]


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values are read as JSON when they parse (numbers, true/false, null), else as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def checked_policy_config(policy: str, budget: int | None, settings: list[str] | None) -> dict[str, Any]:
    """The --set pairs of a command, validated against the policy's config now, before any work starts."""
    from agentmem.policies import REGISTRY

    from pydantic import ValidationError

    policy_config = parse_settings(settings)
    fields = REGISTRY[policy].Config.model_fields
    try:
        REGISTRY[policy].Config(**({"budget_tokens": budget} if budget and "budget_tokens" in fields else {}),
                                **policy_config)
    except ValidationError as exc:  # one line: the field, what is wrong, what is allowed
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "config"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown field {name!r} (fields: {', '.join(sorted(fields))})")
            else:
                problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise typer.BadParameter(f"policy {policy!r}: " + "; ".join(problems), param_hint="--set") from None
    return policy_config


HELP = "\n\n".join([
    "Replay recorded agent runs causally through agentmem: how small would the context have been, and what would "
    "the agent have lost?",
    "Before each recorded assistant turn, the view is built from the earlier messages only, by the same AgentMemory "
    "session code the live middleware runs.",
    "Writes DIR/rounds.jsonl (per trajectory and round: raw and view tokens, actions, bookkeeping and thinker ms, "
    "carried-value retention, prefix reuse), DIR/summary.json and DIR/footprint.png; with --dump-views also "
    "DIR/views.jsonl (the exact messages sent before every assistant turn).",
    "Example: agentmem replay ../shared/data/swe_deepseek_public.jsonl --policy budget --budget 8000 --out out",
])


def _fmt(v: Any, pct: bool = False, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}%}" if pct else f"{v:,.{digits}f}"


def replay_command(
    file: Annotated[Path, typer.Argument(help="Trajectories: the common JSONL format of ../shared/data, or OpenAI "
                                              "chat format (one conversation per line, or a .json list).",
                                         show_default=False)],
    policy: Annotated[str, typer.Option(help="Policy name: noop, budget, window, observation_masking, "
                                             "running_summary, thinker, …")] = "budget",
    budget: Annotated[int | None, typer.Option(help="Token budget for policies that have one "
                                                    "(default: the policy's own).")] = None,
    thinker: Annotated[str, typer.Option(help="extractive (no model), local, smollm2, local:<path>, or a litellm "
                                              "model name.")] = "extractive",
    out: Annotated[Path, typer.Option(help="Output directory (rounds.jsonl, summary.json, footprint.png, "
                                           "replay.db).")] = Path("out"),
    limit: Annotated[int | None, typer.Option(help="Replay only the first N trajectories.")] = None,
    ids: Annotated[str | None, typer.Option(help="Comma-separated trajectory ids to replay.")] = None,
    dump_views: Annotated[bool, typer.Option("--dump-views/--no-dump-views",
                                             help="Also write DIR/views.jsonl: the exact view before every "
                                                  "assistant turn.")] = False,
    model: Annotated[str | None, typer.Option(help="Tokenizer model name (default: each trajectory's "
                                                   "meta.model).")] = None,
    store: Annotated[str | None, typer.Option(help="Store URL or path (default: DIR/replay.db, rewritten).")] = None,
    settings: Annotated[list[str] | None, typer.Option("--set", help="Policy config field, key=value "
                                                                     "(repeatable), e.g. --set keep_recent_rounds=6.")
                        ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Replay recorded agent runs through agentmem (help text: HELP below)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agentmem.messages import InvalidMessageError
    from agentmem.policies import REGISTRY
    from agentmem.replay import TrajectoryFormatError, load_trajectories, run_replay

    console = Console(stderr=True)
    if policy not in REGISTRY:
        raise typer.BadParameter(f"unknown policy {policy!r}; known: {', '.join(sorted(REGISTRY))}",
                                 param_hint="--policy")
    policy_config = checked_policy_config(policy, budget, settings)
    if file.is_dir():
        console.print(f"[red]error:[/red] {file} is a directory; pass a .jsonl or .json file of trajectories",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    wanted = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
    try:
        trajectories = load_trajectories(file, limit=limit, ids=wanted)
    except (TrajectoryFormatError, InvalidMessageError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not trajectories:
        console.print(f"[red]error:[/red] {file}: no trajectories")
        raise typer.Exit(2)

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet, transient=False)
    with progress:
        t_task = progress.add_task("trajectories", total=len(trajectories))
        r_task = progress.add_task("rounds", total=1)
        state = {"first": True}

        def on_trajectory(traj: Any) -> None:
            if not state["first"]:
                progress.advance(t_task)
            state["first"] = False
            name = traj.id if len(traj.id) <= 40 else "…" + traj.id[-39:]
            progress.reset(r_task, total=max(1, traj.rounds), description=f"rounds of {name}")

        summary = run_replay(trajectories, out, policy=policy, budget_tokens=budget, thinker=thinker, model=model,
                             store=store, dump_views=dump_views, policy_config=policy_config,
                             on_trajectory=on_trajectory, on_round=lambda _r: progress.advance(r_task),
                             source=str(file))
        progress.advance(t_task)

    fp, ret, cost = summary["footprint"], summary["retention"], summary["cost"]
    title = f"agentmem replay — {policy}" + (f", budget {budget}" if budget else "")
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("trajectories / rounds", f"{summary['trajectories']} / {summary['rounds']}")
    table.add_row("peak view / peak raw (mean over runs)", _fmt(fp["peak_ratio"], pct=True))
    table.add_row("mean view / raw per round", _fmt(fp["mean_ratio"], pct=True))
    table.add_row("largest view (tokens)", f"{fp['max_peak_view']:,}")
    table.add_row("view slope after round 80 (tok/round)", _fmt(fp["slope_view_after_80"]) +
                  f"  (raw {_fmt(fp['slope_raw_after_80'])})")
    table.add_row("carried values present in the view", _fmt(ret["retention"], pct=True) + f"  of {ret['carried']}")
    table.add_row("  last seen 10+ rounds ago", _fmt(ret["retention_old_10"], pct=True) +
                  f"  of {ret['carried_old']}")
    table.add_row("carried values in context (with a word of their source line)",
                  _fmt(ret.get("in_context"), pct=True))
    table.add_row("  last seen 10+ rounds ago", _fmt(ret.get("in_context_old_10"), pct=True))
    table.add_row("prefix reuse (token-weighted)", _fmt(summary["prefix_reuse"], pct=True))
    table.add_row("bookkeeping ms/round p50 / p95", f"{_fmt(cost['ms_per_round_p50'], digits=2)} / "
                                                    f"{_fmt(cost['ms_per_round_p95'], digits=2)}")
    table.add_row("thinker s per model fold", _fmt(cost["thinker_s_per_fold"], digits=2))
    table.add_row("actions", ", ".join(f"{k} {v}" for k, v in sorted(summary["actions"].items())) or "none")
    Console().print(table)
    written = ["rounds.jsonl", "summary.json"] + (["footprint.png"] if summary.get("plot") else []) + \
              (["views.jsonl"] if dump_views else [])
    console.print(f"wrote {', '.join(str(Path(out) / w) for w in written)}", highlight=False)
    if not summary.get("plot"):
        console.print("note: matplotlib is not installed (pip install 'agentmem[bench]'), so no footprint.png")


replay_command.__doc__ = HELP  # typer shows paragraphs; a docstring would keep its hard line breaks
