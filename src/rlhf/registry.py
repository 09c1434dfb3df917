"""One generic name -> object registry, used for advantage estimators, KL estimators and rewards.

The registry is the only list of valid names: profile validation, the CLI and the loop all read it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of objects of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@registry.register("k3")`` stores the decorated object under ``name``."""
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """The object registered as ``name``; a ``KeyError`` listing valid names (and the nearest) otherwise."""
        key = name.lower()
        if key in self._items:
            return self._items[key]
        close = difflib.get_close_matches(key, self._items, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}.{hint}")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
