"""A small name → component table that normalises user input (after imbalanced-learn).

Every component registry (weighting schemes, losses, archs, metrics, samplers, pruners) is
one :class:`Registry`, filled by a decorator of one shape::

    @scheme("effective_number", aliases=(...), beta=Param(...))
    def _effective_number(counts, beta): '''w_c = (1−β)/(1−β^{n_c}) (Cui et al., 2019).'''

Each entry must document itself (its formula or source): :meth:`Registry.register` refuses
an entry without a docstring, and a name or alias that is already taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """``"Effective-Number "`` → ``"effective_number"``."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def entry_doc(obj: object) -> str:
    """An entry's documentation: its ``doc`` attribute (the registered function's docstring)
    when it has one, else its own docstring; ``""`` when there is none."""
    text = getattr(obj, "doc", None)
    if text is None:
        text = getattr(obj, "__doc__", None)
    return text.strip() if isinstance(text, str) else ""


class Registry(Generic[T]):
    """Registered components of one kind (``"weighting scheme"``, ``"loss"``, ``"arch"``).

    Names are normalised (case, ``-`` and spaces), aliases resolve to their target, and an
    unknown name raises ``ValueError`` listing the valid names.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        *,
        aliases: tuple[str, ...] = (),
        doc: str | None = None,
        replace: bool = False,
    ) -> Callable[[T], T]:
        """Decorator adding an entry as ``name`` (normalised) with ``aliases``.

        ``doc`` (default: :func:`entry_doc` of the entry) must be non-empty, else
        ``TypeError``; a name or alias already taken is a ``ValueError``, unless ``replace``
        (the same entry registered again, as a re-run notebook cell does).
        """
        key = normalise_name(name)
        alias_keys = [normalise_name(a) for a in aliases]

        def decorator(obj: T) -> T:
            text = entry_doc(obj) if doc is None else doc.strip()
            if not text:
                raise TypeError(
                    f"{self.kind} {key!r} needs a docstring giving its formula or source, "
                    f"but {getattr(obj, '__qualname__', type(obj).__name__)} has none."
                )
            keys = [key, *alias_keys]
            taken = [
                k for i, k in enumerate(keys) if (k in self and not replace) or k in keys[:i]
            ]
            if taken:
                raise ValueError(
                    f"{self.kind} {taken[0]!r} is already registered; expected a new name."
                )
            self._items[key] = obj
            self._aliases.update(dict.fromkeys(alias_keys, key))
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


def same_function(a: Any, b: Any) -> bool:
    """Whether two functions are one definition (same module and qualified name), as a
    re-run notebook cell or a re-imported module registers it again."""
    return all(getattr(a, k, None) == getattr(b, k, None) for k in ("__module__", "__qualname__"))
