"""Policies decide memory actions; they never touch the store. Select one by name with `make_policy`.

Adding a policy touches its own file and one line of REGISTRY.
"""

from __future__ import annotations

from typing import Any

from .base import Policy, PolicyConfig, PolicyContext
from .budget import BudgetConfig, BudgetPolicy
from .noop import NoOpConfig, NoOpPolicy
from .thinker import ThinkerPolicy, ThinkerPolicyConfig
from .observation_masking import ObservationMaskingConfig, ObservationMaskingPolicy
from .running_summary import RunningSummaryConfig, RunningSummaryPolicy
from .window import WindowConfig, WindowPolicy

REGISTRY: dict[str, type[Policy]] = {
    "noop": NoOpPolicy,
    "budget": BudgetPolicy,
    "thinker": ThinkerPolicy,
    "window": WindowPolicy,
    "observation_masking": ObservationMaskingPolicy,
    "running_summary": RunningSummaryPolicy,
}


def make_policy(spec: str | Policy | None = None, **config: Any) -> Policy:
    """A policy from its name (with config fields as keywords), or the policy itself. None → budget."""
    config = {k: v for k, v in config.items() if v is not None}
    if isinstance(spec, Policy):
        if config:
            raise TypeError("pass config fields with a policy name, not with a policy instance")
        return spec
    name = spec or "budget"
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(REGISTRY))}")
    fields = cls.Config.model_fields
    kwargs = dict(config)
    if "budget_tokens" in kwargs and "budget_tokens" not in fields:
        del kwargs["budget_tokens"]  # a common option; meaningless for e.g. noop, so it is not an error there
    return cls(**kwargs)


__all__ = ["REGISTRY", "make_policy", "Policy", "PolicyConfig", "PolicyContext", "BudgetPolicy", "BudgetConfig",
           "NoOpPolicy", "NoOpConfig", "WindowPolicy", "WindowConfig", "ObservationMaskingPolicy",
           "ObservationMaskingConfig", "RunningSummaryPolicy", "RunningSummaryConfig"]
