"""The posting ledger: what we intended to send to Xero, and what became of it, per document key.

Written BEFORE a document is sent (state `intended`), so a crash, a timeout or a dropped connection
leaves a trace: an `intended` row at the start of the next attempt means "outcome unknown", and the
document is looked up in Xero before anything is sent again. Lives in the site's state database
(SQLite by default, PostgreSQL for hosted deployments) through SQLAlchemy.

A row is keyed by (site, organisation, document key): several CI sites may post to one organisation or
share one state database without ever taking each other's documents for their own. Each row keeps the
source keys (the CI documents the Xero document was made from), so a later run can tell a document
CI withdrew from one CI merely did not return, and the hash of the document's accounting content, so
a change of wording is never taken for a change of the books.

Several processes share the table (E-Retailer documents, takings documents, their payments). A ledger
given a `process` sees, per partition, only that process's rows (keys `<process>/…`): a process never
takes another's documents of the same day for its own withdrawn ones, and documents never see payment
rows (keys `<process>-payment/…`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from ..money import decimal_to_cents, dumps_exact

INTENDED, POSTED, FAILED, WITHDRAWN = "intended", "posted", "failed", "withdrawn"
PAYMENTS_ENDPOINT = "Payments"  # rows of payments (xero/payments.py) share the table with documents

# Bump when accounting_content changes what it looks at: rows hashed under another version are then
# compared with what Xero holds instead of being taken as changed (a code upgrade never rewrites books).
CONTENT_VERSION = "c1"

_metadata = sa.MetaData()
LEDGER = sa.Table(
    "xero_posting_ledger",
    _metadata,
    sa.Column("site", sa.String(100), primary_key=True),
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("document_key", sa.String(200), primary_key=True),
    sa.Column("endpoint", sa.String(20), nullable=False),
    sa.Column("number", sa.String(255), nullable=False),  # the number of the current revision
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("content_hash", sa.String(80), nullable=False),
    sa.Column("xero_id", sa.String(64)),
    sa.Column("xero_status", sa.String(20)),
    sa.Column("total_cents", sa.BigInteger, nullable=False),
    sa.Column("tax_cents", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Column("partition_key", sa.String(10), nullable=False),
    sa.Column("source_keys", sa.Text),  # JSON list of the CI documents behind this Xero document
    sa.Column("updated_at", sa.Float, nullable=False),  # epoch seconds (a timestamp, not money)
)
sa.Index("xero_posting_ledger_by_partition", LEDGER.c.site, LEDGER.c.tenant_id, LEDGER.c.partition_key)


def _tracking(line: dict[str, Any]) -> list[tuple[str, str]]:
    # Xero may answer an option in another case than it was sent: case is not accounting content
    return sorted(
        (str(entry.get("Name", "")).casefold(), str(entry.get("Option", "")).casefold())
        for entry in (line.get("Tracking") or [])
    )


def _cents(value: Any) -> int:
    return decimal_to_cents(value if isinstance(value, Decimal) else Decimal(str(value if value is not None else 0)))


def accounting_content(payload: dict[str, Any]) -> dict[str, Any]:
    """What the books see of a document: type, date, currency, contact identity, amount basis, and
    per line the account, tax type, amount, tax and tracking (lines in any order). Not descriptions,
    references, due dates, quantities or prices shown, nor the Xero status a site asks for (a status
    setting applies to documents posted from then on; it is not CI's evidence of a change)."""
    contact = payload.get("Contact") or {}
    lines = sorted(
        (
            str(line.get("AccountCode", "")), str(line.get("TaxType", "")),
            _cents(line.get("LineAmount")), _cents(line.get("TaxAmount")), _tracking(line),
        )
        for line in payload.get("LineItems") or payload.get("JournalLines") or []  # a manual journal's lines
    )
    return {
        "version": CONTENT_VERSION,
        "type": payload.get("Type"),
        "date": payload.get("Date"),
        "currency": payload.get("CurrencyCode"),
        "basis": payload.get("LineAmountTypes"),
        "contact": contact.get("ContactNumber") or contact.get("ContactID") or contact.get("Name"),
        "lines": lines,
    }


def content_hash(payload: dict[str, Any]) -> str:
    digest = hashlib.sha256(dumps_exact(accounting_content(payload)).encode()).hexdigest()
    return f"{CONTENT_VERSION}:{digest}"


def hash_is_current(stored: str) -> bool:
    return stored.startswith(f"{CONTENT_VERSION}:")


@dataclass(frozen=True)
class LedgerEntry:
    document_key: str
    endpoint: str
    number: str
    revision: int
    state: str
    content_hash: str
    xero_id: str | None
    xero_status: str | None
    total_cents: int
    tax_cents: int
    attempts: int
    last_error: str | None
    run_id: str | None
    partition_key: str
    source_keys: tuple[str, ...] | None  # None: a row written before source keys were kept


@dataclass(frozen=True)
class Intent:
    document_key: str
    endpoint: str
    number: str
    revision: int
    content_hash: str
    total_cents: int
    tax_cents: int
    partition_key: str
    source_keys: tuple[str, ...]


def _entry(row: Any) -> LedgerEntry:
    values = {name: row[name] for name in LedgerEntry.__dataclass_fields__}
    values["source_keys"] = tuple(json.loads(row["source_keys"])) if row["source_keys"] is not None else None
    return LedgerEntry(**values)


class PostingLedger:
    """One site's rows for one organisation. Every write commits at once: the row must outlive a SIGKILL."""

    def __init__(
        self, engine: sa.Engine, tenant_id: str, run_id: str | None = None, site: str = "default", process: str | None = None,
    ):
        self.engine = engine
        self.site = site
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.process = process
        _metadata.create_all(engine, checkfirst=True)

    def __repr__(self) -> str:
        process = f", process={self.process!r}" if self.process is not None else ""
        return (f"PostingLedger(site={self.site!r}, tenant_id={self.tenant_id!r}{process}, "
                f"dialect={self.engine.dialect.name!r})")

    def _where(self, keys: Iterable[str] | None = None):
        condition = (LEDGER.c.site == self.site) & (LEDGER.c.tenant_id == self.tenant_id)
        if keys is not None:
            condition = condition & LEDGER.c.document_key.in_(list(keys))
        return condition

    def _in_scope(self):
        """The rows a partition read sees: this process's own. Without a process, every document row as
        before; payment rows (which came after) never, so an unscoped document ledger cannot take a
        day's payments for documents CI no longer returned."""
        if self.process is None:
            return LEDGER.c.endpoint != PAYMENTS_ENDPOINT
        return LEDGER.c.document_key.startswith(f"{self.process}/", autoescape=True)

    def _owns(self, key: str) -> bool:
        # SQLite's LIKE ignores case: the prefix is checked again, exactly
        return self.process is None or key.startswith(f"{self.process}/")

    def entries(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), 500):
                rows = connection.execute(sa.select(LEDGER).where(self._where(keys[start : start + 500])))
                for row in rows.mappings():
                    entry = _entry(row)
                    found[entry.document_key] = entry
        return found

    def entries_for_partitions(self, partitions: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        partitions = list(partitions)
        with self.engine.connect() as connection:
            for start in range(0, len(partitions), 500):
                rows = connection.execute(
                    sa.select(LEDGER).where(
                        self._where() & self._in_scope() & LEDGER.c.partition_key.in_(partitions[start : start + 500])
                    )
                ).mappings()
                for row in rows:
                    if self._owns(row["document_key"]):
                        found[row["document_key"]] = _entry(row)
        return found

    def posted_partitions(self) -> list[str]:
        """The days for which this site (this process, when set) holds documents in Xero (posted, or
        possibly posted)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(LEDGER.c.partition_key, LEDGER.c.document_key)
                .where(self._where() & self._in_scope() & LEDGER.c.state.in_([POSTED, INTENDED]))
            )
            return sorted({row[0] for row in rows if self._owns(row[1])})

    @staticmethod
    def _intent_values(intent: Intent) -> dict[str, Any]:
        return dict(
            endpoint=intent.endpoint, number=intent.number, revision=intent.revision,
            content_hash=intent.content_hash, total_cents=intent.total_cents, tax_cents=intent.tax_cents,
            partition_key=intent.partition_key, source_keys=json.dumps(list(intent.source_keys)),
        )

    def intend(self, intents: Sequence[Intent]) -> None:
        """Record that these documents are about to be sent (one more attempt each)."""
        if not intents:
            return
        now = time.time()
        existing = self.entries([i.document_key for i in intents])
        with self.engine.begin() as connection:
            for intent in intents:
                values = dict(self._intent_values(intent), state=INTENDED, run_id=self.run_id, updated_at=now, last_error=None)
                if intent.document_key not in existing:
                    connection.execute(sa.insert(LEDGER).values(
                        site=self.site, tenant_id=self.tenant_id, document_key=intent.document_key, attempts=1, **values
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

    def posted_many(self, rows: Sequence[tuple[str, str | None, str | None]]) -> None:
        self._set_many([(key, dict(state=POSTED, xero_id=xid, xero_status=status, last_error=None)) for key, xid, status in rows])

    def failed_many(self, rows: Sequence[tuple[str, str]]) -> None:
        """Xero refused these (or holds another document under their number): not in Xero as ours."""
        self._set_many([(key, dict(state=FAILED, last_error=error)) for key, error in rows])

    def unknown_many(self, keys: Sequence[str], error: str) -> None:
        """The attempt's outcome is unknown: stay `intended` (looked up first next time), note why."""
        self._set_many([(key, dict(state=INTENDED, last_error=error)) for key in keys])

    def record_posted(self, intent: Intent, xero_id: str | None, xero_status: str | None) -> None:
        """Xero holds this version of the document (found by a lookup, or updated in place)."""
        values = dict(self._intent_values(intent), state=POSTED, xero_id=xero_id, xero_status=xero_status, last_error=None)
        if self.entries([intent.document_key]):
            self._set(intent.document_key, **values)
            return
        with self.engine.begin() as connection:
            connection.execute(sa.insert(LEDGER).values(
                site=self.site, tenant_id=self.tenant_id, document_key=intent.document_key, attempts=0,
                run_id=self.run_id, updated_at=time.time(), **values,
            ))

    def rehash(self, key: str, content_hash: str, source_keys: Sequence[str]) -> None:
        """A row hashed under an older content version, found equal to CI's document in Xero."""
        self._set(key, content_hash=content_hash, source_keys=json.dumps(list(source_keys)))

    def withdrawn(self, key: str, xero_status: str | None) -> None:
        self._set(key, state=WITHDRAWN, xero_status=xero_status, last_error=None)

    def _set(self, key: str, **values: Any) -> None:
        self._set_many([(key, values)])
