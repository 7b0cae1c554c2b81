"""Where nbauth finds credentials: the chain behind ``nbauth.login(profile)``, and ``nbauth.explain``.

The links, first that applies wins (design.md, "One login, wherever the notebook runs"):

1. ``arguments`` - an explicit ``flow=`` (or ``client_id=``) in the call;
2. ``environment`` - ``NBAUTH_CLIENT_ID`` with ``NBAUTH_CLIENT_SECRET`` or ``NBAUTH_PRIVATE_KEY``
   (client credentials, RFC 6749 §4.4; with a key, ``private_key_jwt``, RFC 7523 §2.2);
3. ``federated token file`` - ``NBAUTH_FEDERATED_TOKEN_FILE`` (e.g. a Kubernetes service-account
   token) exchanged for an access token (RFC 8693 §2.1 with ``subject_token_type`` jwt);
4. ``jupyterhub`` - the hub user's own tokens from auth_state, for the profile's issuer;
5. ``cache`` - a valid or refreshable session for the same provider, client and scope;
6. ``interactive`` - the profile's flow, when a notebook frontend (or a terminal) can ask.

:func:`explain` walks the same links without sending a secret or any token request; the only
request it may make is to the hub (when this kernel is on one) and the issuer's JWKS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._errors import AuthError
from ._links import environment_link, federated_link
from ._profiles import Profile, get_profile, has_frontend, provider_for
from ._providers import Provider
from ._scope import scope_items

__all__ = ["Explanation", "cmd_explain", "explain"]


class Explanation:
    """``str()`` is the answer; ``chosen`` the first link that applies (None: none); ``links`` the
    (name, applies, reason) rows in chain order.
    """

    __slots__ = ("chosen", "links", "profile")

    def __init__(self, profile: str, links: list[tuple[str, bool, str]]) -> None:
        self.profile = profile
        self.links = links
        self.chosen = next((name for name, applies, _ in links if applies), None)

    def __str__(self) -> str:
        head = (
            f"nbauth.login({self.profile!r}) would use: {self.chosen}"
            if self.chosen
            else f"nbauth.login({self.profile!r}): no link applies - it would raise LoginRequired"
        )
        rows = []
        for name, applies, reason in self.links:
            mark = "->" if name == self.chosen else ("  " if not applies else " +")
            rows.append(f"{mark} {name:<22} {reason}")
        return "\n".join([head, *rows])

    def __repr__(self) -> str:
        return f"<nbauth.Explanation {self.profile!r} chosen={self.chosen!r}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _cache(provider: Provider, scope: Any) -> tuple[bool, str]:
    from ._entries import load_entries
    from ._registry import get_holder, holders
    from ._reuse import Intent, alive, matches

    client = provider.client_id or ""
    intent = Intent("device_login", client, scope=scope_items(scope if scope is not None else provider.scope))
    for entry in [h.entry for h in holders()] + load_entries():
        if matches(entry, provider, intent) and alive(entry, get_holder(entry.key), provider):
            who = f" of {entry.username or entry.token.user}" if (entry.username or entry.token.user) else ""
            return True, f"a cached session{who} ({entry.name!r}, {entry.login}) is valid or refreshable"
    return False, f"no valid or refreshable cached session for {provider.issuer_key} / {client or '-'}"


def _interactive(profile: Profile, provider: Provider) -> tuple[bool, str]:
    from ._profiles import default_flow

    flow = profile.flow or default_flow(provider)
    if has_frontend():
        return True, f"a notebook frontend is attached: the {flow} flow asks the user"
    return False, "no notebook frontend to ask anyone (papermill, nbval, a script or a job)"


def explain(
    name: str | None = None, *, scope: str | list[str] | None = None, environ: Mapping[str, str] | None = None
) -> Explanation:
    """Which link of the chain ``nbauth.login(name)`` would take, and why each earlier one was skipped."""
    env = os.environ if environ is None else environ
    profile = get_profile(name)
    links: list[tuple[str, bool, str]] = [("arguments", False, "no flow= or client_id= given")]
    links.append(("environment", *environment_link(env)))
    links.append(("federated token file", *federated_link(env)))
    try:
        provider = provider_for(profile, service=False)
    except AuthError as exc:
        links.append(("profile", False, f"the provider cannot be built: {exc.message}"))
        return Explanation(profile.name, links)
    from ._hub import hub_status

    links.append(("jupyterhub", *hub_status(provider, env)))
    links.append(("cache", *_cache(provider, scope)))
    links.append(("interactive", *_interactive(profile, provider)))
    return Explanation(profile.name, links)


def cmd_explain(args: Any) -> int:
    """``nbauth explain [PROFILE]``: print the credential chain, link by link."""
    print(explain(args.profile), flush=True)
    return 0
