"""`agentmem run`: run agents on the offline environments (agentmem.envs) with a memory policy."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["run_command"]


def run_command(
    env: Annotated[str, typer.Option("--env", help="Environment name (agentmem.envs.list_envs()).")] = "appworld-lite",
    task: Annotated[str, typer.Option("--task", help="Task id, comma-separated ids, or 'all'.")] = "all",
    agent: Annotated[str, typer.Option("--agent", help="'scripted' or a litellm model string.")] = "scripted",
    policy: Annotated[str, typer.Option("--policy", help="noop | window | observation_masking | running_summary | "
                                                          "budget | thinker")] = "budget",
    budget: Annotated[Optional[int], typer.Option("--budget", help="Token budget of the view.")] = None,
    thinker: Annotated[str, typer.Option("--thinker", help="extractive | local | smollm2 | local:<hf id/path> | "
                                                            "<litellm model>")] = "extractive",
    out: Annotated[Path, typer.Option("--out", help="Output directory (rounds.jsonl, summary.json, tokens.png, "
                                                     "agentmem.db).")] = Path("out/run"),
    max_rounds: Annotated[int, typer.Option("--max-rounds", help="Cap on assistant turns per task.")] = 400,
    difficulty: Annotated[Optional[str], typer.Option("--difficulty", help="With --task all: easy|medium|hard.")]
    = None,
    background: Annotated[bool, typer.Option("--background/--no-background",
                                             help="Run thinking folds off the critical path.")] = True,
    db: Annotated[Optional[str], typer.Option("--db", help="Store URL or path (default: OUT/agentmem.db).")] = None,
    recall_tool: Annotated[bool, typer.Option("--recall-tool/--no-recall-tool",
                                              help="Offer the recall_memory tool to the agent.")] = True,
    list_tasks: Annotated[bool, typer.Option("--list", help="List the environment's task ids and exit.")] = False,
    transcripts: Annotated[bool, typer.Option("--transcripts", help="Also save every task's raw transcript.")]
    = False,
    thinker_timeout: Annotated[Optional[float], typer.Option(
        "--thinker-timeout", help="Seconds one thinking fold may take; on timeout the partial notes are kept, "
                                  "or the fold is extractive.")] = None,
    think_tokens: Annotated[int, typer.Option("--think-tokens", help="Most tokens of one thinking block.")] = 400,
    think_source_tokens: Annotated[int, typer.Option("--think-source-tokens",
                                                     help="Most tokens of the span shown to the thinker.")] = 3000,
    settings: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Policy config field, key=value (repeatable), e.g. --set low_ratio=0.4.")] = None,
) -> None:
    """Run tasks of an environment through AgentMemory; write per-round JSONL, a summary and a token plot."""
    from agentmem.cli_replay import checked_policy_config
    from agentmem.envs import get_env, list_envs
    from agentmem.envs.runner import run_tasks
    from agentmem.memory import AgentMemory, resolve_thinker
    from agentmem.policies import REGISTRY
    from agentmem.primitives import SummarizeConfig
    from agentmem.store import Store

    if env not in list_envs():
        raise typer.BadParameter(f"unknown environment {env!r}; known: {', '.join(list_envs())}", param_hint="--env")
    if list_tasks:
        for tid in get_env(env).task_ids(difficulty):
            typer.echo(tid)
        return
    if policy not in REGISTRY:
        raise typer.BadParameter(f"unknown policy {policy!r}; known: {', '.join(sorted(REGISTRY))}",
                                 param_hint="--policy")
    policy_config = checked_policy_config(policy, budget, settings)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(db or out / "agentmem.db")
    thinker_obj = resolve_thinker(thinker)  # loaded once, shared by every task
    run_id = uuid.uuid4().hex[:8]
    counter = {"n": 0}

    def memory_factory(agent_fn):
        counter["n"] += 1
        return AgentMemory(completion=agent_fn, policy=policy, budget_tokens=budget, store=store,
                           session_id=f"run-{run_id}-{counter['n']}", thinker=thinker_obj,
                           recall_tool=recall_tool, background=background and thinker_obj is not None,
                           thinker_timeout_s=thinker_timeout,
                           summarize_config=SummarizeConfig(max_block_tokens=think_tokens,
                                                            max_source_tokens=think_source_tokens),
                           **policy_config)

    try:
        summary = run_tasks(env, task, agent, memory_factory, out, max_rounds=max_rounds, policy_name=policy,
                            difficulty=difficulty, save_transcripts=transcripts)
    except KeyError as exc:
        raise typer.BadParameter(str(exc).strip("'\""), param_hint="--task") from None
    finally:
        if thinker_obj is not None and hasattr(thinker_obj, "close"):
            thinker_obj.close()
    _add_thinker_summary(out, summary, thinker_obj)
    agg = summary["aggregate"]
    typer.echo(f"{agg['n_tasks']} task(s): TGC {agg['tgc']:.1f}%  SGC {agg['sgc']:.1f}%  rounds mean "
               f"{agg.get('rounds_mean', 0)}  peak view {agg.get('peak_view_tokens', 0)} tok  "
               f"(raw {agg.get('peak_raw_tokens', 0)})  recalls {agg.get('recalls', 0)}  folds {agg.get('folds', 0)}")
    partial = [(t["task_id"], len(t["lookups_given_up"])) for t in summary.get("tasks", ())
               if t.get("lookups_given_up")]
    if partial:  # a task finished on partial data says so: recall did not bring back what it needed
        typer.echo(f"went on without {agg.get('lookups_given_up', 0)} look-up(s) recall did not bring back: "
                   + ", ".join(f"{tid} ({n})" for tid, n in partial) + "  (summary.json: lookups_given_up)")
    typer.echo(f"wrote {out / 'rounds.jsonl'}, {out / 'summary.json'}, {out / 'tokens.png'}")


def _add_thinker_summary(out: Path, summary: dict, thinker_obj: object) -> None:
    """summary.json gets the "thinker" object (speed from the thinker, decisions from the round records)."""
    import json

    from agentmem.thinkers.summary import decision_timing, thinker_summary

    rounds_path = out / "rounds.jsonl"
    rounds = [json.loads(line) for line in rounds_path.read_text().splitlines() if line.strip()] if (
        rounds_path.is_file()) else []
    summary["thinker"] = thinker_summary(thinker_obj, rounds)
    summary["thinker_decisions"] = decision_timing(rounds) if thinker_obj is not None else None
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
