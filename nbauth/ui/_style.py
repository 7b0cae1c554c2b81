"""Look and words shared by the widgets and the static HTML fallbacks.

Colours come only from the Jupyter CSS variables (JupyterLab 4 and Notebook 7 define them for
the light and dark themes), each with a VS Code variable and then ``inherit``/``currentColor``
as fallbacks, so the panels follow whatever theme the frontend uses. The one exception is
the QR code, which must stay dark-on-light to scan (ISO/IEC 18004 needs the contrast and
the quiet zone).
"""

from __future__ import annotations

import html

__all__ = ["CSS", "duration", "esc", "link", "note", "spinner", "title"]


def _var(jp: str, vscode: str, last: str) -> str:
    return f"var(--jp-{jp}, var(--vscode-{vscode}, {last}))"


FG = _var("ui-font-color1", "foreground", "inherit")
MUTED = _var("ui-font-color2", "descriptionForeground", "inherit")
BORDER = _var("border-color2", "widget-border", "currentColor")
PANEL_BG = "var(--jp-layout-color1, transparent)"
CODE_BG = _var("layout-color2", "textCodeBlock-background", "transparent")
ACCENT = _var("brand-color1", "focusBorder", "currentColor")
LINK = _var("content-link-color", "textLink-foreground", "currentColor")
ERROR = _var("error-color1", "errorForeground", "currentColor")
OK = _var("success-color1", "testing-iconPassed", "currentColor")
WARN = _var("warn-color1", "editorWarning-foreground", "currentColor")
UI_FONT = "var(--jp-ui-font-family, var(--vscode-font-family, sans-serif))"
CODE_FONT = "var(--jp-code-font-family, var(--vscode-editor-font-family, monospace))"

#: One style sheet, scoped by the ``nbauth-`` class prefix; repeated in every panel (idempotent).
CSS = f"""<style>
.nbauth-panel {{ border: 1px solid {BORDER}; border-radius: 6px; padding: 10px 14px; margin: 4px 0;
  background: {PANEL_BG}; color: {FG}; max-width: 720px; }}
.nbauth-panel, .nbauth-text {{ font-family: {UI_FONT}; font-size: var(--jp-ui-font-size1, 13px); color: {FG}; }}
.nbauth-text, .nbauth-kv, .nbauth-title {{ line-height: 1.45; }}
.nbauth-title {{ font-size: var(--jp-ui-font-size2, 15px); font-weight: 600; color: {FG}; margin: 0 0 4px 0; }}
.nbauth-muted {{ color: {MUTED}; }}
.nbauth-nowrap {{ white-space: nowrap; }}
.nbauth-text p {{ margin: 4px 0; line-height: 1.45; }}
a.nbauth-link, .nbauth-text a.nbauth-link, .nbauth-panel a.nbauth-link {{ color: {LINK};
  text-decoration: underline; word-break: break-all; }}
a.nbauth-open, .nbauth-text a.nbauth-open {{ display: inline-block; padding: 4px 12px; border-radius: 3px;
  background: {ACCENT};
  color: var(--jp-ui-inverse-font-color1, var(--vscode-button-foreground, inherit)) !important;
  text-decoration: none !important; font-weight: 600; }}
.nbauth-code {{ font-family: {CODE_FONT}; font-size: 24px; font-weight: 600; letter-spacing: 0.1em;
  white-space: nowrap;
  padding: 2px 12px; border-radius: 4px; background: {CODE_BG}; color: {FG}; user-select: all; }}
.nbauth-copy {{ margin-left: 8px; padding: 3px 10px; cursor: pointer; border-radius: 3px; vertical-align: super;
  border: 1px solid {BORDER}; background: {CODE_BG}; color: {FG}; font-family: {UI_FONT}; }}
.nbauth-copy:hover {{ border-color: {ACCENT}; }}
.nbauth-qr svg {{ display: block; border-radius: 4px; }}
.nbauth-qr {{ margin-right: 16px; }}
.nbauth-error {{ color: {ERROR}; font-weight: 600; }}
.nbauth-ok {{ color: {OK}; font-weight: 600; }}
.nbauth-warn {{ color: {WARN}; font-weight: 600; }}
.nbauth-msg {{ margin: 6px 0 2px 0; line-height: 1.45; }}
.nbauth-kv {{ margin: 2px 0 4px 0; border-collapse: collapse; }}
.nbauth-kv td {{ padding: 1px 12px 1px 0; line-height: 1.45; vertical-align: top;
  background: transparent !important; border: 0 !important;
  text-align: left !important; }}
.nbauth-kv td:first-child {{ color: {MUTED}; white-space: nowrap; }}
.nbauth-spin {{ display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 50%;
  border: 2px solid {BORDER}; border-top-color: {ACCENT}; animation: nbauth-spin 0.9s linear infinite; }}
@keyframes nbauth-spin {{ to {{ transform: rotate(360deg); }} }}
@media (prefers-reduced-motion: reduce) {{ .nbauth-spin {{ animation: none; }} }}
</style>"""


def esc(value: object) -> str:
    """HTML-escape anything shown from a server or a user (quotes too: used in attributes)."""
    return html.escape(str(value), quote=True)


def link(url: str, text: str | None = None, *, cls: str = "nbauth-link") -> str:
    """A link that opens in a new tab and does not leak the notebook's URL (rel=noopener noreferrer)."""
    return (
        f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer" class="{cls}">'
        f"{esc(text if text is not None else url)}</a>"
    )


def title(text: str) -> str:
    return f'{CSS}<div class="nbauth-title">{esc(text)}</div>'


def note(kind: str, text: str) -> str:
    """A status line: kind is ``error``, ``ok``, ``warn``, ``muted`` or ``busy``."""
    if not text:
        return ""
    if kind == "busy":
        return f'<div class="nbauth-msg nbauth-text">{spinner()}{esc(text)}</div>'
    mark = {"error": "✖ ", "ok": "✔ ", "warn": "⚠ "}.get(kind, "")
    return f'<div class="nbauth-msg nbauth-text nbauth-{esc(kind)}">{mark}{esc(text)}</div>'


def spinner() -> str:
    return '<span class="nbauth-spin" aria-hidden="true"></span>'


def duration(seconds: float) -> str:
    """``4 min 05 s``, ``58 s``, ``2 h 03 min`` - a countdown that reads well at a glance."""
    left = max(0, int(seconds))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
