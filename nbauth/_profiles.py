"""Profiles and ``nbauth.login(name)``: URLs and client ids kept out of notebooks.

A profile is a table in a TOML file (``NBAUTH_CONFIG``, else ``profiles.toml`` in the user
config dir from platformdirs)::

    [analytics]
    preset = "keycloak"          # keycloak | identityserver | simpleidserver | fusio | discover | oauth2
    server_url = "https://sso.example.com"
    realm = "analytics"
    client_id = "jupyter"
    scope = "openid profile"
    flow = "device"              # device | password | browser | client_credentials

:func:`login` picks the flow: the profile's in a notebook frontend; without one (papermill,
nbval, cron) client credentials when a secret is at hand, else a cached session, else a
:class:`LoginRequired` that says what to set - it never waits for input nobody can give.
A ``client_secret`` in the file is refused unless the file is private (0600).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _login
from ._credentials import keyring_secret as read_keyring
from ._credentials import keyring_username
from ._errors import ConfigurationError, LoginRequired
from ._perms import refuse_unsafe_config
from ._presets import Fusio, IdentityServer, Keycloak, SimpleIdServer
from ._profile_schema import _PROVIDER_KEYS, FLOWS, PRESETS, _check, _toml_load
from ._providers import Provider
from ._session import Session

__all__ = [
    "FLOWS",
    "PRESETS",
    "Profile",
    "config_path",
    "get_profile",
    "has_frontend",
    "keyring_username",
    "load_profiles",
    "login",
    "provider_for",
    "read_keyring",
    "run_flow",
]


def config_path() -> Path:
    """The profile file: ``NBAUTH_CONFIG`` (a file, or a directory holding ``profiles.toml``),
    else ``profiles.toml`` in the user config dir.
    """
    configured = os.environ.get("NBAUTH_CONFIG")
    if configured:
        path = Path(configured).expanduser()
        return path / "profiles.toml" if path.is_dir() else path
    import platformdirs  # lazy: only when profiles are used

    return Path(platformdirs.user_config_dir("nbauth", appauthor=False)) / "profiles.toml"


def _private(mode: int) -> bool:
    return os.name == "nt" or not stat.S_IMODE(mode) & 0o077


class Profile:
    """One validated profile: ``settings`` are the file's keys, ``path`` where it came from,
    ``private`` whether other users cannot read that file. Its repr never shows the secret.
    """

    __slots__ = ("name", "path", "private", "settings")

    def __init__(self, name: str, settings: Mapping[str, Any], path: Path | None = None, private: bool = True) -> None:
        self.name = name
        self.settings = settings
        self.path = path
        self.private = private

    def replace(self, **changes: Any) -> Profile:
        values: dict[str, Any] = {
            "name": self.name,
            "settings": self.settings,
            "path": self.path,
            "private": self.private,
            **changes,
        }
        return Profile(**values)

    def __repr__(self) -> str:
        return f"<nbauth profile {self.name!r} ({self.preset}) from {self.path}>"

    @property
    def preset(self) -> str:
        preset = self.settings.get("preset")
        if preset:
            return str(preset)
        if "token_url" in self.settings:
            return "oauth2"
        return "discover"

    @property
    def client_id(self) -> str | None:
        value = self.settings.get("client_id")
        return str(value) if value else None

    @property
    def flow(self) -> str | None:
        value = self.settings.get("flow")
        return str(value) if value else None

    @property
    def scope(self) -> Any:
        return self.settings.get("scope")

    @property
    def secret(self) -> str | None:
        """The client secret written in the file (only when the file is private)."""
        self.check_private()
        value = self.settings.get("client_secret")
        return str(value) if value else None

    def check_private(self) -> None:
        """Refuse a profile whose ``client_secret`` sits in a file other users can read."""
        if self.settings.get("client_secret") and not self.private:
            where = self.path or "the profile file"
            raise ConfigurationError(
                f"profile {self.name!r}: {where} holds a client_secret but other users can read it; "
                f"run `chmod 600 {where}`, or remove client_secret and use NBAUTH_CLIENT_SECRET or the keyring "
                f"(`nbauth secret {self.name}`)"
            )

    def describe(self) -> dict[str, Any]:
        """Safe summary for listings (never the secret)."""
        where = (
            self.settings.get("issuer")
            or self.settings.get("server_url")
            or self.settings.get("base_url")
            or self.settings.get("token_url")
        )
        return {
            "name": self.name,
            "preset": self.preset,
            "url": where,
            "realm": self.settings.get("realm"),
            "client_id": self.client_id,
            "flow": self.flow,
            "scope": self.scope,
            "has_client_secret": bool(self.settings.get("client_secret")),
        }

    def provider(self, *, client_id: str | None = None, client_secret: str | None = None) -> Provider:
        """Build the provider (preset, discovery or plain OAuth 2.0), named after the profile.

        With another ``client_id`` than the profile's, the profile's ``client_auth`` (which
        belongs to its own client) is left out.
        """
        s = self.settings
        kwargs: dict[str, Any] = {k: v for k, v in s.items() if k in _PROVIDER_KEYS}
        if client_id and client_id != self.client_id:
            kwargs.pop("client_auth", None)
        kwargs.update(name=self.name, client_id=client_id or self.client_id, client_secret=client_secret)
        if self.scope is not None:
            kwargs["scope"] = self.scope
        preset = self.preset
        if preset == "keycloak":
            return Keycloak(s["server_url"], s["realm"], **kwargs)
        if preset == "identityserver":
            return IdentityServer(s["base_url"], **kwargs)
        if preset == "simpleidserver":
            return SimpleIdServer(s["base_url"], s.get("realm", "master"), **kwargs)
        if preset == "fusio":
            return Fusio(s["base_url"], **kwargs)
        if preset == "discover":
            return Provider.discover(s["issuer"], **kwargs)
        kwargs.pop("token_url", None)
        return Provider(s["token_url"], issuer=s.get("issuer"), **kwargs)


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """Every profile of the file (an empty dict when it does not exist)."""
    path = path or config_path()
    try:
        with path.open("rb") as f:
            data = f.read(1024 * 1024)
            st = os.fstat(f.fileno())
            refuse_unsafe_config(path, st)
            private = _private(st.st_mode)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read the profile file {path}: {exc.strerror}") from None
    try:
        tables = _toml_load(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the profile file {path} is not valid TOML: {exc}") from None
    return {name: Profile(name, _check(name, raw, str(path)), path, private) for name, raw in tables.items()}


def _is_url(name: str) -> bool:
    return name.startswith(("https://", "http://"))


def _issuer_name(issuer: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(issuer.rstrip("/"))
    return parts.path.rstrip("/").rpartition("/")[2] or parts.hostname or "issuer"


def get_profile(name: str | None = None, *, client_id: str | None = None) -> Profile:
    """The named profile; a bare issuer URL makes a discovery profile on the fly.

    Without a name: ``NBAUTH_PROFILE``, else the file's only profile.
    """
    if name and _is_url(name):
        settings = {"issuer": name.rstrip("/"), "client_id": client_id or os.environ.get("NBAUTH_CLIENT_ID")}
        return Profile(_issuer_name(name), {k: v for k, v in settings.items() if v}, None)
    path = config_path()
    profiles = load_profiles(path)
    name = name or os.environ.get("NBAUTH_PROFILE") or None
    if name is None and len(profiles) == 1:
        name = next(iter(profiles))
    profile = profiles.get(name or "")
    if profile is None:
        exists = "" if path.exists() else " (the file does not exist yet)"
        known = ", ".join(sorted(profiles)) or "none"
        what = f"no profile named {name!r}" if name else "no profile name given"
        raise ConfigurationError(
            f"{what} in {path}{exists}; known profiles: {known}. Add a table such as "
            f"[{name or 'analytics'}] with preset, server_url/base_url/issuer, client_id (see `nbauth --help` and "
            "the Profiles page of the docs), or point NBAUTH_CONFIG at another file"
        )
    profile.check_private()
    if client_id:
        profile = profile.replace(settings={**profile.settings, "client_id": client_id})
    return profile


def has_frontend() -> bool:
    """True only in an IPython kernel whose requests allow stdin (JupyterLab, Notebook, VS Code);
    False under papermill, nbclient and nbval. ``NBAUTH_UI=widgets|text`` overrides.
    """
    from .ui import has_frontend as frontend  # the ui layer's rule (imported only when logging in)

    return frontend()


def _credentials(profile: Profile, *, service: bool) -> tuple[str | None, str | None]:
    """(client_id, secret): NBAUTH_CLIENT_SECRET (+ NBAUTH_CLIENT_ID), else the file's secret.

    An ``NBAUTH_CLIENT_ID`` other than the profile's is a service client for unattended runs:
    it replaces the profile's client only when ``service`` (client credentials) is wanted.
    """
    env_id = os.environ.get("NBAUTH_CLIENT_ID") or None
    env_secret = os.environ.get("NBAUTH_CLIENT_SECRET") or None
    own = profile.client_id
    if env_id and env_id != own and (service or not own):
        return env_id, env_secret
    if env_secret and (env_id is None or env_id == own):
        return own, env_secret
    return own, profile.secret


def provider_for(profile: Profile, *, service: bool = False) -> Provider:
    """The profile's provider with the best client secret at hand (environment, file, keyring)."""
    client_id, secret = _credentials(profile, service=service)
    provider = profile.provider(client_id=client_id, client_secret=secret)
    if secret is None:
        stored = read_keyring(provider.client_id, provider.issuer_key)
        if stored is not None:
            provider = profile.provider(client_id=client_id, client_secret=stored)
    return provider


