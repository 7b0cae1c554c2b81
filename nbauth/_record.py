"""Immutable value objects without the import-time cost of dataclasses.

A frozen dataclass costs about 0.5-1 ms to define; nbauth defines a dozen of them on
``import nbauth``. :class:`Record` gives the same behaviour (immutable, equality and hash
by value, a repr that hides secret fields, ``replace``) from ``__slots__`` in microseconds.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from ._secret import Secret

__all__ = ["Record"]

R = TypeVar("R", bound="Record")


class Record:
    """Base of nbauth's value objects: fields are the ``__slots__``, ``_hidden`` ones stay out of the repr."""

    __slots__: tuple[str, ...] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name not in self._hidden)
        return f"{type(self).__name__}({shown})"

    def replace(self: R, **changes: Any) -> R:
        """A copy with some fields changed (``dataclasses.replace`` for records)."""
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return type(self)(**values)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by value without secrets: ``_hidden`` fields unpickle as None and :class:`Secret` values
        (a Token's access, refresh and id tokens) as "" - a pickle never carries them into a task graph.
        """
        values = {name: _public(name in self._hidden, getattr(self, name)) for name in self.__slots__}
        return _rebuild, (type(self), values)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _public(hidden: bool, value: Any) -> Any:
    """A field as it may be pickled: no Secret, at the top or as a value of a dict field (request params)."""
    if hidden:
        return None
    if isinstance(value, dict):
        return {k: ("" if isinstance(v, Secret) else v) for k, v in value.items()}
    return "" if isinstance(value, Secret) else value


def _rebuild(cls: type[R], values: dict[str, Any]) -> R:
    return cls(**values)
