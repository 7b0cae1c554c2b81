"""The ``nbauth`` command (also ``python -m nbauth``): log in from a terminal, print tokens for
shell cells (``!curl -H "Authorization: Bearer $(nbauth token analytics)" ...``), list,
inspect and forget sessions. It shares the cache and the single-flight refresh with notebooks.

Only ``nbauth token`` writes a token, and only to stdout; prompts, device codes and
diagnostics go to stderr, which never receives a secret. Each error class has its own exit
code (:data:`EXIT_CODES`), so scripts can tell "log in first" from "wrong password".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._chain import cmd_explain
from ._cli_hints import (
    _EPILOG,
    EXIT_CODES,
    EXIT_OTHER,
    _next_step,
    check_profile_name,
    did_you_mean,
    exit_code,
    no_session,
)
from ._cli_hints import HELP as _HELP
from ._credentials import delete_keyring_secret, store_keyring_secret
from ._dpop import check_printable
from ._entries import load_entries
from ._errors import (
    AuthError,
    ConfigurationError,
    LoginRequired,
    ProviderError,
)
from ._lookup import session, sessions
from ._profiles import (
    FLOWS,
    Profile,
    config_path,
    default_flow,
    get_profile,
    keyring_username,
    load_profiles,
    login,
    provider_for,
    run_flow,
)
from ._session import Session
from ._store import current_store
from ._terminal import printable
from ._tokens import TokenState

__all__ = ["EXIT_CODES", "exit_code", "main"]


def _say(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)  # server text may carry terminal escapes


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str), flush=True)


def summary(s: Session) -> dict[str, Any]:
    """A session's public facts (no token) for --json output."""
    token = s.entry.token
    left = token.expires_in
    return {
        "name": s.name,
        "id": s.id,
        "user": s.user,
        "issuer": s.key.issuer,
        "client_id": s.key.client_id or None,
        "scope": list(token.scope) or s.key.scope.split(),
        "login": s.login_kind,
        "expires_at": token.expires_at,
        "expires_in": None if left is None else round(left),
        "refreshable": token.refreshable,
    }


def _line(s: Session) -> str:
    who = s.user or f"client {s.key.client_id}"
    return f"{s.id}: {who} at {s.key.issuer} ({s.expiry_text()})"


def _profile_or_none(name: str | None) -> Profile | None:
    name = name or os.environ.get("NBAUTH_PROFILE") or None
    if name is None:
        return None
    if name.startswith(("https://", "http://")) or name in load_profiles():
        return get_profile(name)
    return None


def _no_session(command: str, name: str | None) -> LoginRequired:
    return no_session(
        command, name or os.environ.get("NBAUTH_PROFILE") or None, load_profiles(), [row["name"] for row in sessions()]
    )


def resolve(name: str | None, command: str = "token") -> Session:
    """The session for a profile or session name: the cached one, else an unattended login."""
    profile = _profile_or_none(name)
    if profile is None:
        try:
            return session(name)
        except LoginRequired:
            raise _no_session(command, name) from None
    try:
        found = session(profile.name)
    except LoginRequired:
        try:
            return login(name or profile.name, interactive=False)
        except LoginRequired as exc:
            if "frontend" not in str(exc):  # its own reason (a missing secret...): keep it
                raise
            raise _no_session(command, name) from None
    if found.entry.token.state(found.provider.refresh_leeway) is not TokenState.FRESH:
        provider = provider_for(profile)  # the profile's provider holds the secret a refresh may need
        if provider.client_secret:
            found.renew_with(provider)
    return found