def default_flow(provider: Provider) -> str:
    if provider.device_authorization_url:
        return "device"
    if provider.authorization_url and not provider.password_login_url:
        return "browser"
    return "password"


def run_flow(
    provider: Provider, flow: str, scope: Any, force: bool, profile: Profile, *, username: str | None = None
) -> Session:
    """Run one login flow with the provider's interactive entry points (widgets or text)."""
    if flow == "device":
        return provider.device_login(scope, force=force)
    if flow == "password":
        username = username or profile.settings.get("username")
        return provider.login_form(scope, force=force, **({"username": username} if username else {}))
    if flow == "browser":
        return provider.browser_login(scope, force=force)
    return _client_credentials(provider, scope, force, profile)


def _client_credentials(provider: Provider, scope: Any, force: bool, profile: Profile) -> Session:
    if not (provider.client_secret or provider._private_key):
        raise LoginRequired(
            f"profile {profile.name!r} wants client credentials but no client secret was found: set "
            "NBAUTH_CLIENT_SECRET (and NBAUTH_CLIENT_ID for another client), store it with "
            f"`nbauth secret {profile.name}`, or put client_secret in a 0600 profile file"
        )
    return provider.get_token_by_client_credentials(scope=scope, force=force)


def login(
    name: str | None = None,
    *,
    force: bool = False,
    scope: str | list[str] | None = None,
    flow: str | None = None,
    interactive: bool | None = None,
    client_id: str | None = None,
) -> Session:
    """Log in with a named profile (or a bare issuer URL, by discovery) and return the Session.

    ``interactive=None`` means: prompt only when a notebook frontend is attached. Then the
    profile's ``flow`` runs (device code, login form, browser sign-in, client credentials);
    a valid or refreshable session for the same provider, client and scope is reused unless
    ``force``. Without a frontend (papermill, nbval, scheduled jobs): client credentials
    (RFC 6749 §4.4) when a secret is available - ``NBAUTH_CLIENT_ID``/``NBAUTH_CLIENT_SECRET``,
    the profile file, or the keyring - else a cached session, else :class:`LoginRequired`
    naming what to set. ``interactive=True`` prompts in text (terminals, ``nbauth login``).
    """
    if flow is not None and flow not in FLOWS:
        raise ConfigurationError(f"flow must be one of {', '.join(FLOWS)}, not {flow!r}")
    profile = get_profile(name, client_id=client_id)
    prompt = has_frontend() if interactive is None else interactive
    chosen = flow or profile.flow
    service = chosen == "client_credentials" or not prompt
    provider = provider_for(profile, service=service)
    if flow is None and not force:
        from ._links import chain_links  # links 3 and 4 of the chain

        chained: Session | None = chain_links(provider)
        if chained is not None:
            return chained
    if prompt or chosen == "client_credentials":
        return run_flow(provider, chosen or default_flow(provider), scope, force, profile)
    if provider.client_secret or provider._private_key:
        return _client_credentials(provider, scope, force, profile)
    if not force:
        reused = _login.reusable("device_login", provider, scope)
        if reused is not None:
            return reused
    who = name if name and _is_url(name) else profile.name
    raise LoginRequired(
        f"nbauth.login({who!r}): no notebook frontend to ask anyone (papermill, nbval, a script or a job), no "
        "client credentials and no usable cached session. For an unattended run set NBAUTH_CLIENT_ID and "
        "NBAUTH_CLIENT_SECRET (a client allowed the client_credentials grant); or log in once from a terminal "
        f"with `nbauth login {who}`, and this run will reuse that session from the cache"
    )
