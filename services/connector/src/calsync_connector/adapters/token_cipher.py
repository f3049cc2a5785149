"""Encryption at rest of the secrets the connector keeps per connection: MSAL token caches and
in-flight OAuth flows (which hold a PKCE code verifier).

AES-256-GCM under named keys. A sealed value records the id of its key, so keys rotate without
downtime: add a key, make it active (new writes use it, old rows still open), run
``python -m calsync_connector.reencrypt``, then remove the old key. The caller's ``context``
(``b"token-cache:" + connection id``) is authenticated as associated data, so a ciphertext
copied onto another row does not open there.

Random 96-bit nonces stay safe for about 2**32 seals per key (NIST SP 800-38D); rotating keys
yearly keeps the connector far below that.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Any, Self

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from calsync_common.postgres.pool import transaction

KEY_BYTES = 32
NONCE_BYTES = 12
#: Marks key material that must never leave development. The service settings refuse any
#: secret starting with "insecure" outside development (``calsync_common.settings``); the
#: decoder strips the prefix, so the development key is usable where it is allowed.
INSECURE_PREFIX = "insecure:"
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_URLSAFE = str.maketrans("-_", "+/")

#: PUBLIC development key (base64 of b"calsync-dev-token-key-not-secret"). Never protects real
#: tokens: its "insecure:" prefix makes the service settings refuse it in test and production.
_DEVELOPMENT_KEY_ID = "dev"
_DEVELOPMENT_KEY_MATERIAL = INSECURE_PREFIX + "Y2Fsc3luYy1kZXYtdG9rZW4ta2V5LW5vdC1zZWNyZXQ="


class TokenCipherSettings(BaseModel):
    """Named AES-256 keys (base64, standard or urlsafe, padding optional) and the active one.

    From the environment: ``CONNECTOR_TOKENS__KEYS__<id>=<base64>`` and
    ``CONNECTOR_TOKENS__ACTIVE_KEY_ID=<id>``. Environment names are case-insensitive and arrive
    lower-cased, so use lower-case key ids. A new key: ``generate_key()``, or
    ``openssl rand -base64 32``.

    Validation errors never echo their input (it is key material): pydantic puts the raw input
    in every error, so ``_redact_inputs`` replaces it.
    """

    model_config = ConfigDict(frozen=True)

    keys: dict[str, SecretStr]
    active_key_id: str

    @classmethod
    def development(cls) -> Self:
        """Settings for development only (the key is public; see ``_DEVELOPMENT_KEY_MATERIAL``)."""
        keys = {_DEVELOPMENT_KEY_ID: SecretStr(_DEVELOPMENT_KEY_MATERIAL)}
        return cls(keys=keys, active_key_id=_DEVELOPMENT_KEY_ID)

    @model_validator(mode="wrap")
    @classmethod
    def _redact_inputs(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as error:
            raise _redacted(error) from None

    @field_validator("keys")
    @classmethod
    def _valid_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not keys:
            raise ValueError("at least one key is required")
        for key_id, secret in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} must match {_KEY_ID.pattern}")
            decode_key(key_id, secret)
        return keys

    @field_validator("active_key_id")
    @classmethod
    def _active_key_configured(cls, active_key_id: str, info: ValidationInfo) -> str:
        # A field validator, not a model one: errors of "after" model validators carry the
        # whole input, keys included, and escape ``_redact_inputs``.
        keys = info.data.get("keys")
        if keys is not None and active_key_id not in keys:
            raise ValueError(f"active_key_id {active_key_id!r} is not one of the keys")
        return active_key_id


def decode_key(key_id: str, secret: SecretStr) -> bytes:
    """The 32 bytes of a configured key; errors name the key id, never the value."""
    text = secret.get_secret_value().strip().removeprefix(INSECURE_PREFIX).translate(_URLSAFE)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"key {key_id!r} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"key {key_id!r} decodes to {len(key)} bytes, expected {KEY_BYTES}")
    return key


def generate_key() -> str:
    """A new key for the settings: standard base64, which never starts with "dev-"."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _redacted(error: ValidationError) -> ValidationError:
    details: list[InitErrorDetails] = []
    for line in error.errors(include_url=False):
        detail = InitErrorDetails(type=line["type"], loc=line["loc"], input="<redacted>")
        if "ctx" in line:
            detail["ctx"] = line["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(error.title, details)


class TokenCipherError(Exception):
    """A sealed value could not be opened. Messages never hold key material or plaintext."""


class UnknownKeyError(TokenCipherError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no key {key_id!r} is configured")
        self.key_id = key_id


class DecryptionError(TokenCipherError):
    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"value sealed under key {key_id!r} failed authentication "
            "(another row's context, or tampered)"
        )
        self.key_id = key_id


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    #: Includes the 16-byte GCM tag.
    ciphertext: bytes


class TokenCipher:
    def __init__(self, settings: TokenCipherSettings) -> None:
        self._active_key_id = settings.active_key_id
        self._aeads = {kid: AESGCM(decode_key(kid, s)) for kid, s in settings.keys.items()}

    @property
    def active_key_id(self) -> str:
        return self._active_key_id

    def seal(self, plaintext: bytes, *, context: bytes) -> Sealed:
        _require_context(context)
        nonce = os.urandom(NONCE_BYTES)
        aead = self._aeads[self._active_key_id]
        return Sealed(self._active_key_id, nonce, aead.encrypt(nonce, plaintext, context))

    def open(self, sealed: Sealed, *, context: bytes) -> bytes:
        _require_context(context)
        aead = self._aeads.get(sealed.key_id)
        if aead is None:
            raise UnknownKeyError(sealed.key_id)
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, context)
        except (InvalidTag, ValueError):  # ValueError: a nonce of impossible length
            raise DecryptionError(sealed.key_id) from None

    def needs_rotation(self, sealed: Sealed) -> bool:
        return sealed.key_id != self._active_key_id

    def __repr__(self) -> str:
        return f"TokenCipher(active_key_id={self._active_key_id!r}, key_ids={sorted(self._aeads)})"


