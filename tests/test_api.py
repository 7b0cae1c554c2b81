"""The public surface and the architecture rules: __all__, import cost, layers, module size."""

import ast
import pathlib
import subprocess
import sys

import pytest

import nbauth

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "nbauth"

#: design.md's layers; a module may import only from its own layer or those listed before it.
LAYERS = [
    ("errors", {"_errors", "_clock", "_record", "_secret", "_terminal", "_humanize"}),
    ("tokens", {"_tokens", "_jwt", "_scope", "_dpop"}),
    ("grants", {"_grants", "_device", "_loopback", "_token_exchange", "_jwt_bearer"}),
    (
        "providers",
        {
            "_transport",
            "_client_auth",
            "_fixes",
            "_settings",
            "_exchange",
            "_endpoints",
            "_discovery",
            "_client_jwt",
            "_client_jwt_config",
            "_dpop_login",
        },
    ),
    ("cache", {"_store", "_entries", "_registry", "_credentials", "_cachedir", "_perms"}),
    (
        "session",
        {
            "_refresh",
            "_session",
            "_bearer",
            "_fsauth",
            "fs",
            "duckdb",
            "_handle",
            "_scaleout",
            "dask",
            "_exchanged",
            "_hub",
        },
    ),
    ("login", {"_reuse", "_drivers", "_login", "_providers", "_presets", "_lookup", "_derived", "_links"}),
    (
        "ui",
        {
            "ui",
            "_profiles",
            "_profile_schema",
            "_chain",
            "_cli",
            "_cli_hints",
            "_ipython",
            "__main__",
            "httpx_auth",
            "__init__",
        },
    ),
]
UI = len(LAYERS) - 1


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"module {module} is in no layer of design.md")


