"""The `agentmem` console script. Each command lives in its own module and is registered here with one line."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="agentmem",
    help="Explicit memory middleware for long-horizon LLM agents (fold, summarize-by-thinking, evict, recall).",
    no_args_is_help=True,
    add_completion=False,
)

__all__ = ["app"]


@app.callback()
def _main() -> None:
    """agentmem: keep an agent's context bounded without losing what it saw."""


from agentmem.cli_store import events_command, export_command, sessions_command, view_command  # noqa: E402

app.command("sessions")(sessions_command)
app.command("view")(view_command)
app.command("events")(events_command)
app.command("export")(export_command)
from agentmem.cli_replay import replay_command  # noqa: E402

app.command("replay")(replay_command)
from agentmem.cli_run import run_command  # noqa: E402

app.command("run")(run_command)


def main() -> None:  # pragma: no cover - exercised through the console script
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
