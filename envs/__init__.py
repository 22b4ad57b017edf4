"""Environments for long-horizon agent benchmarks, by name: ``get_env("appworld-lite")``."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["get_env", "list_envs", "register_env"]

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_env(name: str, factory: Callable[..., Any]) -> None:
    """Register an environment factory under `name` (replaces an earlier one)."""
    _REGISTRY[name] = factory


def list_envs() -> list[str]:
    return sorted(_REGISTRY)


def get_env(name: str, **kwargs: Any) -> Any:
    """A fresh environment instance (e.g. ``get_env("appworld-lite")``)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown environment {name!r}; known: {', '.join(list_envs())}")
    return _REGISTRY[name](**kwargs)


def _appworld_lite(**kwargs: Any) -> Any:
    from .appworld_lite import AppWorldLite

    return AppWorldLite(**kwargs)


register_env("appworld-lite", _appworld_lite)
