"""What the ``nbauth`` command says when there is nothing to use: the fix first, in shell terms.

Notebook messages (``provider.device_login()``, "no notebook frontend") make no sense in a
terminal; these replace them for the command line, with a "did you mean" for typos of a
profile or session name (difflib, as argparse does for sub-commands).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ._errors import (
    AuthError,
    ConfigurationError,
    InvalidClient,
    InvalidGrant,
    LoginCancelled,
    LoginRequired,
    OAuthError,
    ProviderError,
    VerificationError,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_OTHER",
    "EXIT_USAGE",
    "HELP",
    "check_profile_name",
    "did_you_mean",
    "exit_code",
    "no_session",
]

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


#: (exit code, error class, meaning) - most specific class first; 0 ok, 1 any other failure.
EXIT_CODES: tuple[tuple[int, type[BaseException], str], ...] = (
    (10, LoginCancelled, "the login was cancelled (Ctrl-C, denied)"),
    (3, LoginRequired, "no usable session: log in first (nbauth login NAME) or provide client credentials"),
    (4, InvalidGrant, "credentials, code or refresh token rejected (invalid_grant)"),
    (5, InvalidClient, "client id / secret / client_auth rejected (invalid_client)"),
    (6, OAuthError, "another OAuth error from the provider (invalid_scope, access_denied, ...)"),
    (7, ProviderError, "provider unreachable, or its answer was not usable OAuth"),
    (8, VerificationError, "a security check failed (issuer, state, id_token)"),
    (9, ConfigurationError, "bad profile, argument or URL"),
)
EXIT_USAGE = 2
EXIT_OTHER = 1
#: the fix, in shell terms, printed before the reason ({name}: the profile or session of the command line)
_NEXT_STEP = {
    LoginCancelled: "Run it again when ready: nbauth login {name}",
    LoginRequired: "Log in first: nbauth login {name}  (or set NBAUTH_CLIENT_ID and NBAUTH_CLIENT_SECRET)",
    InvalidGrant: "Check the username and password, or log in again: nbauth login {name} --force",
    InvalidClient: "Check client_id, client_secret and client_auth in the profile (nbauth list shows the file), "
    "NBAUTH_CLIENT_SECRET, or store the secret: nbauth secret {name}",
    ProviderError: "Check the URL, your network and proxy settings; if the provider is down, try later.",
    VerificationError: "Check the issuer URL and the system clock; do not turn security checks off.",
    ConfigurationError: "Fix the profile or the arguments (nbauth list shows the profile file).",
}

_EPILOG = (
    "exit codes:\n  0   ok\n  1   any other failure\n  2   usage error (bad command line)\n"
    + "".join(f"  {code:<3} {cls.__name__}: {what}\n" for code, cls, what in sorted(EXIT_CODES, key=lambda c: c[0]))
    + """
environment:
  NBAUTH_CONFIG         profile file (default: profiles.toml in the user config dir)
  NBAUTH_CACHE_DIR      token cache directory; NBAUTH_CACHE=off keeps tokens in memory only
  NBAUTH_CLIENT_ID      client id for unattended runs (client credentials)
  NBAUTH_CLIENT_SECRET  its secret (never put it on the command line)
  NBAUTH_PROFILE        the profile used when no NAME is given
"""
)


def exit_code(exc: BaseException) -> int:
    """The process exit code for an exception (see ``nbauth --help``)."""
    if isinstance(exc, KeyboardInterrupt):
        return 10
    for code, cls, _ in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_OTHER


def _next_step(exc: AuthError, name: str | None = None) -> str | None:
    """What to do next, unless the message already says it."""
    text = str(exc)
    if "nbauth " in text or "NBAUTH_CLIENT" in text or "; use " in text:
        return None
    for cls, step in _NEXT_STEP.items():
        if isinstance(exc, cls):
            return step.format(name=name or "NAME")
    return None