def _require_context(context: bytes) -> None:
    # An empty context would let a ciphertext open on any row: the binding is the point.
    if not context:
        raise ValueError("context must name the row the value belongs to")


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class SealedTable:
    """A table of sealed values: ``(<key column> PRIMARY KEY, key_id, nonce, ciphertext, ...)``."""

    name: str
    key_column: str
    context_prefix: bytes

    def __post_init__(self) -> None:
        # Names are interpolated into SQL: only plain lower-case identifiers are accepted.
        for identifier in (self.name, self.key_column):
            if not _IDENTIFIER.fullmatch(identifier):
                raise ValueError(f"not a plain SQL identifier: {identifier!r}")

    def context(self, key: object) -> bytes:
        return self.context_prefix + str(key).encode()


TOKEN_CACHES = SealedTable("token_caches", "connection_id", b"token-cache:")
OAUTH_FLOWS = SealedTable("oauth_flows", "state", b"oauth-flow:")


async def reencrypt(
    pool: asyncpg.Pool, cipher: TokenCipher, table: SealedTable, *, batch: int = 100
) -> int:
    """Re-seal under the active key every row of ``table`` sealed under another; how many.

    One pass in primary-key order, each row in its own short transaction, so writers wait on a
    row for milliseconds at most. A row rewritten concurrently (under the active key) or deleted
    is left alone. A row that cannot be opened raises; the rows before it stay re-sealed and a
    rerun continues where it failed. ``updated_at`` is kept: the content did not change.
    """
    if batch < 1:
        raise ValueError("batch must be positive")
    resealed = 0
    after: object = None
    while True:
        keys = await _stale_keys(pool, table, cipher.active_key_id, after, batch)
        for key in keys:
            resealed += await _reseal(pool, cipher, table, key)
        if len(keys) < batch:
            return resealed
        after = keys[-1]


async def _stale_keys(
    pool: asyncpg.Pool, table: SealedTable, active_key_id: str, after: object, batch: int
) -> list[object]:
    t, k = table.name, table.key_column
    if after is None:
        sql = f'SELECT "{k}" FROM "{t}" WHERE key_id <> $1 ORDER BY "{k}" LIMIT $2'  # noqa: S608
        rows = await pool.fetch(sql, active_key_id, batch)
    else:
        sql = (
            f'SELECT "{k}" FROM "{t}" WHERE key_id <> $1 AND "{k}" > $3'  # noqa: S608
            f' ORDER BY "{k}" LIMIT $2'
        )
        rows = await pool.fetch(sql, active_key_id, batch, after)
    return [row[0] for row in rows]


async def _reseal(pool: asyncpg.Pool, cipher: TokenCipher, table: SealedTable, key: object) -> int:
    """1 if the row was re-sealed, 0 if a concurrent writer or delete got there first."""
    t, k = table.name, table.key_column
    async with transaction(pool) as conn:
        row = await conn.fetchrow(
            f'SELECT key_id, nonce, ciphertext FROM "{t}" WHERE "{k}" = $1 FOR UPDATE',  # noqa: S608
            key,
        )
        if row is None:
            return 0
        old = Sealed(row["key_id"], row["nonce"], row["ciphertext"])
        if not cipher.needs_rotation(old):
            return 0
        context = table.context(key)
        new = cipher.seal(cipher.open(old, context=context), context=context)
        status = await conn.execute(
            f'UPDATE "{t}" SET key_id = $2, nonce = $3, ciphertext = $4'  # noqa: S608
            f' WHERE "{k}" = $1 AND key_id = $5',
            key,
            new.key_id,
            new.nonce,
            new.ciphertext,
            old.key_id,
        )
        return 1 if status == "UPDATE 1" else 0
