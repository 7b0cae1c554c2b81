"""Drive the loopback IdP (tests/idp/server.js) from tests, like a user's browser and a client would.

Only needs ``requests``. The login form uses Keycloak's ids and field names (``form#kc-form-login``,
``username``, ``password``), so ``browse``/``authorize`` mostly work against a real Keycloak too.

- ``start_idp(env, workdir)`` starts one server.js process and returns an ``IdP`` bound to it.
- ``IdP`` knows the issuer, the discovery metadata and every endpoint URL (also those left out of
  discovery with ``IDP_DISCOVERY_OMIT``), and wraps the test-only ``/_admin`` API.
- ``browse``/``forms``/``authorize``/``approve_device_in_browser``/``poll_device``/``pkce_pair``:
  a scripted browser for the authorization-code and device flows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html.parser
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

IDP_DIR = Path(__file__).resolve().parent
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10

#: the test users of server.js
USERS: dict[str, str] = {"alice": "alice-password", "bob": "bob-password"}
#: the default clients of server.js: client_id -> secret (None = public client)
CLIENTS: dict[str, str | None] = {
    "confidential-client": "confidential-secret",
    "public-client": None,
    "service-client": "service-secret",
    "short-lived-client": None,
    "odd client:1": "s3cr:t +%/&=?~",
}
ODD_CLIENT = ("odd client:1", "s3cr:t +%/&=?~")
CONFIDENTIAL_CLIENT = ("confidential-client", "confidential-secret")
SERVICE_CLIENT = ("service-client", "service-secret")
CONFIDENTIAL_REDIRECT_URI = "http://127.0.0.1:8765/callback"


def basic_auth_header(client_id: str, client_secret: str, *, form_encode: bool = True) -> str:
    """``Authorization`` value for HTTP Basic client authentication.

    form_encode=True follows RFC 6749 section 2.3.1 (application/x-www-form-urlencoded id and secret
    before Base64); False is what ``requests``' ``auth=(id, secret)`` sends (raw, latin-1).
    """
    if form_encode:
        raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}".encode("ascii")
    else:
        raw = f"{client_id}:{client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class IdPStartError(RuntimeError):
    """server.js did not become ready; the message contains its log."""


class IdP:
    """A running loopback IdP (or any OIDC provider given by issuer).

    ``info`` is the IDP_READY JSON of server.js (when known); without it the metadata is fetched from
    ``<issuer>/.well-known/openid-configuration`` with a fallback to the RFC 8414 location.
    """

    def __init__(self, issuer: str, info: Mapping[str, Any] | None = None) -> None:
        self.issuer = issuer.rstrip("/")
        parts = urllib.parse.urlsplit(self.issuer)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.info: dict[str, Any] = dict(info or {})
        self.shape: str = self.info.get("shape", "keycloak")
        self.realm: str = self.info.get("realm", "")
        self.path_prefix: str = self.info.get("path_prefix", "")
        self.admin_url: str = self.info.get("admin") or f"{self.origin}/_admin"
        self.oauth_discovery_url: str = self.info.get("oauth_discovery") or (
            f"{self.origin}/.well-known/oauth-authorization-server{parts.path.rstrip('/')}"
        )
        self.discovery_url: str | None = self.info.get("discovery", f"{self.issuer}/.well-known/openid-configuration")
        self.device_page: str | None = self.info.get("device_page")
        self.omitted: list[str] = list(self.info.get("omitted", []))
        # set by start_idp
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.meta: dict[str, Any] = self.fetch_metadata()
        #: every endpoint URL (metadata key -> URL), also those removed from discovery
        self.endpoints: dict[str, str] = {
            **{k: v for k, v in self.meta.items() if k.endswith(("_endpoint", "_uri")) and isinstance(v, str)},
            **self.info.get("endpoints", {}),
        }

    def __repr__(self) -> str:
        return f"IdP({self.issuer!r}, shape={self.shape!r})"

    def __getitem__(self, key: str) -> Any:
        """A discovery metadata value (KeyError when the server left it out)."""
        return self.meta[key]

    def fetch_metadata(self) -> dict[str, Any]:
        """Discovery metadata: OpenID discovery, else RFC 8414 (when IDP_DISCOVERY=off)."""
        urls = [u for u in (self.discovery_url, self.oauth_discovery_url) if u]
        last: requests.Response | None = None
        for url in urls:
            last = requests.get(url, timeout=TIMEOUT)
            if last.status_code == 200:
                meta: dict[str, Any] = last.json()
                return meta
        raise RuntimeError(f"no discovery document for {self.issuer}: {urls} -> {last and last.status_code}")

    def endpoint(self, key: str) -> str:
        """URL of an endpoint by metadata key (``token_endpoint``, ``jwks_uri`` ...), even if omitted from discovery."""
        value = self.meta.get(key) or self.endpoints.get(key)
        if not value:
            raise KeyError(key)
        return str(value)

    # ---- protocol shortcuts
    def token(
        self,
        data: Mapping[str, str],
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """POST to the token endpoint. auth=(id, secret) -> HTTP Basic, form-encoded per RFC 6749 s2.3.1."""
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs["Authorization"] = basic_auth_header(*auth)
        return requests.post(self.endpoint("token_endpoint"), data=dict(data), headers=hdrs, timeout=TIMEOUT)

    def device_authorization(
        self, client_id: str, scope: str = "openid", auth: tuple[str, str] | None = None, **extra: str
    ) -> dict[str, Any]:
        """Start a device flow; returns the device authorization response (device_code, user_code, ...)."""
        data = {"scope": scope, **extra}
        hdrs: dict[str, str] = {}
        if auth is not None:
            hdrs["Authorization"] = basic_auth_header(*auth)
        else:
            data["client_id"] = client_id
        r = requests.post(self.endpoint("device_authorization_endpoint"), data=data, headers=hdrs, timeout=TIMEOUT)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def password_token(
        self,
        client_id: str = "public-client",
        username: str = "alice",
        password: str | None = None,
        scope: str = "openid",
        client_secret: str | None = None,
    ) -> dict[str, Any]:
        """A token response from the password grant (raises on error)."""
        data = {"grant_type": "password", "username": username, "password": password or USERS[username], "scope": scope}
        if client_secret is None:
            data["client_id"] = client_id
            r = self.token(data)
        else:
            r = self.token(data, auth=(client_id, client_secret))
        if r.status_code != 200:
            raise RuntimeError(f"password grant failed: {r.status_code} {r.text}")
        body: dict[str, Any] = r.json()
        return body

    # ---- test-only admin API of server.js (not available on a real server)
    def admin(self, path: str, **data: Any) -> requests.Response:
        """POST ``<origin>/_admin/<path>`` with a form body.

        Paths: ``reset``, ``clock`` (skew=), ``auto-login`` (username=), ``device/approve``, ``device/deny``.
        """
        return requests.post(f"{self.admin_url}/{path.lstrip('/')}", data=data, timeout=TIMEOUT)

    def stats(self) -> dict[str, int]:
        """Request counters since the last reset, e.g. {"token:refresh_token:200": 1, "userinfo:401": 2}."""
        r = requests.get(f"{self.admin_url}/stats", timeout=TIMEOUT)
        r.raise_for_status()
        body: dict[str, int] = r.json()
        return body

    def _check(self, r: requests.Response, check: bool) -> requests.Response:
        if check and r.status_code != 200:
            raise RuntimeError(f"admin {r.request.path_url}: {r.status_code} {r.text}")
        return r

    def approve(self, user_code: str, username: str = "alice", *, check: bool = True) -> requests.Response:
        """Approve a device flow user_code as ``username`` (404 unknown, 410 expired, 409 already used)."""
        return self._check(self.admin("device/approve", user_code=user_code, username=username), check)

    def deny(self, user_code: str, *, check: bool = True) -> requests.Response:
        """Deny a device flow user_code: the next poll gets ``access_denied``."""
        return self._check(self.admin("device/deny", user_code=user_code), check)

    def auto_login(self, username: str = "") -> None:
        """Log the browser in as ``username`` without showing the login form ('' turns it off)."""
        self._check(self.admin("auto-login", username=username), True)

    def set_clock(self, skew: float) -> None:
        """Shift the IdP's clock by ``skew`` seconds (tokens issued/checked in that time)."""
        self._check(self.admin("clock", skew=str(skew)), True)

    def reset(self) -> None:
        """Forget all tokens, sessions, grants and counters; auto-login off; clock skew 0."""
        self._check(self.admin("reset"), True)
        self.auto_login("")
        self.set_clock(0)

    # ---- process (for IdPs started by start_idp)
    def log(self) -> str:
        """The IdP process's stdout+stderr so far ('' if not started by start_idp)."""
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """Terminate the server.js process (no-op when not started by start_idp)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def ensure_node_modules(idp_dir: Path = IDP_DIR) -> None:
    """Run ``npm ci`` in tests/idp when node_modules/oidc-provider is missing."""
    if (idp_dir / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise IdPStartError("npm not found: install Node.js >= 20.18 to run the loopback IdP")
    r = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=idp_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise IdPStartError(f"npm ci failed in {idp_dir}:\n{r.stdout}\n{r.stderr}")


def start_idp(env: Mapping[str, str], workdir: Path, timeout: float = 90.0, idp_dir: Path = IDP_DIR) -> IdP:
    """Start server.js with ``env`` (IDP_* settings) on an ephemeral 127.0.0.1 port; wait until ready.

    The log goes to ``workdir/idp.log``; raises IdPStartError (with the log) when it does not come up.
    """
    ensure_node_modules(idp_dir)
    node = shutil.which("node")
    if node is None:
        raise IdPStartError("node not found: install Node.js >= 20.18 to run the loopback IdP")
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "idp-ready.json"
    ready.unlink(missing_ok=True)
    log_path = workdir / "idp.log"
    full_env = {**os.environ, **env, "IDP_PORT": "0", "IDP_BIND": "127.0.0.1", "IDP_READY_FILE": str(ready)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, str(idp_dir / "server.js")],
            cwd=idp_dir,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def fail(why: str) -> IdPStartError:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        return IdPStartError(f"loopback IdP {why} (env {dict(env)}):\n{log_path.read_text(errors='replace')}")

    deadline = time.monotonic() + timeout
    while not (ready.exists() and ready.stat().st_size):
        if proc.poll() is not None:
            raise fail(f"exited with status {proc.returncode} during startup")
        if time.monotonic() > deadline:
            raise fail(f"not ready after {timeout} s")
        time.sleep(0.05)
    try:
        info = json.loads(ready.read_text())
        idp = IdP(info["issuer"], info)
    except Exception as exc:
        raise fail(f"ready but unusable ({exc!r})") from exc
    idp.env, idp.proc, idp.log_path = dict(env), proc, log_path
    return idp


# ------------------------------------------------------------------ scripted browser
def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(48)  # 64 chars, within RFC 7636's 43..128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, Any]] = {}
        self._cur: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._cur = {"action": a.get("action"), "fields": {}}
            self.forms[a.get("id") or f"form{len(self.forms)}"] = self._cur
        elif tag == "input" and self._cur is not None and a.get("name"):
            self._cur["fields"][a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._cur = None


def forms(text: str) -> dict[str, dict[str, Any]]:
    """{form id: {"action": url, "fields": {name: value}}} for every <form> in an HTML page."""
    p = _Forms()
    p.feed(text)
    return p.forms


def browse(
    session: requests.Session,
    url: str,
    stop_prefix: str | None = None,
    user: tuple[str, str] = ("alice", "alice-password"),
    abort: bool = False,
    max_hops: int = 20,
) -> tuple[str | None, requests.Response]:
    """Be the user's browser: follow redirects and submit the login form until a redirect to
    ``stop_prefix`` (the client's redirect_uri) shows up - returned, not followed.

    Returns (redirect_url or None, last response). abort=True presses "Cancel" on the login (or consent) page.
    """
    r = session.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(max_hops):
        if r.is_redirect:
            loc = urllib.parse.urljoin(r.url, r.headers["location"])
            if stop_prefix and loc.startswith(stop_prefix):
                return loc, r
            r = session.get(loc, allow_redirects=False, timeout=TIMEOUT)
            continue
        fs = forms(r.text)
        if "consent" in fs:  # only shown when the server runs with IDP_CONSENT_PAGE=1
            target = fs["abort"] if abort else fs["consent"]
            r = session.post(urllib.parse.urljoin(r.url, target["action"]), allow_redirects=False, timeout=TIMEOUT)
            continue
        if "kc-form-login" not in fs:
            return None, r
        if abort:
            r = session.post(urllib.parse.urljoin(r.url, fs["abort"]["action"]), allow_redirects=False, timeout=TIMEOUT)
            continue
        login = fs["kc-form-login"]
        r = session.post(
            urllib.parse.urljoin(r.url, login["action"]),
            data={**login["fields"], "username": user[0], "password": user[1]},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if r.status_code == 200 and "kc-form-login" in r.text:
            return None, r  # credentials rejected: the login page came back with an error message
    raise RuntimeError("too many hops")


def authorize(
    idp: IdP,
    client_id: str,
    redirect_uri: str,
    scope: str = "openid",
    user: tuple[str, str] = ("alice", "alice-password"),
    pkce: bool = True,
    abort: bool = False,
    session: requests.Session | None = None,
    **extra: str,
) -> dict[str, Any]:
    """Authorization request + user login, as a browser would.

    Returns the redirect's query params (code, state, iss, or error...) plus ``_state_ok``, ``_nonce``,
    ``_verifier`` (the PKCE code_verifier) and ``_redirect`` (the full redirect URL), or
    ``{"error_page": response}`` if no redirect to ``redirect_uri`` came back.
    """
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    q = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        **extra,
    }
    if "openid" in scope.split():  # oidc-provider rejects nonce without openid (invalid_request)
        q["nonce"] = nonce
    if pkce:
        q.update(code_challenge=challenge, code_challenge_method="S256")
    url = idp.endpoint("authorization_endpoint") + "?" + urllib.parse.urlencode(q, doseq=True)
    loc, last = browse(session or requests.Session(), url, redirect_uri, user=user, abort=abort)
    if loc is None:
        return {"error_page": last}
    params: dict[str, Any] = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    params.update(_state_ok=params.get("state") == state, _nonce=nonce, _verifier=verifier, _redirect=loc)
    return params


def approve_device_in_browser(
    verification_uri_complete: str,
    user: tuple[str, str] = ("alice", "alice-password"),
    abort: bool = False,
) -> requests.Response:
    """What the user does on their phone/laptop: open verification_uri_complete, confirm the code, log in.

    Returns the last response (the 'Sign-in Success' page on success).
    """
    s = requests.Session()
    r = s.get(verification_uri_complete, timeout=TIMEOUT)  # auto-submitting form carrying xsrf + user_code
    f = next(iter(forms(r.text).values()))
    if abort:
        return s.post(urllib.parse.urljoin(r.url, f["action"]), data={**f["fields"], "abort": "yes"}, timeout=TIMEOUT)
    r = s.post(urllib.parse.urljoin(r.url, f["action"]), data=f["fields"], timeout=TIMEOUT)  # "Confirm Device"
    f = forms(r.text)["op.deviceConfirmForm"]  # hidden fields: xsrf, user_code, confirm=yes
    r = s.post(urllib.parse.urljoin(r.url, f["action"]), data=f["fields"], allow_redirects=False, timeout=TIMEOUT)
    _, last = browse(s, urllib.parse.urljoin(r.url, r.headers["location"]), None, user=user)
    return last


def poll_device(
    idp: IdP,
    device_code: str,
    client_id: str | None = None,
    auth: tuple[str, str] | None = None,
    interval: float = 5,
    timeout: float = 60,
) -> requests.Response:
    """RFC 8628 section 3.5 polling loop: honours interval, +5 s on slow_down. Returns the final response."""
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    if client_id:
        data["client_id"] = client_id
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = idp.token(data, auth=auth)
        err = r.json().get("error") if r.status_code == 400 else None
        if err == "authorization_pending":
            time.sleep(interval)
        elif err == "slow_down":
            interval += 5
            time.sleep(interval)
        else:
            return r
    raise TimeoutError("device flow not completed")
