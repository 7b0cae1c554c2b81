"""Links 2-4 of the credential chain that ``nbauth.login`` walks before asking anyone.

Link 2 is the environment's client credentials (``NBAUTH_CLIENT_ID`` with a secret or
``NBAUTH_PRIVATE_KEY``); when it applies, links 3 and 4 are skipped. Link 3 exchanges a
federated token file (``NBAUTH_FEDERATED_TOKEN_FILE``) for an access token: by token exchange
(RFC 8693 §2.1, subject token type jwt), or with ``NBAUTH_FEDERATED_GRANT=jwt-bearer`` as the
JWT bearer grant (RFC 7523 §2.1), for servers that take the federation's JWT as a grant;
link 4 takes the JupyterHub user's tokens (:mod:`nbauth._hub`). :mod:`nbauth._chain` explains them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._errors import AuthError, ConfigurationError
from ._providers import Provider

__all__ = [
    "FEDERATED_GRANTS",
    "FEDERATED_TOKEN_TYPE",
    "chain_links",
    "environment_link",
    "federated_grant",
    "federated_link",
    "federated_login",
    "hub_link",
]

FEDERATED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def environment_link(env: Mapping[str, str]) -> tuple[bool, str]:
    client_id = env.get("NBAUTH_CLIENT_ID")
    if not client_id:
        return False, "NBAUTH_CLIENT_ID is not set"
    if env.get("NBAUTH_CLIENT_SECRET"):
        return True, f"NBAUTH_CLIENT_ID={client_id} with NBAUTH_CLIENT_SECRET: client credentials"
    if env.get("NBAUTH_PRIVATE_KEY"):
        return True, f"NBAUTH_CLIENT_ID={client_id} with NBAUTH_PRIVATE_KEY: client credentials, private_key_jwt"
    return False, f"NBAUTH_CLIENT_ID={client_id} but neither NBAUTH_CLIENT_SECRET nor NBAUTH_PRIVATE_KEY is set"


def federated_link(env: Mapping[str, str]) -> tuple[bool, str]:
    path = env.get("NBAUTH_FEDERATED_TOKEN_FILE")
    if not path:
        return False, "NBAUTH_FEDERATED_TOKEN_FILE is not set"
    if not Path(path).is_file():
        return False, f"NBAUTH_FEDERATED_TOKEN_FILE names {path[:200]!r}, which is not a file"
    try:
        how = "as a JWT bearer grant" if federated_grant(env) == "jwt-bearer" else "by token exchange"
    except ConfigurationError as exc:  # the link applies, and login will stop with this error
        return True, f"the token in {path[:200]} would be exchanged, but {exc.message}"
    return True, f"the token in {path[:200]} is exchanged for an access token {how}"


def chain_links(provider: Provider) -> Any:
    """Links 3 and 4 for ``login``, unless link 2 (the environment's client credentials) applies."""
    if environment_link(os.environ)[0]:
        return None
    return federated_login(provider) or hub_link(provider)


def hub_link(provider: Provider) -> Any:
    """The JupyterHub link for ``login``: a Session from auth_state, or None when it does not apply."""
    from ._derived import hub_login
    from ._hub import hub_config

    if hub_config() is None:
        return None
    try:
        return hub_login(provider)
    except AuthError:
        return None  # skipped; `nbauth.explain(profile)` says why


def federated_login(provider: Provider, env: Mapping[str, str] | None = None) -> Any:
    """The federated-token link: exchange the file's token (RFC 8693 §2.1), or None when it does not apply."""
    env = os.environ if env is None else env
    applies, _ = federated_link(env)
    if not applies:
        return None
    subject = Path(env["NBAUTH_FEDERATED_TOKEN_FILE"]).read_text(encoding="ascii", errors="replace").strip()
    if federated_grant(env) == "jwt-bearer":
        from ._jwt_bearer import JWTBearer

        return provider.get_token(JWTBearer(subject, provider.scope), force=True)  # resource= is added (RFC 8707)
    from ._token_exchange import TokenExchange

    resource = provider.resource[0] if provider.resource else None
    return provider.get_token(
        TokenExchange(subject, FEDERATED_TOKEN_TYPE, scope=provider.scope, resource=resource), force=True
    )


#: NBAUTH_FEDERATED_GRANT values: how the federated token becomes an access token.
FEDERATED_GRANTS = ("token-exchange", "jwt-bearer")


def federated_grant(env: Mapping[str, str]) -> str:
    """``token-exchange`` (RFC 8693, the default) or ``jwt-bearer`` (RFC 7523 §2.1); else ConfigurationError."""
    grant = env.get("NBAUTH_FEDERATED_GRANT", "").strip().lower() or "token-exchange"
    if grant not in FEDERATED_GRANTS:
        raise ConfigurationError(
            f"NBAUTH_FEDERATED_GRANT={grant[:40]!r} is not one of {', '.join(FEDERATED_GRANTS)}: "
            "unset it for token exchange, or set jwt-bearer when the server takes the token as a grant"
        )
    return grant