# ---------------------------------------------------------------------------- commands
def cmd_login(args: argparse.Namespace) -> int:
    check_profile_name(args.target, load_profiles())
    profile = get_profile(args.target, client_id=args.client_id)
    if args.name:
        profile = profile.replace(name=args.name)
    flow = args.flow or ("password" if args.password_stdin else None) or profile.flow
    provider = provider_for(profile, service=flow == "client_credentials")
    flow = flow or default_flow(provider)
    username = args.username or profile.settings.get("username")
    if flow == "password" and args.password_stdin:
        if not username:
            raise ConfigurationError("--password-stdin needs --username (or username in the profile)")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise LoginRequired("--password-stdin: no password on standard input")
        try:
            s = provider.get_token_by_password(username, password, args.scope, force=args.force)
        finally:
            del password
    elif flow == "password" and not (sys.stdin and sys.stdin.isatty()):
        raise LoginRequired(
            f"{profile.name}: no terminal to ask for the password; use --password-stdin with "
            "--username, the device flow (--device), or client credentials"
        )
    else:
        with contextlib.redirect_stdout(sys.stderr):  # the device code and messages go to stderr
            s = run_flow(provider, flow, args.scope, args.force, profile, username=username)
    announced = flow != "client_credentials" and not args.password_stdin  # the flow said "Logged in to ..."
    if args.json:
        _emit(summary(s))
    elif not announced:
        _say(f"Logged in. {_line(s)}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    s = resolve(args.name, "token")
    token = s.fresh_token(force=args.refresh, seen=s.entry.token.access_token if args.refresh else None)
    check_printable(token, s.name)  # a DPoP-bound token (RFC 9449) is useless to other tools
    if args.json:
        left = token.expires_in
        _emit(
            {
                "access_token": token.access_token,
                "token_type": token.token_type,
                "name": s.name,
                "expires_at": token.expires_at,
                "expires_in": None if left is None else round(left),
                "scope": list(token.scope),
            }
        )
    else:
        print(token.access_token, flush=True)
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    s = resolve(args.name, "whoami")
    if s.login_kind == "client_credentials":
        claims: dict[str, Any] = {"client_id": s.key.client_id}  # no user behind a service token
    else:
        claims = s.whoami()
    if args.json:
        _emit({"session": summary(s), "claims": claims})
    else:
        print(printable(_line(s)))
        for key in ("sub", "preferred_username", "name", "email", "client_id"):
            if claims.get(key):
                print(f"  {key}: {printable(claims[key], newlines=False)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = config_path()
    profiles = load_profiles(path)
    table = sessions()
    if args.json:
        _emit(
            {
                "config": str(path),
                "profiles": [p.describe() for p in profiles.values()],
                "sessions": [{k: v for k, v in row.items()} for row in table],
            }
        )
        return 0
    state = "has none" if path.exists() else "does not exist"
    print(f"Profiles in {path}:" if profiles else f"No profiles ({path} {state}).")
    for p in profiles.values():
        d = p.describe()
        print(
            f"  {p.name}: {d['preset']} {d['url']}{' realm ' + d['realm'] if d['realm'] else ''}, "
            f"client {d['client_id'] or '-'}, flow {d['flow'] or 'auto'}"
        )
    print()
    print(printable(table))
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    if args.all == bool(args.name):
        raise ConfigurationError("give a session NAME or --all")
    with contextlib.suppress(AuthError):  # best effort: the live provider holds the secret to revoke with
        profile = _profile_or_none(args.name) if args.name else None
        if profile is not None:
            provider_for(profile)
    problems: list[str] = []
    count = 0
    for _ in range(1000):  # every live session of that name (or all), newest first
        try:
            s = session(args.name)
        except LoginRequired:
            break
        count += 1
        try:
            s.logout()
        except ProviderError as exc:
            problems.append(f"{s.name}: {exc.message}")
    store = current_store()
    if args.all:
        count += store.wipe()
    else:
        for entry in load_entries(store):  # dead (unrefreshable) entries of that name
            if entry.name == args.name:
                with store.lock(entry.key.digest):
                    store.delete(entry.key.digest)
                count += 1
    if count == 0 and not args.all:
        names = sorted({row["name"] for row in sessions()})
        guess = did_you_mean(args.name, names)
        fix = (
            f"Did you mean {guess!r}? nbauth logout {guess}  ("
            if guess
            else "nothing to log out (nbauth list shows the sessions; "
        )
        raise LoginRequired(f"{fix}no session is named {args.name!r}; sessions: {', '.join(names) or 'none'})")
    _say(f"Logged out of {count} session(s); their cache entries are gone.")
    for problem in problems:  # forgotten locally all the same: report, do not fail
        _say(f"nbauth: warning: {problem}")
    return 0


def cmd_secret(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    if not profile.client_id:
        raise ConfigurationError(f"profile {profile.name!r} has no client_id")
    issuer_key = profile.provider().issuer_key
    user = keyring_username(profile.client_id, issuer_key)
    if args.delete:
        delete_keyring_secret(profile.client_id, issuer_key)
        _say(f"Removed the client secret of {user} from the keyring.")
        return 0
    if sys.stdin and sys.stdin.isatty():
        import getpass

        secret = getpass.getpass(f"Client secret for {user}: ")
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise ConfigurationError("no secret given")
    backend = store_keyring_secret(profile.client_id, issuer_key, secret)
    del secret
    _say(f"Stored the client secret of {user} in the keyring ({backend}).")
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbauth", description=_HELP, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from importlib import metadata

    parser.add_argument("--version", action="version", version=f"nbauth {metadata.version('nbauth')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=text, description=text, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.set_defaults(func=func)
        return p

    p = command("login", cmd_login, "log in with a profile, or an issuer URL (OpenID discovery)")
    p.add_argument("target", metavar="PROFILE|ISSUER")
    flows = p.add_mutually_exclusive_group()
    for flow in FLOWS:
        flows.add_argument(
            f"--{flow.replace('_', '-')}",
            dest="flow",
            action="store_const",
            const=flow,
            help=f"use the {flow.replace('_', ' ')} flow",
        )
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--username", help="user name for the password flow")
    p.add_argument("--scope", help="scope to request (default: the profile's)")
    p.add_argument("--client-id", help="client id (with an issuer URL; default NBAUTH_CLIENT_ID)")
    p.add_argument("--name", help="session name (default: the profile name)")
    p.add_argument("--force", action="store_true", help="log in anew even if a valid session is cached")
    p.add_argument("--json", action="store_true", help="print the session as JSON on stdout")

    p = command("token", cmd_token, "print a valid access token (refreshed when due) on stdout")
    p.add_argument("name", nargs="?", metavar="NAME", help="profile or session name (default: the newest)")
    p.add_argument("--refresh", action="store_true", help="renew the token now")
    p.add_argument("--json", action="store_true", help="token, expiry and scope as JSON")

    p = command("list", cmd_list, "list profiles and cached sessions")
    p.add_argument("--json", action="store_true")

    p = command("whoami", cmd_whoami, "show who a session belongs to (verified id_token or UserInfo)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true")

    p = command("logout", cmd_logout, "revoke and forget a session (or --all: wipe the cache)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every session: revoke what can be, wipe the cache")

    command("explain", cmd_explain, "say where `nbauth login PROFILE` finds credentials, and why").add_argument(
        "profile", nargs="?", metavar="PROFILE"
    )

    p = command("secret", cmd_secret, "store a profile's client secret in the OS keyring (from stdin/getpass)")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--delete", action="store_true", help="remove it from the keyring")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see ``nbauth --help``)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        _say("nbauth: cancelled.")
        return exit_code(KeyboardInterrupt())
    except AuthError as exc:
        step = _next_step(exc, getattr(args, "target", None) or getattr(args, "name", None))
        if step:  # the fix first, then why
            _say(f"nbauth: {step}")
            _say(f"  {type(exc).__name__}: {exc}")
        else:
            _say(f"nbauth: {exc}")
        return exit_code(exc)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OTHER
    return code
