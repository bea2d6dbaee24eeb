"""Parameter constraints shared by every registry entry (after scikit-learn's constraints)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a registered component.

    ``low``/``high`` bound numeric values (``low_open``/``high_open`` make a bound
    exclusive); ``choices`` lists allowed values; ``log`` hints a log-scale search;
    ``integer`` requires an ``int``.
    """

    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    integer: bool = False
    log: bool = False
    doc: str = ""

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.integer else "a number"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{kind} in {lo}{low}, {high}{hi}"

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` if valid, else raise ``ValueError`` naming ``where``."""
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.")
        if self.integer and not float(value).is_integer():
            raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.")
        v = float(value)
        bad = not math.isfinite(v)
        if self.low is not None:
            bad |= v <= self.low if self.low_open else v < self.low
        if self.high is not None:
            bad |= v >= self.high if self.high_open else v > self.high
        if bad:
            raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.")
        return int(value) if self.integer else value


def check_params(
    params: dict[str, Any], table: dict[str, Param], owner: str
) -> dict[str, Any]:
    """Fill defaults and validate ``params`` against ``table``; unknown names are an error."""
    unknown = sorted(set(params) - set(table))
    if unknown:
        expected = ", ".join(table) or "no parameters"
        raise ValueError(f"{owner} got unknown parameter(s) {unknown}; expected {expected}.")
    out = {name: p.default for name, p in table.items()}
    for name, value in params.items():
        out[name] = table[name].check(value, f"{owner}: {name}")
    return out
