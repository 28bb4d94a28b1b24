"""The posting ledger: what we intended to send to Xero, and what became of it, per document key.

Written BEFORE a document is sent (state `intended`), so a crash, a timeout or a dropped connection
leaves a trace: an `intended` row at the start of the next attempt means "outcome unknown", and the
document is looked up in Xero before anything is sent again. Lives in the site's state database
(SQLite by default, PostgreSQL for hosted deployments) through SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from ..money import dumps_exact

INTENDED, POSTED, FAILED, WITHDRAWN = "intended", "posted", "failed", "withdrawn"

_metadata = sa.MetaData()
LEDGER = sa.Table(
    "posting_ledger",
    _metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("document_key", sa.String(200), primary_key=True),
    sa.Column("endpoint", sa.String(20), nullable=False),
    sa.Column("number", sa.String(255), nullable=False),  # the number of the current revision
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("xero_id", sa.String(64)),
    sa.Column("xero_status", sa.String(20)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("tax_cents", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Column("partition_key", sa.String(10), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),  # epoch seconds (a timestamp, not money)
)
sa.Index("posting_ledger_by_partition", LEDGER.c.tenant_id, LEDGER.c.partition_key)


def payload_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(dumps_exact(payload).encode()).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    document_key: str
    endpoint: str
    number: str
    revision: int
    state: str
    payload_hash: str
    xero_id: str | None
    xero_status: str | None
    total_cents: int
    tax_cents: int
    attempts: int
    last_error: str | None
    run_id: str | None
    partition_key: str


@dataclass(frozen=True)
class Intent:
    document_key: str
    endpoint: str
    number: str
    revision: int
    payload_hash: str
    total_cents: int
    tax_cents: int
    partition_key: str


class PostingLedger:
    """One organisation's ledger rows. Every write commits at once: the row must outlive a SIGKILL."""

    def __init__(self, engine: sa.Engine, tenant_id: str, run_id: str | None = None):
        self.engine = engine
        self.tenant_id = tenant_id
        self.run_id = run_id
        _metadata.create_all(engine, checkfirst=True)

    def __repr__(self) -> str:
        return f"PostingLedger(tenant_id={self.tenant_id!r}, dialect={self.engine.dialect.name!r})"

    def _where(self, keys: Iterable[str] | None = None):
        condition = LEDGER.c.tenant_id == self.tenant_id
        if keys is not None:
            condition = condition & LEDGER.c.document_key.in_(list(keys))
        return condition

    def entries(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), 500):
                rows = connection.execute(sa.select(LEDGER).where(self._where(keys[start : start + 500])))
                for row in rows.mappings():
                    entry = LedgerEntry(**{k: row[k] for k in LedgerEntry.__dataclass_fields__})
                    found[entry.document_key] = entry
        return found

    def entries_for_partitions(self, partitions: Sequence[str]) -> dict[str, LedgerEntry]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(LEDGER).where(self._where() & LEDGER.c.partition_key.in_(list(partitions)))
            ).mappings().all()
        return {row["document_key"]: LedgerEntry(**{k: row[k] for k in LedgerEntry.__dataclass_fields__}) for row in rows}

    def intend(self, intents: Sequence[Intent]) -> None:
        """Record that these documents are about to be sent (one more attempt each)."""
        if not intents:
            return
        now = time.time()
        existing = self.entries([i.document_key for i in intents])
        with self.engine.begin() as connection:
            for intent in intents:
                values = dict(
                    endpoint=intent.endpoint, number=intent.number, revision=intent.revision, state=INTENDED,
                    payload_hash=intent.payload_hash, total_cents=intent.total_cents, tax_cents=intent.tax_cents,
                    partition_key=intent.partition_key, run_id=self.run_id, updated_at=now, last_error=None,
                )
                before = existing.get(intent.document_key)
                if before is None:
                    connection.execute(sa.insert(LEDGER).values(
                        tenant_id=self.tenant_id, document_key=intent.document_key, attempts=1, **values
                    ))
                else:
                    connection.execute(
                        sa.update(LEDGER).where(self._where([intent.document_key]))
                        .values(attempts=LEDGER.c.attempts + 1, **values)
                    )

    def _set_many(self, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several rows in one transaction (one commit per batch of documents, not per document)."""
        if not updates:
            return
        now = time.time()
        with self.engine.begin() as connection:
            for key, values in updates:
                connection.execute(
                    sa.update(LEDGER).where(self._where([key])).values(updated_at=now, run_id=self.run_id, **values)
                )

    def _set(self, key: str, **values: Any) -> None:
        self._set_many([(key, values)])

    def posted(self, key: str, xero_id: str | None, xero_status: str | None) -> None:
        self.posted_many([(key, xero_id, xero_status)])

    def posted_many(self, rows: Sequence[tuple[str, str | None, str | None]]) -> None:
        self._set_many([(key, dict(state=POSTED, xero_id=xid, xero_status=status, last_error=None)) for key, xid, status in rows])

    def failed_many(self, rows: Sequence[tuple[str, str]]) -> None:
        self._set_many([(key, dict(state=FAILED, last_error=error)) for key, error in rows])

    def unknown_many(self, keys: Sequence[str], error: str) -> None:
        """The attempt's outcome is unknown: stay `intended` (looked up first next time), note why."""
        self._set_many([(key, dict(state=INTENDED, last_error=error)) for key in keys])

    def adopt(self, intent: Intent, xero_id: str | None, xero_status: str | None) -> None:
        """A document found in Xero that the ledger did not know as posted (an earlier, unknown outcome)."""
        if self.entries([intent.document_key]):
            self._set(intent.document_key, state=POSTED, xero_id=xero_id, xero_status=xero_status, last_error=None,
                      number=intent.number, revision=intent.revision, payload_hash=intent.payload_hash,
                      total_cents=intent.total_cents, tax_cents=intent.tax_cents)
            return
        with self.engine.begin() as connection:
            connection.execute(sa.insert(LEDGER).values(
                tenant_id=self.tenant_id, document_key=intent.document_key, endpoint=intent.endpoint,
                number=intent.number, revision=intent.revision, state=POSTED, payload_hash=intent.payload_hash,
                xero_id=xero_id, xero_status=xero_status, total_cents=intent.total_cents,
                tax_cents=intent.tax_cents, attempts=0, partition_key=intent.partition_key,
                run_id=self.run_id, updated_at=time.time(),
            ))

    def failed(self, key: str, error: str) -> None:
        self.failed_many([(key, error)])

    def forget(self, keys: Sequence[str]) -> None:
        """Drop intents that never became ours: Xero holds another document under their number."""
        if keys:
            with self.engine.begin() as connection:
                connection.execute(sa.delete(LEDGER).where(*self._where(keys)))

    def withdrawn(self, key: str, xero_status: str | None) -> None:
        self._set(key, state=WITHDRAWN, xero_status=xero_status, last_error=None)
