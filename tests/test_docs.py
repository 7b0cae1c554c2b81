"""The docs: mkdocs builds strictly, links resolve, Python examples compile and use real names, and the
examples marked `<!-- test: run -->` run against the loopback IdP."""

import ast
import importlib
import pathlib
import re
import subprocess
import sys

import pytest

import nbauth
from nbauth import _profile_schema, _profiles
from nbauth._cli import EXIT_CODES

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w*)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
RUN_MARKER = "<!-- test: run -->"


def blocks(page):
    """(language, code, runnable, line) of every fenced block of a page."""
    lines = page.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            start, body = i, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
            out.append((m.group(1), "\n".join(body) + "\n", previous.strip() == RUN_MARKER, start + 1))
        i += 1
    return out


PYTHON = [(page, code, run, line) for page in PAGES for lang, code, run, line in blocks(page) if lang == "python"]


def test_mkdocs_build_is_strict_clean(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "site" / "index.html").exists()
    keycloak = tmp_path / "site" / "providers" / "keycloak.html"  # use_directory_urls: false (file:// works)
    assert keycloak.exists()
    html = keycloak.read_text()
    assert 'href="../index.html"' in html or 'href="../getting-started.html"' in html  # links to files
    assert "cdnjs" not in html and "highlight.min.js" not in html  # nothing fetched from a CDN
    assert '<div class="codehilite"' in html and 'style="color' in html  # Pygments, inline styles


def test_every_seed_provider_and_flow_has_a_page():
    for name in ("keycloak", "identityserver", "simpleidserver", "fusio", "json-api", "discovery"):
        assert (DOCS / "providers" / f"{name}.md").exists(), name
    for name in ("client-credentials", "password", "device-code", "browser", "refresh", "custom", "implicit"):
        assert (DOCS / "flows" / f"{name}.md").exists(), name
    assert "/auth" in (DOCS / "providers" / "keycloak.md").read_text()  # Keycloak's legacy path


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_internal_links_resolve(page):
    text = page.read_text()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        assert resolved.is_file() and resolved.is_relative_to(DOCS), f"{page.name}: broken link {target}"
        if anchor:
            slugs = {
                re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", resolved.read_text(), re.M)
            }
            assert anchor in slugs, f"{page.name}: no #{anchor} in {path}"


@pytest.mark.parametrize(
    ("page", "code", "line"),
    [(p, c, n) for p, c, _, n in PYTHON],
    ids=[f"{p.relative_to(DOCS)}:{n}" for p, _, _, n in PYTHON],
)
def test_python_examples_compile_and_use_real_names(page, code, line):
    tree = compile(code, f"{page.name}:{line}", "exec", flags=ast.PyCF_ONLY_AST)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "nbauth":
            assert hasattr(nbauth, node.attr), f"{page.name}:{line}: nbauth.{node.attr} does not exist"
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nbauth"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{page.name}:{line}: {node.module}.{alias.name}"


def test_some_examples_are_run():
    assert sum(run for *_, run, _ in PYTHON) >= 3


@pytest.mark.parametrize(
    ("page", "code"),
    [(p, c) for p, c, run, _ in PYTHON if run],
    ids=[f"{p.relative_to(DOCS)}:{n}" for p, _, run, n in PYTHON if run],
)
def test_runnable_examples_run_against_the_loopback_idp(page, code, idp, resource_api, monkeypatch):
    """Placeholders map to the loopback IdP: sso.example.com -> the IdP, realm analytics -> demo,
    client reporting -> service-client, data.example.com/v1/whoami -> a protected API."""
    monkeypatch.setenv("REPORTING_SECRET", "service-secret")
    for placeholder, real in (
        ("https://sso.example.com", idp.origin),
        ('"analytics"', '"demo"'),
        ('"reporting"', '"service-client"'),
        ("https://data.example.com/v1/whoami", resource_api.whoami_url),
    ):
        code = code.replace(placeholder, real)
    namespace = {"__name__": f"docs_{page.stem}"}
    exec(compile(code, str(page), "exec"), namespace)  # our own documentation


def test_cli_page_lists_every_exit_code():
    text = (DOCS / "cli.md").read_text()
    for code, cls, _ in EXIT_CODES:
        assert re.search(rf"^\| {code} \| `{cls.__name__}` \|", text, re.M), cls.__name__


def test_troubleshooting_covers_every_error_class():
    text = (DOCS / "troubleshooting.md").read_text()
    for name in nbauth.__all__:
        obj = getattr(nbauth, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, (nbauth.AuthError, Warning))
            and obj.__module__.startswith("nbauth")
        ):
            assert name in text, name


def test_profiles_page_documents_every_key():
    text = (DOCS / "profiles.md").read_text()
    for key in sorted(_profile_schema._KEYS):
        assert f"`{key}`" in text, key
    for preset in _profiles.PRESETS:
        assert f"`{preset}`" in text, preset
