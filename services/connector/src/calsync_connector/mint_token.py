"""``python -m calsync_connector.mint_token``: print a bearer token the connector accepts.

    python -m calsync_connector.mint_token --sub-account SA [--subject S] [--lifetime 3600]
    python -m calsync_connector.mint_token --service sync-worker

Keys come from ``CONNECTOR_AUTH__KEYS`` (JSON object, key id → secret) and
``CONNECTOR_AUTH__SIGNING_KEY_ID``, as the connector reads them. With neither set, the
development key is used (with a warning), and only in the development environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from calsync_common.http.auth import AuthSettings, mint
from calsync_common.settings import PlatformSettings, is_placeholder


class _Environment(BaseSettings):
    """Only the connector's auth settings, under the connector's own variable names."""

    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    auth: AuthSettings | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m calsync_connector.mint_token",
        description="Print a bearer token the connector accepts.",
    )
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--sub-account", metavar="ID", help="a token for this sub-account")
    kind.add_argument("--service", metavar="NAME", help="a service token (e.g. sync-worker)")
    parser.add_argument(
        "--subject", help="the caller's id (sub claim); default: the service name or 'mint-token'"
    )
    parser.add_argument("--lifetime", type=int, default=3600, metavar="SECONDS")
    parser.add_argument(
        "--audience",
        help="the service the token is for (aud claim), e.g. calsync-availability;"
        " default: the connector's",
    )
    return parser


def _settings(environment: str) -> AuthSettings:
    """The configured AuthSettings, or the development ones; SystemExit when unusable."""
    try:
        configured = _Environment().auth
    except ValidationError as exc:
        # Locations and messages only: the input would include the secrets.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        sys.exit(f"error: CONNECTOR_AUTH__* is invalid: {problems}")
    if configured is None:
        if environment != "development":
            sys.exit(f"error: CONNECTOR_AUTH__KEYS is not set ({environment} environment)")
        print(
            "warning: CONNECTOR_AUTH__* not set; signing with the insecure development key",
            file=sys.stderr,
        )
        return AuthSettings.development()
    if environment != "development" and any(map(is_placeholder, configured.keys.values())):
        sys.exit(f"error: CONNECTOR_AUTH__KEYS holds a placeholder secret ({environment})")
    return configured


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _settings(PlatformSettings().environment)
    if args.audience:
        settings = settings.model_copy(update={"audience": args.audience})
    subject = args.subject or args.service or "mint-token"
    try:
        token = mint(
            settings,
            subject=subject,
            sub_account_id=args.sub_account,
            service=args.service,
            lifetime_s=args.lifetime,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(token)


if __name__ == "__main__":
    main()
