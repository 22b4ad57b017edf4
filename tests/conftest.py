"""Shared fixtures: real SQLite files, a real PostgreSQL server when AGENTMEM_TEST_PG_URL is set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def sqlite_store(tmp_path):
    from agentmem.store import Store

    store = Store(tmp_path / "agentmem.db")
    yield store
    store.close()


@pytest.fixture
def pg_url():
    url = os.environ.get("AGENTMEM_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide a PostgreSQL server (AGENTMEM_TEST_PG_URL); scripts/pg_start.sh failed")
        pytest.skip("no PostgreSQL server (set AGENTMEM_TEST_PG_URL)")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    """The same test against a real SQLite file and a real PostgreSQL server."""
    from agentmem.store import Store

    if request.param == "sqlite":
        store = Store(tmp_path / "agentmem.db")
    else:
        store = Store(request.getfixturevalue("pg_url"))
    yield store
    store.close()


@pytest.fixture
def session_id():
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (CI clones with ../shared beside the repo)")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_db_url(request, tmp_path):
    """An empty database: a new SQLite file path, or a PostgreSQL database created for this test (dropped after)."""
    if request.param == "sqlite":
        yield str(tmp_path / "fresh.db")
        return
    from sqlalchemy import create_engine, text

    from agentmem.store import _to_url

    base = request.getfixturevalue("pg_url").rsplit("/", 1)[0]
    name = "agentmem_fresh_" + uuid.uuid4().hex[:8]
    admin = create_engine(_to_url(base + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
