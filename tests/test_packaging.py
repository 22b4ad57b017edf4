"""The built wheel installs agentmem.primitives/policies/envs and no top-level primitives/policies/envs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    wheels = list(out.glob("agentmem-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_maps_folders_into_the_agentmem_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("agentmem/__init__.py", "agentmem/primitives/fold.py", "agentmem/policies/budget.py",
                     "agentmem/envs/__init__.py", "agentmem/thinkers/base.py", "agentmem/integrations/langgraph.py"):
        assert required in names, f"{required} missing from the wheel"
    top = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info" not in n}
    assert top == {"agentmem"}, f"unexpected top-level packages in the wheel: {top}"


def test_every_source_package_is_listed(wheel):
    """A new sub-folder with an __init__.py must be in pyproject's package list, or the wheel silently lacks it."""
    names = set(zipfile.ZipFile(wheel).namelist())
    mapping = {"agentmem": "agentmem", "primitives": "agentmem/primitives", "policies": "agentmem/policies",
               "envs": "agentmem/envs"}
    for folder, target in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{target}/{rel}" in names, f"{folder}/{rel} is not packaged (add it to pyproject packages)"


def test_wheel_imports_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    code = ("import agentmem, agentmem.primitives, agentmem.policies, agentmem.envs, importlib.util as u;"
            "print(agentmem.__file__);"
            "assert u.find_spec('primitives') is None and u.find_spec('policies') is None "
            "and u.find_spec('envs') is None, 'a top-level module leaked'")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True,
                         text=True)
    assert out.stdout.strip().startswith(str(target)), out.stdout