def runtime_imports(path: pathlib.Path):
    """``(module, lazy)`` for every nbauth module imported at run time - at the top or inside a
    function (``lazy``) - as dotted paths below nbauth; ``if TYPE_CHECKING:`` blocks excluded.
    """
    package = list(path.relative_to(PKG).parent.parts)
    tree = ast.parse(path.read_text())

    def walk(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.level >= 1:
                base = package[: len(package) - (child.level - 1)]
                if child.module:
                    yield ".".join([*base, child.module]), lazy
                else:
                    for alias in child.names:
                        yield ".".join([*base, alias.name]), lazy
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("nbauth."):
                        yield alias.name.removeprefix("nbauth."), lazy
            yield from walk(child, inner)

    yield from walk(tree, False)


def module_of(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def allowed_upward(importer: str, imported: str, lazy: bool) -> bool:
    """The one upward step design.md allows: loading ``nbauth.ui`` inside a function, to draw a widget."""
    return lazy and imported.split(".")[0] == "ui" and layer_of(importer) < UI


def import_graph() -> dict[str, set[str]]:
    """Every import edge between nbauth modules except the allowed lazy ui loads (top-level names)."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        importer = module_of(path)
        node = importer if importer.startswith("ui") else importer.split(".")[0]
        for imported, lazy in runtime_imports(path):
            if allowed_upward(importer, imported, lazy):
                continue
            target = imported if imported.startswith("ui") else imported.split(".")[0]
            if target != node and not (node.startswith("ui") and target == "ui"):
                graph.setdefault(node, set()).add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_all_is_sorted_and_complete():
    assert list(nbauth.__all__) == sorted(nbauth.__all__)
    for name in nbauth.__all__:
        assert hasattr(nbauth, name), name
    contract = [
        "Provider",
        "Keycloak",
        "IdentityServer",
        "SimpleIdServer",
        "Fusio",
        "ClientCredentials",
        "Password",
        "AuthorizationCode",
        "RefreshToken",
        "Custom",
        "parse_implicit_response",
        "Session",
        "Token",
        "session",
        "sessions",
        "AuthError",
        "InvalidGrant",
        "InvalidClient",
        "InvalidScope",
        "UnauthorizedClient",
        "AccessDenied",
        "ExpiredToken",
        "AuthorizationPending",
        "SlowDown",
        "ProviderError",
        "LoginRequired",
    ]
    assert set(contract) <= set(nbauth.__all__)


def test_every_public_error_is_an_auth_error():
    for name in nbauth.__all__:
        obj = getattr(nbauth, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, nbauth.AuthError), name


def test_presets_are_providers():
    for cls in (nbauth.Keycloak, nbauth.IdentityServer, nbauth.SimpleIdServer, nbauth.Fusio):
        assert issubclass(cls, nbauth.Provider)
    assert issubclass(nbauth.Session, __import__("requests_oauthlib").OAuth2Session)


def test_import_nbauth_does_not_load_widgets_or_heavy_deps():
    code = (
        "import sys, nbauth; heavy = [m for m in ('ipywidgets', 'IPython', 'jwt', 'cryptography', 'filelock', "
        "'platformdirs', 'segno', 'jupyter_ui_poll', 'keyring', 'httpx', 'fsspec', 'aiohttp', 'pandas', 'pyarrow', "
        "'duckdb', 'polars', 'dask', 'distributed', 'cloudpickle') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_layers_import_only_downwards(path):
    """Every import, function-level ones included: downwards only, but for the lazy ``nbauth.ui`` load."""
    module = module_of(path)
    mine = layer_of(module)
    for imported, lazy in runtime_imports(path):
        assert layer_of(imported) <= mine or allowed_upward(module, imported, lazy), (
            f"{module} ({LAYERS[mine][0]}) imports {imported} ({LAYERS[layer_of(imported)][0]})"
            + (" inside a function" if lazy else "")
        )


def test_no_import_cycles():
    """No cycle among nbauth's modules (within a layer too); the lazy ui loads are the only exception."""
    assert find_cycle(import_graph()) is None, f"import cycle: {' -> '.join(find_cycle(import_graph()) or [])}"


def test_the_layering_check_catches_a_hook_and_a_cycle():
    """The checks above can fail: an upward call made through a function-level import, and a cycle."""
    assert not allowed_upward("_providers", "_profiles", True)  # a lazy import upward that is not the ui
    assert not allowed_upward("_session", "ui", False)  # the ui loaded at import time
    assert find_cycle({"_presets": {"_providers"}, "_providers": {"_presets"}}) == [
        "_presets",
        "_providers",
        "_presets",
    ]


def test_no_registration_hooks():
    """Lower layers never get a higher layer's code handed to them at run time (design.md)."""
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        for hook in ("set_login_backend", "status_renderer", "LoginBackend"):
            assert hook not in text, f"{path.relative_to(PKG)} has the registration hook {hook}"


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= 400, "split this module (design: under 400 lines)"


def test_only_the_ui_layer_imports_ipywidgets():
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if any(n.split(".")[0] in ("ipywidgets", "jupyter_ui_poll", "segno") for n in names):
                rel = path.relative_to(PKG)
                assert rel.parts[0] == "ui", f"{rel} imports a widget library"


def test_no_process_wide_insecure_transport_switch():
    for path in PKG.rglob("*.py"):
        assert "OAUTHLIB_INSECURE_TRANSPORT" not in path.read_text(), path


@pytest.mark.parametrize(
    "url",
    [
        "http://sso.example.com/token",
        "http://10.0.0.1/token",
        "ftp://x/token",
        "token",
        "http://127.0.0.1.evil.com/token",
    ],
)
def test_token_url_must_be_https_except_loopback(url):
    with pytest.raises(nbauth.ConfigurationError):
        nbauth.Provider(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://sso.example.com/token",
        "http://127.0.0.1:8080/token",
        "http://127.5.6.7/token",
        "http://localhost:1/token",
        "http://[::1]:9/token",
    ],
)
def test_loopback_http_and_https_are_accepted(url):
    assert nbauth.Provider(url).token_url == url


def test_insecure_transport_error_says_what_to_do():
    with pytest.raises(nbauth.InsecureTransport, match="https"):
        nbauth.Keycloak("http://sso.example.com", "analytics")


def test_verify_false_warns_loudly():
    with pytest.warns(nbauth.InsecureTLSWarning, match="OFF"):
        nbauth.Provider("https://sso.example.com/token", verify=False)


def test_provider_repr_hides_secret():
    p = nbauth.Keycloak(
        "https://sso.example.com/auth",
        "analytics",
        client_id="jupyter",
        client_secret="VTytkTR7ZHH5nLhoWCLjymrUJjKBzfs4",
    )
    assert "VTytkTR7" not in repr(p) and "VTytkTR7" not in str(p)
    assert "VTytkTR7" not in repr(p.config()) and p.config()["has_client_secret"] is True
