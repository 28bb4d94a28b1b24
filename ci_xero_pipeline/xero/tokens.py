"""Where a site's OAuth 2.0 connection lives between runs: encrypted at rest, one place per tenant.

Xero rotates refresh tokens: every refresh spends the old one. So a refresh happens only under the
store's lock, after re-reading the store (another process may have refreshed already), and the new
token is saved before anyone uses it. A crash after the save loses nothing; a crash before it leaves
the old, still-unspent token in place.

Two stores with the same interface: a file (default; mode 0600, replaced atomically, locked with
flock) and a SQL table (hosted deployments with many sites; locked with the database's own locks).

The lock is re-entrant within a thread: code that holds it (disconnect) may call code that takes it
again (a refresh) without waiting for itself. Other threads and processes still wait.

When Xero refuses a refresh (`invalid_grant`), the refusal is stored with the connection (when, and
Xero's error code and description; never a token), so that `ci-xero status` and the expiry sensor
can tell the truth about a dead connection without asking Xero.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from cryptography.fernet import Fernet, InvalidToken

REFRESH_TOKEN_LIFETIME_SECONDS = 60 * 24 * 3600  # Xero: a refresh token unused for 60 days expires
DEFAULT_KEY_ENV_VAR = "CI_XERO_TOKEN_KEY"


class NotConnectedError(RuntimeError):
    """No usable Xero connection; the message says which command makes one."""


class TokenStoreError(RuntimeError):
    """The stored connection cannot be read (wrong key, damaged file); never shows its content."""


@dataclass
class StoredConnection:
    token: dict[str, Any]
    tenant_id: str
    tenant_name: str = ""
    grant_type: str = "authorization_code"  # or client_credentials (a custom connection)
    connected_at: float = field(default_factory=time.time)
    refreshed_at: float = field(default_factory=time.time)
    # Xero's last refusal of a refresh, until a refresh succeeds or the site reconnects:
    # {"at": epoch seconds, "error": "invalid_grant", "description": Xero's text}; never a token
    last_refusal: dict[str, Any] | None = None

    def __repr__(self) -> str:  # never show token values, even in a debugger or a traceback
        return f"StoredConnection(tenant_name={self.tenant_name!r}, tenant_id={self.tenant_id!r})"

    @property
    def access_token_expires_at(self) -> float:
        return float(self.token.get("expires_at") or 0)

    @property
    def refresh_token_expires_at(self) -> float | None:
        """When the refresh token dies unused (None: a custom connection has no refresh token)."""
        if not self.token.get("refresh_token"):
            return None
        return self.refreshed_at + REFRESH_TOKEN_LIFETIME_SECONDS

    def access_token_valid_for(self, seconds: float, now: float | None = None) -> bool:
        return self.access_token_expires_at - (now or time.time()) > seconds

    def record_refusal(self, error: str, description: str = "", at: float | None = None) -> None:
        """Remember that Xero refused to refresh this connection. The description is Xero's text with
        this connection's tokens blanked out, should Xero ever echo one."""
        for secret in (self.token.get("refresh_token"), self.token.get("access_token")):
            if secret:
                description = description.replace(str(secret), "[token]")
        self.last_refusal = {"at": at or time.time(), "error": str(error), "description": description[:500]}


class TokenCipher:
    """Fernet (AES-128-CBC + HMAC-SHA256) with a key from an environment variable.

    For a single-machine site with the variable unset, a key file beside the token (mode 0600) is
    created once, so the demo works out of the box; hosted deployments set the variable.
    """

    def __init__(self, key: bytes, source: str):
        self._fernet = Fernet(key)
        self.source = source  # where the key came from, for messages (never the key)

    def __repr__(self) -> str:
        return f"TokenCipher(key from {self.source})"

    @classmethod
    def from_environment(cls, env_var: str = DEFAULT_KEY_ENV_VAR, key_file: Path | None = None) -> "TokenCipher":
        value = os.environ.get(env_var)
        if value:
            try:
                return cls(value.encode(), f"${env_var}")
            except ValueError:
                raise TokenStoreError(
                    f"${env_var} is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
                    "`ci-xero new-token-key`."
                ) from None
        if key_file is None:
            raise TokenStoreError(f"Set ${env_var} to the key that encrypts stored Xero connections.")
        return cls(_key_from_file(key_file), str(key_file))

    def encrypt(self, data: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(data).encode())

    def decrypt(self, blob: bytes, where: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(blob))
        except InvalidToken:
            raise TokenStoreError(
                f"The Xero connection in {where} cannot be decrypted with the key from {self.source}: "
                "the key changed or the store was damaged. Restore the key, or connect again with "
                "`ci-xero connect`."
            ) from None


def new_key() -> str:
    return Fernet.generate_key().decode()


def _key_from_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as stream:
            stream.write(new_key())
    return path.read_text().strip().encode()


_HELD = threading.local()  # the locks this thread holds, by name, with their nesting depth


