"""Where the OAuth 2.0 connection lives between runs: one file per site, readable only by its owner.

Xero rotates refresh tokens: every refresh spends the old one. The new token is therefore written
(atomically, before it is used) the moment it arrives; a crash after that loses nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class NotConnectedError(RuntimeError):
    """No usable Xero connection; the message says which command makes one."""


@dataclass
class StoredConnection:
    token: dict[str, Any]
    tenant_id: str
    tenant_name: str = ""
    connected_at: float = field(default_factory=time.time)
    refreshed_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:  # never show token values, even in a debugger or traceback
        return f"StoredConnection(tenant_name={self.tenant_name!r}, tenant_id={self.tenant_id!r})"


class FileTokenStore:
    """The connection as a JSON file with mode 0600, replaced atomically on every save."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def load(self) -> StoredConnection | None:
        if not self.path.is_file():
            return None
        data = json.loads(self.path.read_text())
        return StoredConnection(**data)

    def require(self) -> StoredConnection:
        connection = self.load()
        if connection is None:
            raise NotConnectedError(
                f"No Xero connection is stored at {self.path}. Connect first: `ci-xero connect`."
            )
        return connection

    def save(self, connection: StoredConnection) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".token-")
        try:
            os.fchmod(handle, 0o600)
            with os.fdopen(handle, "w") as stream:
                json.dump(connection.__dict__, stream)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def save_token(self, token: dict[str, Any]) -> None:
        """Keep the tenant, replace the token: the callback for a refresh."""
        connection = self.require()
        connection.token = dict(token)
        connection.refreshed_at = time.time()
        self.save(connection)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
