"""A JupyterHub for nbauth's tests: GenericOAuthenticator with auth_state against the loopback IdP.

Everything comes from the environment (set by tests/hub/helpers.py):
HUB_PORT, HUB_API_PORT, HUB_DIR (state: sqlite db, cookie secret, proxy token), HUB_IDP_ISSUER,
HUB_IDP_AUTHORIZE/TOKEN/USERINFO (the IdP's endpoints), HUB_ADMIN_TOKEN (a service token the test
uses to mint user tokens), JUPYTERHUB_CRYPT_KEY (needed for auth_state), HUB_AUTH_REFRESH_AGE.
FOR TESTS ONLY.
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - injected by jupyterhub

here = Path(__file__).resolve().parent
state = Path(os.environ["HUB_DIR"])
port = int(os.environ["HUB_PORT"])

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ["HUB_API_PORT"])
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.command = [str(here / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ['HUB_PROXY_API_PORT'])}"
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: no system users (nothing is spawned here)
c.JupyterHub.implicit_spawn_seconds = 0
c.JupyterHub.redirect_to_server = False
c.JupyterHub.cleanup_servers = True

c.JupyterHub.authenticator_class = "generic-oauth"
g = c.GenericOAuthenticator
g.client_id = "hub-client"
g.client_secret = "hub-secret"
g.oauth_callback_url = f"http://127.0.0.1:{port}/hub/oauth_callback"
g.authorize_url = os.environ["HUB_IDP_AUTHORIZE"]
g.token_url = os.environ["HUB_IDP_TOKEN"]
g.userdata_url = os.environ["HUB_IDP_USERINFO"]
g.username_claim = "preferred_username"
g.scope = ["openid", "profile", "email"]
g.enable_auth_state = True
g.allow_all = True
g.auth_refresh_age = int(os.environ.get("HUB_AUTH_REFRESH_AGE", "300"))
g.refresh_pre_spawn = False

# a single-user server's token would carry admin:auth_state!user (design.md); users may hold it, so a token
# minted for the user with those scopes reads the user's own auth_state from /users/{name}
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "admin:auth_state!user"]},
    {"name": "test-admin", "scopes": ["admin:users", "tokens", "admin:auth_state"], "services": ["test-admin"]},
]
c.JupyterHub.services = [{"name": "test-admin", "api_token": os.environ["HUB_ADMIN_TOKEN"]}]