@contextlib.contextmanager
def _reentrant(name: str, acquire: Callable[[], contextlib.AbstractContextManager[None]]) -> Iterator[None]:
    """Take a cross-process lock once per thread: a nested `locked()` in the thread that holds it
    goes straight in (flock and the database locks would otherwise wait for their own holder)."""
    held: Counter = _HELD.__dict__.setdefault("names", Counter())
    if held[name]:
        held[name] += 1
        try:
            yield
        finally:
            held[name] -= 1
        return
    with acquire():
        held[name] += 1
        try:
            yield
        finally:
            held[name] -= 1


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


class TokenStore(Protocol):
    def load(self) -> StoredConnection | None: ...
    def save(self, connection: StoredConnection) -> None: ...
    def delete(self) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    def require(self) -> StoredConnection: ...


class _StoreBase:
    where: str

    def require(self) -> StoredConnection:
        connection = self.load()  # type: ignore[attr-defined]
        if connection is None:
            raise NotConnectedError(
                f"No Xero connection is stored in {self.where}. Connect first: `ci-xero connect`."
            )
        return connection


class FileTokenStore(_StoreBase):
    """The connection as an encrypted file with mode 0600, replaced atomically on every save."""

    def __init__(self, path: str | Path, cipher: TokenCipher):
        self.path = Path(path)
        self.cipher = cipher
        self.where = str(self.path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def load(self) -> StoredConnection | None:
        if not self.path.is_file():
            return None
        return StoredConnection(**self.cipher.decrypt(self.path.read_bytes(), self.where))

    def save(self, connection: StoredConnection) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".token-")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "wb") as stream:
                stream.write(self.cipher.encrypt(asdict(connection)))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock across processes on this machine (flock on a sibling lock file);
        re-entrant within a thread."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        return _reentrant(f"file:{lock_path.resolve()}", lambda: _flocked(lock_path))


class SqlTokenStore(_StoreBase):
    """The connection as an encrypted row of `xero_connections`, keyed by site; for hosted deployments
    where runs of one site may start on different machines. Locks: PostgreSQL advisory locks,
    MariaDB/MySQL GET_LOCK, SQLite an immediate transaction."""

    def __init__(self, database_url: str, site_key: str, cipher: TokenCipher):
        import sqlalchemy as sa

        self.site_key = site_key
        self.cipher = cipher
        self.where = f"the xero_connections table (site {site_key!r})"
        self.engine = sa.create_engine(database_url, future=True)
        metadata = sa.MetaData()
        self.table = sa.Table(
            "xero_connections", metadata,
            sa.Column("site_key", sa.String(200), primary_key=True),
            sa.Column("tenant_id", sa.String(64), nullable=False),
            sa.Column("ciphertext", sa.Text, nullable=False),
            sa.Column("saved_at", sa.Float, nullable=False),  # epoch seconds; not money
        )
        metadata.create_all(self.engine, checkfirst=True)

    def __repr__(self) -> str:
        return f"SqlTokenStore(site_key={self.site_key!r}, dialect={self.engine.dialect.name!r})"

    def load(self) -> StoredConnection | None:
        import sqlalchemy as sa

        with self.engine.connect() as connection:
            blob = connection.execute(
                sa.select(self.table.c.ciphertext).where(self.table.c.site_key == self.site_key)
            ).scalar()
        if blob is None:
            return None
        return StoredConnection(**self.cipher.decrypt(blob.encode(), self.where))

    def save(self, stored: StoredConnection) -> None:
        import sqlalchemy as sa

        row = {
            "tenant_id": stored.tenant_id,
            "ciphertext": self.cipher.encrypt(asdict(stored)).decode(),
            "saved_at": time.time(),
        }
        with self.engine.begin() as connection:
            updated = connection.execute(
                sa.update(self.table).where(self.table.c.site_key == self.site_key).values(**row)
            ).rowcount
            if not updated:
                connection.execute(sa.insert(self.table).values(site_key=self.site_key, **row))

    def delete(self) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as connection:
            connection.execute(sa.delete(self.table).where(self.table.c.site_key == self.site_key))

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock for this site across machines (the database's own locks); re-entrant
        within a thread."""
        return _reentrant(f"sql:{self.engine.url!r}:{self.site_key}", self._database_lock)

    @contextlib.contextmanager
    def _database_lock(self) -> Iterator[None]:
        import sqlalchemy as sa

        dialect = self.engine.dialect.name
        lock_id = zlib.crc32(f"ci-xero:{self.site_key}".encode())
        name = "ci-xero:" + hashlib.sha256(self.site_key.encode()).hexdigest()[:40]
        with self.engine.connect() as connection:
            if dialect == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
                connection.commit()
                try:
                    yield
                finally:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                    connection.commit()
            elif dialect in ("mysql", "mariadb"):
                got = connection.execute(sa.text("SELECT GET_LOCK(:n, 60)"), {"n": name}).scalar()
                if got != 1:
                    raise TokenStoreError("Timed out waiting for the Xero connection lock")
                try:
                    yield
                finally:
                    connection.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
            else:  # SQLite lives on this machine: a file lock beside the database
                database = self.engine.url.database or "ci-xero-memory"
                with _flocked(Path(database).with_name(Path(database).name + f".{lock_id}.lock")):
                    yield

