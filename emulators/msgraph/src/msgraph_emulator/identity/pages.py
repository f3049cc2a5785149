"""HTML the authorize endpoint shows: account picker + consent, error page, form_post.

Every page carries an "emulator" banner so nobody mistakes it for Microsoft's sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from msgraph_emulator.identity import scopes
from msgraph_emulator.users import User

ACTION_FIELD = "x-emulator-action"
_STYLE = (
    "body{font-family:sans-serif;max-width:36rem;margin:2rem auto}"
    ".banner{background:#fde68a;padding:.5rem;border:1px solid #b45309}"
    "button{margin-right:1rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<p class='banner'>Microsoft identity platform <b>emulator</b> &mdash; sandbox only, "
        "not a Microsoft service.</p>"
        f"{body}</body></html>"
    )


def _hidden(params: Mapping[str, str]) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
        for k, v in params.items()
        if k not in {ACTION_FIELD, "x-emulator-user"}
    )


def consent_page(
    *,
    action: str,
    app_name: str,
    params: Mapping[str, str],
    users: Iterable[User],
    wanted: Iterable[str],
) -> str:
    choices = "".join(
        f"<li><label><input type='radio' name='x-emulator-user' value='{escape(u.id)}'"
        f"{' checked' if i == 0 else ''}> {escape(u.display_name)} "
        f"&lt;{escape(u.user_principal_name)}&gt;{' (personal)' if u.is_personal else ''}"
        "</label></li>"
        for i, u in enumerate(users)
    )
    perms = "".join(f"<li>{escape(s)}</li>" for s in sorted(scopes.resource_scopes(wanted)))
    body = (
        f"<h1>Permissions requested</h1><p><b>{escape(app_name)}</b> wants to:</p>"
        f"<ul>{perms or '<li>Sign you in</li>'}</ul>"
        f"<form method='post' action='{escape(action)}'>{_hidden(params)}"
        f"<p>Sign in as:</p><ul>{choices or '<li>No account can sign in here.</li>'}</ul>"
        f"<button type='submit' name='{ACTION_FIELD}' value='accept'>Accept</button>"
        f"<button type='submit' name='{ACTION_FIELD}' value='cancel'>Cancel</button>"
        "</form>"
    )
    return _page("Permissions requested", body)


def error_page(description: str) -> str:
    lines = "".join(f"<p>{escape(line)}</p>" for line in description.splitlines() if line)
    return _page("Sign in", f"<h1>Sorry, but we're having trouble signing you in.</h1>{lines}")


def form_post_page(redirect_uri: str, values: Mapping[str, str]) -> str:
    """``response_mode=form_post``: a self-submitting form, like Entra's."""
    fields = "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in values.items()
    )
    return (
        "<html><head><title>Working...</title></head><body onload='document.forms[0].submit()'>"
        f"<form method='POST' name='hiddenform' action='{escape(redirect_uri)}'>{fields}"
        "<noscript><p>Script is disabled. Click Submit to continue.</p>"
        "<input type='submit' value='Submit'></noscript></form></body></html>"
    )
