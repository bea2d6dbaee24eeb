"""A small name → component table that normalises user input (after imbalanced-learn)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """``"Effective-Number "`` → ``"effective_number"``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


class Registry(Generic[T]):
    """Registered components of one kind (``"weighting scheme"``, ``"loss"``, ``"arch"``).

    Names are normalised (case, ``-`` and spaces), aliases resolve to their target, and an
    unknown name raises ``ValueError`` listing the valid names.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        key = normalise_name(name)

        def decorator(obj: T) -> T:
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered.")
            self._items[key] = obj
            for alias in aliases:
                self._aliases[normalise_name(alias)] = key
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (resolving aliases); ``ValueError`` if unknown."""
        if not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a string, but got {name!r}.")
        key = normalise_name(name)
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise ValueError(
                f"Unknown {self.kind} {name!r}; expected one of: {', '.join(self.names(True))}."
            )
        return key

    def get(self, name: str | Mapping[str, Any]) -> T:
        """Look up by name, or by a ``{"name": ...}`` mapping."""
        if isinstance(name, Mapping):
            name = name["name"]
        return self._items[self.canonical(name)]

    def names(self, with_aliases: bool = False) -> list[str]:
        names = list(self._items)
        if with_aliases:
            names += list(self._aliases)
        return names

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        try:
            self.canonical(name)  # type: ignore[arg-type]
        except ValueError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
