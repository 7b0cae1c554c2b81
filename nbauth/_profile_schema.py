"""What a profile may say: its keys, presets and flows, checked with a message naming the key and the file."""

from __future__ import annotations

import sys
from typing import Any

from ._errors import ConfigurationError
from ._settings import ENDPOINTS

__all__ = ["FLOWS", "PRESETS"]

FLOWS = ("device", "password", "browser", "client_credentials")
#: preset -> (required location keys, optional location keys)
PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "keycloak": (("server_url", "realm"), ()),
    "identityserver": (("base_url",), ()),
    "simpleidserver": (("base_url",), ("realm",)),
    "fusio": (("base_url",), ()),
    "discover": (("issuer",), ()),
    "oauth2": (("token_url",), ("issuer",)),
}
_LOCATION_KEYS = ("server_url", "base_url", "realm", "issuer")
#: profile keys handed to the Provider as they are
_PROVIDER_KEYS = frozenset(
    {
        *ENDPOINTS,
        "client_auth",
        "request_format",
        "scope_separator",
        "client_token_for_user_grants",
        "verify",
        "timeout",
        "refresh_leeway",
        "proxies",
        "private_key",
        "dpop",
        "resource",
    }
)  # the last three: issue 14
_KEYS = frozenset(
    {*_PROVIDER_KEYS, *_LOCATION_KEYS, "preset", "client_id", "client_secret", "flow", "username", "scope"}
)


def _toml_load(data: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    loaded: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    return loaded


def _check(name: str, raw: Any, where: str) -> dict[str, Any]:
    """Validate one profile table; every problem names the key and the file."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: {name!r} must be a table ([{name}]), not a plain value")
    for key, value in raw.items():
        if key not in _KEYS:
            import difflib

            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(
                f"profile {name!r} in {where}: unknown key {key!r}{hint}; known keys: {', '.join(sorted(_KEYS))}"
            )
        ok = {
            "scope": isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
            "client_token_for_user_grants": isinstance(value, bool),
            "dpop": isinstance(value, bool),
            "resource": isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
            "verify": isinstance(value, (bool, str)),
            "timeout": isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
            "refresh_leeway": isinstance(value, (int, float)) and not isinstance(value, bool),
            "proxies": isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
        }.get(key, isinstance(value, str))
        if not ok:
            raise ConfigurationError(f"profile {name!r} in {where}: {key} has the wrong type ({value!r:.40})")
    preset = raw.get("preset") or ("oauth2" if "token_url" in raw else "discover")
    if preset not in PRESETS:
        raise ConfigurationError(f"profile {name!r} in {where}: preset {preset!r} is not one of {', '.join(PRESETS)}")
    required, optional = PRESETS[preset]
    for key in required:
        if not raw.get(key):
            raise ConfigurationError(
                f"profile {name!r} in {where}: preset {preset!r} needs {key} "
                f"(it takes {', '.join((*required, *optional))})"
            )
    for key in _LOCATION_KEYS:
        if key in raw and key not in (*required, *optional):
            raise ConfigurationError(
                f"profile {name!r} in {where}: preset {preset!r} takes {', '.join((*required, *optional))}, not {key}"
            )
    flow = raw.get("flow")
    if flow is not None and flow not in FLOWS:
        raise ConfigurationError(f"profile {name!r} in {where}: flow {flow!r} is not one of {', '.join(FLOWS)}")
    return dict(raw)
