"""Thinkers: the only place agentmem calls a model."""

from agentmem.thinkers.base import Thinker, ThinkerError, ThinkRequest, ThinkResult

__all__ = ["Thinker", "ThinkerError", "ThinkRequest", "ThinkResult"]
