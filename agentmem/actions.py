"""Memory actions: what a policy decides. Policies return these; primitives carry them out."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = ["FoldAction", "EvictAction", "RecallAction", "UnrecallAction", "Action", "parse_action"]


class _ActionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    reason: str = ""


class FoldAction(_ActionBase):
    """Replace a contiguous span of whole units (item keys) with one block."""

    kind: Literal["fold"] = "fold"
    span: tuple[str, ...] = Field(min_length=1)
    mode: Literal["extractive", "think"] = "extractive"
    block_tokens: int | None = Field(default=None, ge=32,
                                     description="Size of the extractive block (the policy's memory allotment).")


class EvictAction(_ActionBase):
    """Take original messages out of the view, leaving stubs."""

    kind: Literal["evict"] = "evict"
    ids: tuple[str, ...] = Field(min_length=1)


class RecallAction(_ActionBase):
    """Bring archived content back, by message/block id or by a text query over the session's archive."""

    kind: Literal["recall"] = "recall"
    ids: tuple[str, ...] = ()
    query: str | None = None
    budget_tokens: int | None = Field(default=None, ge=16)


class UnrecallAction(_ActionBase):
    """Drop recalled snippets that are no longer needed."""

    kind: Literal["unrecall"] = "unrecall"
    keys: tuple[str, ...] = Field(min_length=1)


Action = Annotated[FoldAction | EvictAction | RecallAction | UnrecallAction, Field(discriminator="kind")]
_ADAPTER = TypeAdapter(Action)


def parse_action(data: object) -> FoldAction | EvictAction | RecallAction | UnrecallAction:
    """Strictly validate one action given as a dict (e.g. parsed from a thinker's JSON)."""
    return _ADAPTER.validate_python(data)
