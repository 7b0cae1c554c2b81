"""Secrets in a type whose repr never shows them.

A :class:`Secret` is a ``str`` (it is sent, encoded and compared like one) whose ``repr`` is
``'***'``. Tokens, passwords, client secrets and the Authorization headers nbauth builds are
carried as Secrets, so a traceback in IPython's verbose mode, which prints every frame's
locals with ``repr``, a ``dict`` of request fields in a log line, or a debugger's variable
view shows ``'***'`` instead of the value.
"""

from __future__ import annotations

__all__ = ["Secret", "secret"]


class Secret(str):
    """A string that is never shown: ``repr(Secret("x")) == "'***'"``; ``str()`` gives the value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        # pickled (rarely: nbauth never pickles one itself) as the plain value it is
        return (str, (str(self),))


def secret(value: str | None) -> Secret | None:
    """``value`` as a :class:`Secret` (None and "" stay None)."""
    if not value:
        return None
    return value if isinstance(value, Secret) else Secret(value)
