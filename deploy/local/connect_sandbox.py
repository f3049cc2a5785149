"""Connect a sandbox Outlook account to the running stack (``make up``) without a browser.

``uv run python deploy/local/connect_sandbox.py [--user adele.vance@contoso.example]
[--sub-account sa-demo] [--platform-user u-1]``

Does what a person does in a browser, through the Graph emulator's automation path: asks the
connector for an authorization URL, opens it as ``--user`` (``x-emulator-user``: sign in and
accept), posts the form Microsoft's page would post to the connector's callback, and prints the
connection the connector stored. Uses the connector's development JWT key (``make token``).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from calsync_common.http.auth import AuthSettings, mint

CONNECTOR = "http://127.0.0.1:8081"
CA = Path(".run/msgraph/ca.pem")


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _call(method: str, url: str, token: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (our URL)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as resp:  # noqa: S310
        return json.load(resp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", default="adele.vance@contoso.example")
    parser.add_argument("--sub-account", default="sa-demo")
    parser.add_argument("--platform-user", default="u-1")
    args = parser.parse_args()
    token = mint(AuthSettings.development(), subject="sandbox", sub_account_id=args.sub_account)
    started = _call(
        "POST",
        f"{CONNECTOR}/v1/sub-accounts/{args.sub_account}/users/{args.platform_user}"
        "/connections/outlook",
        token,
        {"return_url": "http://localhost:3000/settings/calendars"},
    )
    browse = f"{started['authorization_url']}&" + urllib.parse.urlencode(
        {"x-emulator-user": args.user}
    )
    tls = ssl.create_default_context(cafile=str(CA))
    with urllib.request.urlopen(browse, context=tls) as resp:  # noqa: S310
        form = _Form()
        form.feed(resp.read().decode())
    opener = urllib.request.build_opener(_NoRedirect)
    callback = urllib.request.Request(  # noqa: S310
        f"{CONNECTOR}/oauth/callback",
        data=urllib.parse.urlencode(form.fields).encode(),
        method="POST",
    )
    try:
        opener.open(callback)
    except urllib.error.HTTPError as redirect:
        location = redirect.headers.get("Location", "")
    else:
        print("the callback did not redirect", file=sys.stderr)
        return 1
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if "outlook_connection_id" not in query:
        print(f"not connected: {query.get('error', ['?'])[0]}", file=sys.stderr)
        return 1
    connection_id = query["outlook_connection_id"][0]
    connection = _call(
        "GET", f"{CONNECTOR}/v1/sub-accounts/{args.sub_account}/connections/{connection_id}", token
    )
    print(json.dumps(connection, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
