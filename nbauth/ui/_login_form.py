"""The login form: username and password for the resource owner password grant (RFC 6749 §4.3).

Enter submits (in either field), Log in submits, a spinner shows while the request runs in
a worker thread, and errors are shown in the form, which stays open for another try:
"Wrong username or password" for ``invalid_grant`` (§5.2), the provider's URL and status for
a :class:`ProviderError`. Cancel, or no login before ``timeout``, ends it.

The password never rests in widget state. The box syncs only on Enter or when it loses
focus (``continuous_update=False``); the moment the value reaches the kernel it is moved to
a private attribute and the box is emptied, so the model Jupyter saves into the notebook
holds "" (the placeholder then says a password was entered). The value is not echoed to
other frontends (``echo_update=False``), the attribute is dropped when the request is sent,
and the form is closed after a successful login.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
import traitlets

from .. import _clock
from .._errors import AuthError, InvalidGrant, LoginRequired, ProviderError
from .._providers import Provider
from ._panel import LoginPanel

__all__ = ["DEFAULT_TIMEOUT", "LoginForm"]

DEFAULT_TIMEOUT = 600.0
#: An Enter can reach the kernel just before the password it submits; wait this long for it.
SUBMIT_GRACE = 2.0
_ENTERED = "•••••••• entered - type again to change"


class SecretBox(widgets.Password):  # type: ignore[misc]
    """A password box whose value is never echoed back to the frontends (ipywidgets 8 ``echo_update``)."""

    value = traitlets.Unicode(help="The password; nbauth empties it as soon as it arrives").tag(
        sync=True, echo_update=False
    )


class LoginForm(LoginPanel):
    """``provider.login_form()`` in a notebook."""

    def __init__(
        self, provider: Provider, scope: Any = None, *, username: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._requested = scope if scope is not None else provider.scope
        self._timeout = timeout
        self._deadline = _clock.monotonic() + timeout
        self._secret: str | None = None
        self._submit_asked = 0.0
        self._username = widgets.Text(
            value=username or "",
            description="Username",
            placeholder="user name",
            layout=widgets.Layout(width="360px"),
            style={"description_width": "80px"},
        )
        self._password = SecretBox(
            description="Password",
            placeholder="password",
            continuous_update=False,
            layout=widgets.Layout(width="360px"),
            style={"description_width": "80px"},
        )
        self._login = widgets.Button(
            description="Log in",
            button_style="primary",
            icon="sign-in",
            tooltip=f"Send the user name and password to {provider.name}",
        )
        self._cancel = widgets.Button(description="Cancel", tooltip="Give up logging in")

        self._login.on_click(self._on_login_click)
        self._cancel.on_click(self._on_cancel_click)
        self._username.on_msg(self._on_username_msg)
        self._password.on_msg(self._on_password_msg)
        self._password.observe(self._on_password_value, names="value")

        buttons = widgets.HBox([self._login, self._cancel], layout=widgets.Layout(margin="4px 0 0 84px"))
        super().__init__(provider, title=f"Log in to {provider.name}", parts=[self._username, self._password, buttons])
        self.state = "waiting"
        self.started.set()

    def deadline(self) -> float:
        # a request in flight gets to finish (the transport gives up after its own timeout)
        return self._deadline + (60.0 if self.state == "busy" else 0.0)

    # ---- handlers
    def _on_password_value(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if not value:
            return
        with self._lock:
            self._secret = value
            self._password.value = ""  # at once: the typed password never rests in the widget's state
            self._password.placeholder = _ENTERED
            asked = self._submit_asked
        if asked:
            self._submit()

    def _on_password_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") != "submit":
            return
        if self._secret:
            self._submit()
        else:
            self._submit_asked = _clock.monotonic()  # the password arrives right after its Enter

    def _on_username_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") != "submit":
            return
        if self._secret:
            self._submit()
        else:
            self._password.focus()

    def _on_login_click(self, _button: Any) -> None:
        with self._output:
            self._submit()

    def tick(self) -> None:
        asked = self._submit_asked
        if asked and not self._secret and _clock.monotonic() - asked > SUBMIT_GRACE:
            self._submit_asked = 0.0
            self._note("error", "Enter your password.")
        super().tick()

    # ---- the request
    def _submit(self) -> None:
        with self._lock:
            if self.done or self.state == "busy":
                return
            self._submit_asked = 0.0
            user = self._username.value.strip()
            password, self._secret = self._secret, None
            self._password.value = ""
            self._password.placeholder = "password"
            if not user:
                self._secret = password  # keep it: only the user name is missing
                self._password.placeholder = _ENTERED if password else "password"
                self._note("error", "Enter your user name.")
                self._username.focus()
                return
            if not password:
                self._note("error", "Enter your password.")
                self._password.focus()
                return
            self.state = "busy"
            self._set_inputs(disabled=True)
            self._note("busy", f"Logging in to {self.provider.name} as {user}…")
        threading.Thread(target=self._request, args=(user, password), name="nbauth-password-login", daemon=True).start()

    def _request(self, user: str, password: str) -> None:
        retry: str | None = None
        try:
            session = self.provider.get_token_by_password(user, password, self._requested, force=True)
        except InvalidGrant:
            retry = "Wrong username or password."
        except ProviderError as exc:
            retry = f"{self.provider.name} did not answer as expected: {exc}"
        except AuthError as exc:
            retry = str(exc)
        except Exception as exc:
            self._fail("error", exc, f"Unexpected {type(exc).__name__} while logging in; see the traceback below.")
            return
        else:
            self._succeed(session)
            return
        finally:
            del password
            with self._lock:
                if not self.done:
                    self._set_inputs(disabled=False)
        with self._lock:
            if self.done:
                return
            self.state = "error"
            self._note("error", retry)
            self._password.focus()

    def _set_inputs(self, *, disabled: bool) -> None:
        self._username.disabled = self._password.disabled = self._login.disabled = disabled

    def _timed_out(self) -> None:
        minutes = max(1, round(self._timeout / 60))
        self._fail(
            "expired",
            LoginRequired(
                f"no login to {self.provider.name} within {minutes} min: run the cell again (or pass timeout=...)"
            ),
            f"Nobody logged in within {minutes} min. Run the cell again to start over.",
        )

    # ---- fallbacks
    def fallback_lines(self) -> list[str]:
        if self.done:
            return []
        return [
            "This form needs Jupyter widgets. Where they cannot show, interrupt the kernel and use "
            "get_token_by_password(...), or set NBAUTH_UI=text to be asked in a terminal."
        ]
