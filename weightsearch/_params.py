"""Parameter constraints shared by every registry entry (after scikit-learn's constraints)."""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Param:
    """One hyperparameter of a registered component.

    ``low``/``high`` bound numeric values (``low_open``/``high_open`` make a bound
    exclusive); ``choices`` lists allowed values; ``log`` hints a log-scale search;
    ``integer`` requires an ``int``. In a user component's signature
    (``width: Annotated[int, Param(low=8, high=512, log=True)] = 32``) the default comes from
    the signature, so it is left out.
    """

    default: Any = None
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


class AnyText(Param):
    """A string parameter without a fixed list of choices: any string is valid."""

    def describe(self) -> str:
        return "a string"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be {self.describe()}, but got {value!r}.")
        return value


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_TYPES = {int: "int", float: "float", bool: "bool", str: "str"}


def params_from_signature(
    fn: Callable[..., Any], *, leading: tuple[str, ...], owner: str, passed: tuple[str, ...] = ()
) -> dict[str, Param]:
    """The searchable parameters of a user component: its typed keyword defaults.

    ``fn`` takes the ``leading`` arguments positionally, then each parameter as
    ``name: T = default`` with ``T`` one of int, float, bool, str, or
    ``Annotated[T, Param(...)]`` for bounds, a log scale or choices. int and float without
    a ``Param`` accept any finite number (int: integers only); bool is True or False; str
    is any string. Names in ``passed`` are given by weightsearch, not searched. A parameter
    without a default or a type is a ``TypeError`` naming ``owner``, the function and it.
    """
    func = f"{getattr(fn, '__qualname__', repr(fn))}()"
    if not callable(fn):
        raise TypeError(f"{owner}: expected a function, but got {fn!r}.")
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise TypeError(f"{owner}: cannot read the signature of {func}: {exc}") from None
    params = list(sig.parameters.values())
    first = params[: len(leading)]
    if len(first) < len(leading) or any(p.kind not in _POSITIONAL for p in first):
        raise TypeError(
            f"{owner}: {func} must take ({', '.join(leading)}, ...) positionally first, "
            f"but its signature is {sig}."
        )
    table: dict[str, Param] = {}
    for p in params[len(leading):]:
        where = f"{owner}: parameter {p.name!r} of {func}"
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(
                f"{where}: *args/**kwargs cannot be searched; expected each parameter as a "
                "typed keyword with a default, e.g. `width: int = 32`."
            )
        if p.name in passed:
            continue
        if p.default is inspect.Parameter.empty:
            raise TypeError(
                f"{where} has no default; expected a typed keyword default such as "
                f"`{p.name}: int = 32`."
            )
        table[p.name] = _param_of(hints.get(p.name), p.default, where)
    return table


def _param_of(hint: Any, default: Any, where: str) -> Param:
    given: Param | None = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *meta = typing.get_args(hint)
        given = next((m for m in meta if isinstance(m, Param)), None)
    if hint not in _TYPES:
        what = "no type annotation" if hint is None else f"type {hint!r}"
        raise TypeError(
            f"{where} has {what}; expected int, float, bool or str "
            "(or typing.Annotated[T, Param(...)])."
        )
    ok = isinstance(default, hint) and not (hint is not bool and isinstance(default, bool))
    if hint is float and isinstance(default, int) and not isinstance(default, bool):
        ok = True
    if not ok:
        raise TypeError(f"{where}: its default {default!r} is not of its type {_TYPES[hint]}.")
    doc = "" if given is None else given.doc
    if given is not None and (given.choices is not None or hint in (int, float)):
        param = replace(given, default=default, integer=given.integer or hint is int)
    elif hint is bool:
        param = Param(default, choices=(True, False), doc=doc)
    elif hint is str:
        param = AnyText(default, doc=doc)
    else:
        param = Param(default, integer=hint is int)
    try:
        param.check(default, "its default")
    except ValueError as exc:
        raise TypeError(f"{where}: {exc}") from None
    return param
