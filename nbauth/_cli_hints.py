"""What the ``nbauth`` command says when there is nothing to use: the fix first, in shell terms.

Notebook messages (``provider.device_login()``, "no notebook frontend") make no sense in a
terminal; these replace them for the command line, with a "did you mean" for typos of a
profile or session name (difflib, as argparse does for sub-commands).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ._errors import ConfigurationError, LoginRequired

__all__ = ["HELP", "check_profile_name", "did_you_mean", "no_session"]

HELP = """\
Log in to OAuth 2.0 / OpenID Connect providers and get tokens for shell cells and scripts.
Sessions are shared with notebooks through nbauth's cache.

  nbauth login analytics                      # device code (or the profile's flow) in the terminal
  curl -H "Authorization: Bearer $(nbauth token analytics)" https://api.example.com/v1/sales
"""


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, when one is close enough to be a typo."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return close[0] if close else None


def no_session(command: str, name: str | None, profiles: Iterable[str], sessions: Iterable[str]) -> LoginRequired:
    """The LoginRequired for ``nbauth COMMAND NAME`` when no usable session was found."""
    profiles, sessions = sorted(set(profiles)), sorted(set(sessions))
    known = ", ".join(sorted({*profiles, *sessions})) or "none"
    if name is None:
        target = profiles[0] if len(profiles) == 1 else "PROFILE"
        return LoginRequired(
            f"Log in first: nbauth login {target}  (no session in the cache yet; "
            f"profiles: {', '.join(profiles) or 'none'})"
        )
    if name in profiles:
        return LoginRequired(
            f"Log in first: nbauth login {name}  (no usable session for {name!r} in the cache; "
            "for unattended runs set NBAUTH_CLIENT_ID and NBAUTH_CLIENT_SECRET)"
        )
    guess = did_you_mean(name, [*profiles, *sessions])
    if guess is not None:
        return LoginRequired(
            f"Did you mean {guess!r}? nbauth {command} {guess}  (no profile or session is named {name!r})"
        )
    return LoginRequired(
        f"Add a profile named {name!r} (nbauth list shows the profile file), or log in with "
        f"an issuer URL: nbauth login https://ISSUER --client-id ID  (no profile or session is "
        f"named {name!r}; known: {known})"
    )


def check_profile_name(target: str, profiles: Iterable[str]) -> None:
    """``nbauth login dmeo``: a ConfigurationError that offers the profile meant, when one is close."""
    names = list(profiles)
    if target.startswith(("https://", "http://")) or target in names:
        return
    guess = did_you_mean(target, names)
    if guess is not None:
        raise ConfigurationError(f"Did you mean {guess!r}? nbauth login {guess}  (no profile is named {target!r})")
