"""Distances: pgvector's operator, index operator class and relevance map of each."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import VectorType

__all__ = ["Distance"]


def _cosine_relevance(distance: float) -> float:
    # cosine distance lies in [0, 2]
    return min(1.0, max(0.0, 1.0 - distance / 2.0))


def _inner_product_relevance(distance: float) -> float:
    # pgvector's <#> returns the negative inner product; for unit vectors the
    # inner product lies in [-1, 1]. Clamp so unnormalised vectors stay in range.
    return min(1.0, max(0.0, (1.0 - distance) / 2.0))


def _reciprocal_relevance(distance: float) -> float:
    # L1 and L2 distances are unbounded: 1 / (1 + d) is 1 for an exact match
    # and falls monotonically towards 0.
    if math.isnan(distance):
        return 0.0
    return 1.0 / (1.0 + max(0.0, distance))


class Distance(StrEnum):
    """How closeness between two vectors is measured.

    Each member is one row: its name, pgvector's operator, the operator-class
    suffix of its indexes, whether IVFFlat supports it, the distance-to-relevance
    map, and the aliases `parse` accepts.
    """

    _operator: str
    _opclass: str
    _ivfflat: bool
    _relevance: Callable[[float], float]
    _aliases: tuple[str, ...]

    def __new__(
        cls,
        value: str,
        operator: str,
        opclass: str,
        ivfflat: bool,
        relevance: Callable[[float], float],
        aliases: tuple[str, ...],
    ) -> Distance:
        member = str.__new__(cls, value)
        member._value_ = value
        member._operator = operator
        member._opclass = opclass
        member._ivfflat = ivfflat
        member._relevance = relevance
        member._aliases = aliases
        return member

    #        name            operator opclass      ivfflat relevance                aliases
    COSINE = ("cosine", "<=>", "cosine_ops", True, _cosine_relevance, ())
    L2 = ("l2", "<->", "l2_ops", True, _reciprocal_relevance, ("euclidean",))
    INNER_PRODUCT = (
        "inner_product", "<#>", "ip_ops", True, _inner_product_relevance,
        ("ip", "dot", "max_inner_product"),
    )  # fmt: skip
    L1 = ("l1", "<+>", "l1_ops", False, _reciprocal_relevance, ("manhattan", "taxicab"))

    @classmethod
    def parse(cls, value: str | Distance) -> Distance:
        """Accept a `Distance` or its name (a few common aliases included)."""
        if isinstance(value, Distance):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"distance must be a string or a Distance, got {value!r}")
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        for member in cls:
            if key == member.value or key in member._aliases:
                return member
        names = ", ".join(d.value for d in cls)
        raise ConfigError(f"unknown distance {value!r}; expected one of {names}")

    @property
    def operator(self) -> str:
        """The pgvector operator that orders rows nearest first (`<=>`, `<->`, ...)."""
        return self._operator

    @property
    def ivfflat(self) -> bool:
        """Whether pgvector's IVFFlat has an operator class for this distance."""
        return self._ivfflat

    def opclass(self, vector_type: VectorType) -> str:
        """The index operator class the store's own queries can use."""
        return f"{vector_type.value}_{self._opclass}"

    def relevance(self) -> Callable[[float], float]:
        """Map the operator's distance to a relevance score in [0, 1], higher is closer."""
        return self._relevance
