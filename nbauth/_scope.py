"""Scopes (RFC 6749 §3.3): the one way nbauth reads, writes and compares them.

A scope is held as a tuple of unique names in their first-seen order. Users may pass a
string (space- or comma-separated) or a list; servers answer space-delimited strings
(Fusio: comma-separated) or lists. :func:`scope_key` is the order-free form the cache keys
and the reuse rules compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import ProviderError

__all__ = ["Scope", "join_scope", "parse_scope", "scope_items", "scope_key"]

Scope = str | Sequence[str] | None


def scope_items(scope: Any, separator: str | None = None) -> tuple[str, ...]:
    """A scope as a tuple of unique names, in order.

    ``separator=None`` (what users type) splits on spaces and commas; a server's answer is
    split on its ``separator`` (RFC 6749 §3.3: a space). Lists and tuples are taken as they
    are. Anything else is a :class:`ProviderError` (it only comes from a server's answer).
    """
    if scope is None:
        return ()
    if isinstance(scope, str):
        if separator is None:
            items: list[str] = scope.replace(",", " ").split()
        else:
            items = scope.split(separator) if separator.strip() else scope.split()
    elif isinstance(scope, (list, tuple)):
        items = [str(s) for s in scope]
    else:
        raise ProviderError(f"scope has an unexpected type ({type(scope).__name__})")
    return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


def parse_scope(value: Any, separator: str = " ") -> tuple[str, ...]:
    """The scope of a token response (RFC 6749 §5.1), split on the server's separator."""
    return scope_items(value, separator)


def join_scope(scope: Scope, separator: str = " ") -> str | None:
    """Render a scope for a request (RFC 6749 §3.3: space-delimited; Fusio: commas); None when empty."""
    items = scope_items(scope)
    return separator.join(items) if items else None


def scope_key(scope: Scope) -> str:
    """The order- and duplicate-free form of a scope, for cache keys and reuse decisions."""
    return " ".join(sorted(scope_items(scope)))
