"""Token encryption at rest: AES-GCM seal/open, key rotation, settings that never echo keys, and
re-encryption of the stored rows on real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import asyncpg
import pytest
from pydantic import SecretStr, ValidationError

from calsync_common.postgres.pool import open_pool
from calsync_common.settings import HttpSettings, PlatformSettings, ServiceSettings
from calsync_common.testing import eventually
from calsync_connector.adapters.token_cipher import (
    OAUTH_FLOWS,
    TOKEN_CACHES,
    DecryptionError,
    Sealed,
    SealedTable,
    TokenCipher,
    TokenCipherError,
    TokenCipherSettings,
    UnknownKeyError,
    generate_key,
    reencrypt,
)
from calsync_connector.reencrypt import run

K1 = generate_key()
K2 = generate_key()
CACHE = b'{"refresh_token": "RT-SECRET-123"}'
CONTEXT = b"token-cache:" + str(uuid.uuid4()).encode()


def cipher(active: str = "k1", **keys: str) -> TokenCipher:
    return TokenCipher(settings(active, **keys))


def settings(active: str = "k1", **keys: str) -> TokenCipherSettings:
    material = keys or {"k1": K1}
    return TokenCipherSettings(
        keys={kid: SecretStr(key) for kid, key in material.items()}, active_key_id=active
    )


def flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


# --- sealing -----------------------------------------------------------------------------------


def test_round_trip() -> None:
    c = cipher()
    sealed = c.seal(CACHE, context=CONTEXT)
    assert sealed.key_id == "k1"
    assert len(sealed.nonce) == 12
    assert len(sealed.ciphertext) == len(CACHE) + 16  # the GCM tag
    assert CACHE not in sealed.ciphertext
    assert c.open(sealed, context=CONTEXT) == CACHE


def test_every_seal_has_a_fresh_nonce() -> None:
    c = cipher()
    first, second = c.seal(CACHE, context=CONTEXT), c.seal(CACHE, context=CONTEXT)
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: replace(s, ciphertext=flip(s.ciphertext)),
        lambda s: replace(s, ciphertext=flip(s.ciphertext, at=-1)),  # the tag
        lambda s: replace(s, ciphertext=s.ciphertext[:-16]),
        lambda s: replace(s, ciphertext=b""),
        lambda s: replace(s, nonce=flip(s.nonce)),
        lambda s: replace(s, nonce=s.nonce[:4]),  # a length AES-GCM refuses
    ],
    ids=["ciphertext", "tag", "no-tag", "empty", "nonce", "short-nonce"],
)
def test_tampering_is_detected(tamper: Callable[[Sealed], Sealed]) -> None:
    c = cipher()
    sealed = c.seal(CACHE, context=CONTEXT)
    with pytest.raises(DecryptionError) as caught:
        c.open(tamper(sealed), context=CONTEXT)
    assert_no_secrets(str(caught.value), repr(caught.value))


def test_a_ciphertext_does_not_open_on_another_row() -> None:
    c = cipher()
    sealed = c.seal(CACHE, context=CONTEXT)
    other_row = b"token-cache:" + str(uuid.uuid4()).encode()
    with pytest.raises(DecryptionError):
        c.open(sealed, context=other_row)
    with pytest.raises(DecryptionError):
        c.open(sealed, context=b"oauth-flow:" + CONTEXT.removeprefix(b"token-cache:"))


def test_an_empty_context_is_refused() -> None:
    c = cipher()
    with pytest.raises(ValueError, match="context"):
        c.seal(CACHE, context=b"")
    with pytest.raises(ValueError, match="context"):
        c.open(c.seal(CACHE, context=CONTEXT), context=b"")


def test_unknown_key_id() -> None:
    sealed = cipher("k9", k9=K2).seal(CACHE, context=CONTEXT)
    with pytest.raises(UnknownKeyError) as caught:
        cipher().open(sealed, context=CONTEXT)
    assert caught.value.key_id == "k9"
    assert isinstance(caught.value, TokenCipherError)
    assert_no_secrets(str(caught.value))


def test_rotation_opens_old_values_and_seals_new_ones_under_the_active_key() -> None:
    old = cipher("k1", k1=K1).seal(CACHE, context=CONTEXT)
    rotated = cipher("k2", k1=K1, k2=K2)
    assert rotated.needs_rotation(old)
    assert rotated.open(old, context=CONTEXT) == CACHE
    new = rotated.seal(CACHE, context=CONTEXT)
    assert new.key_id == "k2"
    assert not rotated.needs_rotation(new)
    assert cipher("k2", k2=K2).open(new, context=CONTEXT) == CACHE


# --- settings ----------------------------------------------------------------------------------


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for key in (K1, K2, K1.rstrip("="), K2.rstrip("="), BAD_KEY):
            assert key not in text
        for raw in (base64.b64decode(K1), base64.b64decode(K2)):
            assert raw.hex() not in text
            assert repr(raw) not in text
        assert "RT-SECRET-123" not in text


BAD_KEY = base64.b64encode(b"sixteen byte key").decode()


def rendered(error: ValidationError) -> list[str]:
    return [str(error), repr(error), error.json(), repr(error.errors())]


def test_a_key_of_the_wrong_length_is_named_but_not_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(k1=K1, k2024b=BAD_KEY)
    assert "'k2024b' decodes to 16 bytes, expected 32" in str(caught.value)
    assert_no_secrets(*rendered(caught.value))


def test_a_key_that_is_not_base64_is_named_but_not_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(k1="not base64 at all!")
    assert "'k1' is not valid base64" in str(caught.value)
    assert "not base64 at all" not in " ".join(rendered(caught.value))


def test_nested_settings_do_not_echo_keys_either() -> None:
    with pytest.raises(ValidationError) as caught:
        WithTokens(
            platform=PlatformSettings(environment="development"),
            http=HttpSettings(port=0),
            database_url="postgresql://db/x",
            tokens={"keys": {"k1": K1, "k2": BAD_KEY}, "active_key_id": "k1"},
        )
    assert "tokens.keys" in str(caught.value)
    assert_no_secrets(*rendered(caught.value))


@pytest.mark.parametrize(
    ("active", "keys", "message"),
    [
        ("k2", {"k1": K1}, "active_key_id 'k2' is not one of the keys"),
        ("k1", {}, "at least one key is required"),
        ("k 1", {"k 1": K1}, "key id 'k 1' must match"),
        ("k" * 33, {"k" * 33: K1}, "must match"),
    ],
)
def test_settings_errors(active: str, keys: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        TokenCipherSettings(keys=keys, active_key_id=active)
    assert_no_secrets(*rendered(caught.value))


def test_keys_in_urlsafe_or_unpadded_base64() -> None:
    raw = os.urandom(32)
    standard = TokenCipher(settings(k1=base64.b64encode(raw).decode()))
    urlsafe = TokenCipher(settings(k1=base64.urlsafe_b64encode(raw).decode().rstrip("=")))
    assert urlsafe.open(standard.seal(CACHE, context=CONTEXT), context=CONTEXT) == CACHE


def test_settings_and_cipher_print_no_key_material() -> None:
    s = settings("k2", k1=K1, k2=K2)
    c = TokenCipher(s)
    assert "k1" in repr(c)
    assert "k2" in repr(c)
    assert_no_secrets(repr(s), str(s), repr(c), str(c), s.model_dump_json())


class WithTokens(ServiceSettings):
    tokens: TokenCipherSettings = TokenCipherSettings.development()


def test_the_development_key_works_in_development_only() -> None:
    dev = WithTokens(
        platform=PlatformSettings(environment="development"),
        http=HttpSettings(port=0),
        database_url="postgresql://db/x",
    )
    c = TokenCipher(dev.tokens)
    assert c.open(c.seal(CACHE, context=CONTEXT), context=CONTEXT) == CACHE
    for environment in ("test", "production"):
        with pytest.raises(ValidationError, match=r"tokens\.keys\[dev\] holds a placeholder"):
            WithTokens(
                platform=PlatformSettings(environment=environment),
                http=HttpSettings(port=0),
                database_url="postgresql://db/x",
            )
    real = TokenCipherSettings(keys={"k1": SecretStr(K1)}, active_key_id="k1")
    WithTokens(
        platform=PlatformSettings(environment="production"),
        http=HttpSettings(port=0),
        database_url="postgresql://db/x",
        tokens=real,
    )


def test_table_names_must_be_plain_identifiers() -> None:
    with pytest.raises(ValueError, match="identifier"):
        SealedTable('token_caches"; DROP TABLE x; --', "connection_id", b"token-cache:")


# --- stored rows (real PostgreSQL) -------------------------------------------------------------

SCHEMA = """
CREATE TABLE token_caches (
    connection_id uuid PRIMARY KEY,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE oauth_flows (
    state text PRIMARY KEY,
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


@pytest.fixture
async def pool(fresh_database: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_pool(fresh_database, max_size=4) as pool:
        await pool.execute(SCHEMA)
        yield pool


async def store(pool: asyncpg.Pool, table: SealedTable, key: object, sealed: Sealed) -> None:
    await pool.execute(
        f'INSERT INTO "{table.name}" ("{table.key_column}", key_id, nonce, ciphertext)'
        " VALUES ($1, $2, $3, $4)",
        key,
        sealed.key_id,
        sealed.nonce,
        sealed.ciphertext,
    )


async def load(pool: asyncpg.Pool, table: SealedTable) -> dict[object, Sealed]:
    rows = await pool.fetch(
        f'SELECT "{table.key_column}", key_id, nonce, ciphertext FROM "{table.name}"'
    )
    return {r[0]: Sealed(r["key_id"], r["nonce"], r["ciphertext"]) for r in rows}


def plaintext(key: object) -> bytes:
    return b'{"secret-of": "%s"}' % str(key).encode()


async def fill(pool: asyncpg.Pool, c: TokenCipher, table: SealedTable, keys: list[object]) -> None:
    for key in keys:
        await store(pool, table, key, c.seal(plaintext(key), context=table.context(key)))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("table", "new_key"),
    [(TOKEN_CACHES, uuid.uuid4), (OAUTH_FLOWS, lambda: uuid.uuid4().hex)],
    ids=["token_caches", "oauth_flows"],
)
async def test_reencrypt_moves_every_row_to_the_active_key(
    pool: asyncpg.Pool, table: SealedTable, new_key: Callable[[], object]
) -> None:
    old_keys = [new_key() for _ in range(7)]
    current_keys = [new_key() for _ in range(2)]
    await fill(pool, cipher("k1", k1=K1), table, old_keys)
    rotated = cipher("k2", k1=K1, k2=K2)
    await fill(pool, rotated, table, current_keys)
    before = await load(pool, table)

    assert await reencrypt(pool, rotated, table, batch=3) == len(old_keys)  # three pages

    after = await load(pool, table)
    assert {s.key_id for s in after.values()} == {"k2"}
    for key in current_keys:
        assert after[key] == before[key]  # already current: untouched
    only_k2 = cipher("k2", k2=K2)  # k1 removed from the settings
    for key, sealed in after.items():
        assert only_k2.open(sealed, context=table.context(key)) == plaintext(key)
    assert await reencrypt(pool, only_k2, table) == 0


@pytest.mark.integration
async def test_a_concurrent_writer_wins(pool: asyncpg.Pool) -> None:
    """reencrypt waits on the row a writer holds, then leaves the writer's value alone."""
    old, rotated = cipher("k1", k1=K1), cipher("k2", k1=K1, k2=K2)
    busy, idle = uuid.uuid4(), uuid.uuid4()
    await fill(pool, old, TOKEN_CACHES, [busy, idle])
    written = rotated.seal(b"written by the connector", context=TOKEN_CACHES.context(busy))
    async with pool.acquire() as writer, writer.transaction():
        await writer.execute(
            "UPDATE token_caches SET key_id = $2, nonce = $3, ciphertext = $4"
            " WHERE connection_id = $1",
            busy,
            written.key_id,
            written.nonce,
            written.ciphertext,
        )
        task = asyncio.create_task(reencrypt(pool, rotated, TOKEN_CACHES))
        await eventually(lambda: waiting_on_a_lock(pool), timeout_s=10)
    assert await task == 1  # the idle row only
    rows = await load(pool, TOKEN_CACHES)
    assert rows[busy] == written
    assert rotated.open(rows[idle], context=TOKEN_CACHES.context(idle)) == plaintext(idle)


async def waiting_on_a_lock(pool: asyncpg.Pool) -> bool:
    # Asked on another connection: pg_stat_activity is a snapshot per transaction.
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
    )


@pytest.mark.integration
async def test_a_row_under_a_removed_key_stops_the_run_and_a_rerun_resumes(
    pool: asyncpg.Pool,
) -> None:
    first, lost, last = sorted(uuid.uuid4() for _ in range(3))
    await fill(pool, cipher("k1", k1=K1), TOKEN_CACHES, [first, last])
    await fill(pool, cipher("k0", k0=generate_key()), TOKEN_CACHES, [lost])
    rotated = cipher("k2", k1=K1, k2=K2)
    with pytest.raises(UnknownKeyError):
        await reencrypt(pool, rotated, TOKEN_CACHES)
    assert (await load(pool, TOKEN_CACHES))[first].key_id == "k2"
    await pool.execute("DELETE FROM token_caches WHERE connection_id = $1", lost)
    assert await reencrypt(pool, rotated, TOKEN_CACHES) == 1


@pytest.mark.integration
async def test_the_database_never_holds_the_plaintext(pool: asyncpg.Pool) -> None:
    connection_id = uuid.uuid4()
    await store(pool, TOKEN_CACHES, connection_id, cipher().seal(CACHE, context=CONTEXT))
    dump = await pool.fetchval("SELECT string_agg(t::text, ' ') FROM token_caches t")
    hex_dump = await pool.fetchval(
        "SELECT string_agg(encode(nonce, 'hex') || encode(ciphertext, 'hex'), ' ')"
        " FROM token_caches"
    )
    raw = b"".join(s.nonce + s.ciphertext for s in (await load(pool, TOKEN_CACHES)).values())
    assert_plaintext_absent(dump.encode(), hex_dump.encode(), raw)


@pytest.mark.integration
async def test_a_pg_dump_never_holds_the_plaintext(pool: asyncpg.Pool, fresh_database: str) -> None:
    pg_dump = shutil.which("pg_dump")
    # The local stack installs PostgreSQL's client with its server: under `make test` a missing
    # pg_dump is a failure, never a skip. Elsewhere (testcontainers) it may be absent.
    if pg_dump is None and not os.environ.get("CALSYNC_LOCAL_INFRA"):
        pytest.skip("pg_dump is not installed and no local stack is configured")
    assert pg_dump is not None, "pg_dump is missing from the local stack"
    await store(pool, TOKEN_CACHES, uuid.uuid4(), cipher().seal(CACHE, context=CONTEXT))
    process = await asyncio.create_subprocess_exec(
        pg_dump,
        "--data-only",
        "--table=token_caches",
        fresh_database,
        stdout=asyncio.subprocess.PIPE,
    )
    dump, _ = await process.communicate()
    assert process.returncode == 0
    assert b"COPY public.token_caches" in dump
    assert_plaintext_absent(dump)


def assert_plaintext_absent(*dumps: bytes) -> None:
    for dump in dumps:
        for needle in (CACHE, b"RT-SECRET-123", b"refresh_token"):
            assert needle not in dump
            assert needle.hex().encode() not in dump
            assert base64.b64encode(needle) not in dump


@dataclass(frozen=True)
class CommandSettings:
    tokens: TokenCipherSettings
    dsn: str


@pytest.mark.integration
async def test_the_command_reencrypts_both_tables(pool: asyncpg.Pool, fresh_database: str) -> None:
    old = cipher("k1", k1=K1)
    await fill(pool, old, TOKEN_CACHES, [uuid.uuid4(), uuid.uuid4()])
    await fill(pool, old, OAUTH_FLOWS, ["state-1"])
    report = await run(CommandSettings(settings("k2", k1=K1, k2=K2), fresh_database))
    assert report == {"active_key_id": "k2", "token_caches": 2, "oauth_flows": 1}


@pytest.mark.integration
async def test_the_command_reads_its_keys_from_the_environment(
    pool: asyncpg.Pool, fresh_database: str
) -> None:
    await fill(pool, cipher("k1", k1=K1), OAUTH_FLOWS, ["state-1", "state-2"])
    env = {
        **os.environ,
        "CALSYNC_ENVIRONMENT": "development",
        "CONNECTOR_DATABASE_URL": fresh_database,
        "CONNECTOR_TOKENS__KEYS__K1": K1,
        "CONNECTOR_TOKENS__KEYS__K2": K2,
        "CONNECTOR_TOKENS__ACTIVE_KEY_ID": "k2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "calsync_connector.reencrypt",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == {"active_key_id": "k2", "token_caches": 0, "oauth_flows": 2}
