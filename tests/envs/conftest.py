"""Shared fixtures for the environment tests: every appworld-lite task solved once by the ScriptedAgent."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def env():
    from agentmem.envs import get_env

    return get_env("appworld-lite")


@pytest.fixture(scope="session")
def scripted_runs(env):
    """{task_id: summary} for every task, ScriptedAgent without memory management (token counting skipped)."""
    from agentmem.envs.runner import run_episode

    out = {}
    for tid in env.task_ids():
        task = env.load(tid)
        res = run_episode(task, task.scripted_agent(), max_rounds=400, count_tokens=lambda m: 0,
                          keep_messages=False)
        out[tid] = res.summary
    return out
