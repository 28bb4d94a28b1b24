"""All sandbox state in one SQLite file, in tables a person can read.

One connection shared by the server's threads, guarded by a lock (SQLite connections are not safe
to use from two threads at once); WAL mode so a person can read the file while the sandbox runs.
Tokens, codes and client secrets are stored only as SHA-256 digests. Documents are stored as
exact JSON (Decimal amounts) next to indexed columns for the lookups the API offers.

An account remembers whether it was ever used (`accounts.used`: named by a saved document line or a
payment), since Xero will not delete an account that was, even after the transaction is removed;
a deleted account is remembered in `deleted_accounts`, so that the seeded chart does not bring it back.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Iterator

from ..money import loads_exact
from .chart import StoredAccount
from .config import SandboxClient, SandboxOrganisation
from .seed import NZ_ACCOUNTS, NZ_TAX_RATES
from .xerojson import encode_text, now_ms

SCHEMA = """
CREATE TABLE IF NOT EXISTS organisations (
    tenant_id TEXT PRIMARY KEY, name TEXT NOT NULL, short_code TEXT NOT NULL,
    base_currency TEXT NOT NULL, period_lock_date TEXT, created_ms INTEGER NOT NULL,
    end_of_year_lock_date TEXT);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY, secret_sha256 TEXT, redirect_uris TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS auth_codes (
    code_sha256 TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, scope TEXT NOT NULL,
    code_challenge TEXT, tenant_ids TEXT NOT NULL, auth_event_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL, used_ms INTEGER);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY, client_id TEXT NOT NULL, grant_type TEXT NOT NULL, scope TEXT NOT NULL,
    auth_event_id TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked_ms INTEGER, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_sha256 TEXT PRIMARY KEY, grant_id TEXT NOT NULL, issued_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL, spent_ms INTEGER);
CREATE INDEX IF NOT EXISTS refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_sha256 TEXT PRIMARY KEY, grant_id TEXT NOT NULL, issued_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS access_tokens_grant ON access_tokens (grant_id);
CREATE TABLE IF NOT EXISTS connections (
    connection_id TEXT PRIMARY KEY, grant_id TEXT NOT NULL, client_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
    auth_event_id TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS connections_grant ON connections (grant_id);
CREATE TABLE IF NOT EXISTS accounts (
    tenant_id TEXT NOT NULL, account_id TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    class TEXT NOT NULL, tax_type TEXT NOT NULL, status TEXT NOT NULL, system_account TEXT NOT NULL,
    description TEXT NOT NULL, bank_account_number TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    enable_payments INTEGER NOT NULL DEFAULT 0, used INTEGER NOT NULL DEFAULT 0,
    show_in_expense_claims INTEGER NOT NULL DEFAULT 0, add_to_watchlist INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, code));
CREATE TABLE IF NOT EXISTS deleted_accounts (
    tenant_id TEXT NOT NULL, account_id TEXT NOT NULL, code TEXT NOT NULL, name TEXT NOT NULL,
    deleted_ms INTEGER NOT NULL, PRIMARY KEY (tenant_id, account_id));
CREATE TABLE IF NOT EXISTS tax_rates (
    tenant_id TEXT NOT NULL, tax_type TEXT NOT NULL, name TEXT NOT NULL, rate TEXT NOT NULL,
    report_tax_type TEXT NOT NULL, applies_to TEXT NOT NULL, status TEXT NOT NULL, PRIMARY KEY (tenant_id, tax_type));
CREATE TABLE IF NOT EXISTS tracking_categories (
    category_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tracking_categories_tenant ON tracking_categories (tenant_id);
CREATE TABLE IF NOT EXISTS tracking_options (
    option_id TEXT PRIMARY KEY, category_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tracking_options_category ON tracking_options (category_id);
CREATE TABLE IF NOT EXISTS contacts (
    contact_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE,
    contact_number TEXT COLLATE NOCASE, email TEXT, status TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    document TEXT NOT NULL, name_key TEXT, number_key TEXT);
CREATE INDEX IF NOT EXISTS contacts_name ON contacts (tenant_id, name);
CREATE INDEX IF NOT EXISTS contacts_number ON contacts (tenant_id, contact_number);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, number TEXT COLLATE NOCASE, type TEXT NOT NULL,
    status TEXT NOT NULL, date TEXT NOT NULL, due_date TEXT, contact_id TEXT, reference TEXT,
    total TEXT NOT NULL, updated_ms INTEGER NOT NULL, document TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS invoices_number ON invoices (tenant_id, number);
CREATE INDEX IF NOT EXISTS invoices_date ON invoices (tenant_id, date);
CREATE TABLE IF NOT EXISTS credit_notes (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, number TEXT COLLATE NOCASE, type TEXT NOT NULL,
    status TEXT NOT NULL, date TEXT NOT NULL, due_date TEXT, contact_id TEXT, reference TEXT,
    total TEXT NOT NULL, updated_ms INTEGER NOT NULL, document TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS credit_notes_number ON credit_notes (tenant_id, number);
CREATE INDEX IF NOT EXISTS credit_notes_date ON credit_notes (tenant_id, date);
CREATE TABLE IF NOT EXISTS payments (
    payment_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, collection TEXT NOT NULL, document_id TEXT NOT NULL,
    status TEXT NOT NULL, date TEXT NOT NULL, amount TEXT NOT NULL, reference TEXT COLLATE NOCASE,
    updated_ms INTEGER NOT NULL, payment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS payments_tenant ON payments (tenant_id);
CREATE INDEX IF NOT EXISTS payments_reference ON payments (tenant_id, reference);
CREATE INDEX IF NOT EXISTS payments_document ON payments (document_id);
CREATE TABLE IF NOT EXISTS allocations (
    allocation_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, credit_note_id TEXT NOT NULL, invoice_id TEXT NOT NULL,
    status TEXT NOT NULL, date TEXT NOT NULL, amount TEXT NOT NULL, updated_ms INTEGER NOT NULL, allocation TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS allocations_credit_note ON allocations (credit_note_id);
CREATE INDEX IF NOT EXISTS allocations_invoice ON allocations (invoice_id);
CREATE TABLE IF NOT EXISTS manual_journals (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, narration TEXT NOT NULL COLLATE NOCASE, status TEXT NOT NULL,
    date TEXT, updated_ms INTEGER NOT NULL, journal TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS manual_journals_narration ON manual_journals (tenant_id, narration);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant_id TEXT NOT NULL, key TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    status INTEGER NOT NULL, body BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (tenant_id, key));
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, client_id TEXT NOT NULL, method TEXT NOT NULL,
    collection TEXT NOT NULL, status INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS calls_tenant ON calls (tenant_id);
"""

DOCUMENT_TABLES = {"Invoices": "invoices", "CreditNotes": "credit_notes"}


def name_key(name: str | None) -> str:
    """A contact name as uniqueness compares it: case folded, white space collapsed (Xero: names are unique
    among active contacts; whether "ACME  Ltd" and "acme ltd" collide is not documented, and the stricter
    reading says they do)."""
    return re.sub(r"\s+", " ", (name or "").strip()).casefold()


def number_key(number: str | None) -> str:
    """A ContactNumber as uniqueness compares it: case folded (the stricter reading, as for names)."""
    return (number or "").strip().casefold()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def stable_id(*parts: str) -> str:
    """A uuid derived from its parts: seeded rows keep their ids across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "xero-sandbox:" + "/".join(parts)))


@dataclass(frozen=True)
class Organisation:
    tenant_id: str
    name: str
    short_code: str
    base_currency: str
    period_lock_date: date | None
    created_ms: int
    end_of_year_lock_date: date | None = None


class SandboxStore:
    def __init__(self, db_path: str):
        self.db_path = db_path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._depth = 0

    def _migrate(self) -> None:
        """Bring a file written by an older sandbox up to this schema (new columns only)."""
        def columns(table: str) -> set[str]:
            return {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}

        contact_columns = columns("contacts")
        for name in ("name_key", "number_key"):
            if name not in contact_columns:
                self._db.execute(f"ALTER TABLE contacts ADD COLUMN {name} TEXT")
        if not {"name_key", "number_key"} <= contact_columns:  # an older file: its contacts get their keys
            for row in self._db.execute("SELECT contact_id, document FROM contacts").fetchall():
                contact = loads_exact(row["document"])
                self._db.execute("UPDATE contacts SET name_key = ?, number_key = ? WHERE contact_id = ?",
                                 (name_key(contact.get("Name")), number_key(contact.get("ContactNumber")) or None, row["contact_id"]))
        self._db.execute("CREATE INDEX IF NOT EXISTS contacts_name_key ON contacts (tenant_id, name_key)")
        self._db.execute("CREATE INDEX IF NOT EXISTS contacts_number_key ON contacts (tenant_id, number_key)")
        if "end_of_year_lock_date" not in columns("organisations"):
            self._db.execute("ALTER TABLE organisations ADD COLUMN end_of_year_lock_date TEXT")
        if "enable_payments" not in columns("accounts"):
            self._db.execute("ALTER TABLE accounts ADD COLUMN enable_payments INTEGER NOT NULL DEFAULT 0")
            for account in NZ_ACCOUNTS:  # seeded accounts take the seed's flag
                if account.enable_payments:
                    self._db.execute("UPDATE accounts SET enable_payments = 1 WHERE code = ?", (account.code,))
        account_columns = columns("accounts")
        for name in ("show_in_expense_claims", "add_to_watchlist"):
            if name not in account_columns:
                self._db.execute(f"ALTER TABLE accounts ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
        if "show_in_expense_claims" not in account_columns:  # what the sandbox showed before it kept the flag
            self._db.execute("UPDATE accounts SET show_in_expense_claims = 1 WHERE class = 'EXPENSE'")
        if "used" not in account_columns:
            # an older file: its accounts were used if a stored document line or payment names them
            self._db.execute("ALTER TABLE accounts ADD COLUMN used INTEGER NOT NULL DEFAULT 0")
            self._db.execute(
                "UPDATE accounts SET used = 1 WHERE "
                + " OR ".join(
                    f"EXISTS (SELECT 1 FROM {table} t WHERE t.tenant_id = accounts.tenant_id "
                    f"AND instr(t.{column}, '\"AccountID\":\"' || accounts.account_id || '\"') > 0)"
                    for table, column in (("invoices", "document"), ("credit_notes", "document"), ("payments", "payment"))
                )
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing work; a nested call is a savepoint, undone alone if it raises."""
        with self._lock:
            depth = self._depth
            begin, commit, rollback = (
                ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
                if depth == 0
                else (f"SAVEPOINT sp{depth}", f"RELEASE sp{depth}", f"ROLLBACK TO sp{depth}; RELEASE sp{depth}")
            )
            self._db.execute(begin)
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                for statement in rollback.split("; "):
                    self._db.execute(statement)
                raise
            else:
                self._depth -= 1
                self._db.execute(commit)

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(parameters)).fetchall()

    def query_one(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, parameters)
        return rows[0] if rows else None

    def execute(self, sql: str, parameters: Iterable[Any] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, tuple(parameters)).rowcount

    # -- set-up ---------------------------------------------------------------------------------
    def ensure_client(self, client: SandboxClient) -> None:
        secret = digest(client.client_secret) if client.client_secret else None
        with self.transaction() as db:
            db.execute(
                "INSERT INTO clients (client_id, secret_sha256, redirect_uris) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id) DO UPDATE SET secret_sha256 = excluded.secret_sha256, "
                "redirect_uris = excluded.redirect_uris",
                (client.client_id, secret, json.dumps(list(client.redirect_uris))),
            )

    def ensure_organisation(self, organisation: SandboxOrganisation) -> str:
        """Create the organisation with its chart and tracking, or bring an existing one (same tenant id
        or name) up to date with the configuration; documents and connections are kept."""
        tenant_id = organisation.resolved_tenant_id
        lock = organisation.period_lock_date.isoformat() if organisation.period_lock_date else None
        year_lock = organisation.end_of_year_lock_date.isoformat() if organisation.end_of_year_lock_date else None
        with self.transaction() as db:
            existing = db.execute(
                "SELECT tenant_id FROM organisations WHERE tenant_id = ? OR name = ? ORDER BY tenant_id = ? DESC",
                (tenant_id, organisation.name, tenant_id),
            ).fetchone()
            if existing:
                tenant_id = existing["tenant_id"]
                db.execute(
                    "UPDATE organisations SET name = ?, short_code = ?, base_currency = ?, period_lock_date = ?, "
                    "end_of_year_lock_date = ? WHERE tenant_id = ?",
                    (organisation.name, organisation.short_code, organisation.base_currency, lock, year_lock, tenant_id),
                )
            else:
                db.execute(
                    "INSERT INTO organisations (tenant_id, name, short_code, base_currency, period_lock_date, created_ms, "
                    "end_of_year_lock_date) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tenant_id, organisation.name, organisation.short_code, organisation.base_currency, lock, now_ms(), year_lock),
                )
            stamp = now_ms()
            for account in NZ_ACCOUNTS:
                # a seeded account is added once: not again after its code or name was changed, nor after
                # it was deleted, nor over an account of its own that took its code or name since
                account_id = stable_id(tenant_id, "account", account.code)
                db.execute(
                    "INSERT OR IGNORE INTO accounts (tenant_id, account_id, code, name, type, class, tax_type, status, "
                    "system_account, description, bank_account_number, updated_ms, enable_payments, show_in_expense_claims) "
                    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS ("
                    "SELECT 1 FROM accounts WHERE tenant_id = ? AND (account_id = ? OR code = ? COLLATE NOCASE "
                    "OR name = ? COLLATE NOCASE)) AND NOT EXISTS ("
                    "SELECT 1 FROM deleted_accounts WHERE tenant_id = ? AND account_id = ?)",
                    (
                        tenant_id, account_id, account.code, account.name,
                        account.type, account.account_class, account.tax_type, account.status,
                        account.system_account, account.description, account.bank_account_number, stamp,
                        int(account.enable_payments), int(account.account_class == "EXPENSE"),
                        tenant_id, account_id, account.code, account.name, tenant_id, account_id,
                    ),
                )
            for rate in NZ_TAX_RATES:
                db.execute(
                    "INSERT OR IGNORE INTO tax_rates VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant_id, rate.tax_type, rate.name, str(rate.rate), rate.report_tax_type,
                        ",".join(sorted(rate.applies_to)), rate.status,
                    ),
                )
            for category_name, option_names in organisation.tracking_categories.items():
                row = db.execute(
                    "SELECT category_id FROM tracking_categories WHERE tenant_id = ? AND name = ? COLLATE NOCASE",
                    (tenant_id, category_name),
                ).fetchone()
                category_id = row["category_id"] if row else self.add_tracking_category(tenant_id, category_name)
                for option_name in option_names:
                    known = db.execute(
                        "SELECT 1 FROM tracking_options WHERE category_id = ? AND name = ? COLLATE NOCASE",
                        (category_id, option_name),
                    ).fetchone()
                    if not known:
                        self.add_tracking_option(category_id, option_name)
        return tenant_id

    # -- organisations, clients -------------------------------------------------------------------
    @staticmethod
    def _organisation(row: sqlite3.Row) -> Organisation:
        lock = date.fromisoformat(row["period_lock_date"]) if row["period_lock_date"] else None
        year_lock = date.fromisoformat(row["end_of_year_lock_date"]) if row["end_of_year_lock_date"] else None
        return Organisation(
            row["tenant_id"], row["name"], row["short_code"], row["base_currency"], lock, row["created_ms"], year_lock
        )

    def organisations(self) -> list[Organisation]:
        return [self._organisation(r) for r in self.query("SELECT * FROM organisations ORDER BY rowid")]

    def organisation(self, tenant_id: str) -> Organisation | None:
        row = self.query_one("SELECT * FROM organisations WHERE tenant_id = ?", (tenant_id,))
        return self._organisation(row) if row else None

    def client(self, client_id: str) -> sqlite3.Row | None:
        return self.query_one("SELECT * FROM clients WHERE client_id = ?", (client_id,))

    # -- chart ----------------------------------------------------------------------------------
    def accounts(self, tenant_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM accounts WHERE tenant_id = ? ORDER BY code", (tenant_id,))

    def tax_rates(self, tenant_id: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM tax_rates WHERE tenant_id = ? ORDER BY rowid", (tenant_id,))

    def stored_accounts(self, tenant_id: str) -> list[StoredAccount]:
        return [
            StoredAccount(
                account_id=row["account_id"], code=row["code"], name=row["name"], type=row["type"],
                account_class=row["class"], tax_type=row["tax_type"], status=row["status"],
                system_account=row["system_account"], description=row["description"],
                bank_account_number=row["bank_account_number"], enable_payments=bool(row["enable_payments"]),
                show_in_expense_claims=bool(row["show_in_expense_claims"]), add_to_watchlist=bool(row["add_to_watchlist"]),
                used=bool(row["used"]), updated_ms=row["updated_ms"],
            )
            for row in self.accounts(tenant_id)
        ]

    def insert_account(self, tenant_id: str, account: StoredAccount) -> None:
        self.execute(
            "INSERT INTO accounts (tenant_id, account_id, code, name, type, class, tax_type, status, system_account, "
            "description, bank_account_number, updated_ms, enable_payments, used, show_in_expense_claims, add_to_watchlist) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                tenant_id, account.account_id, account.code, account.name, account.type, account.account_class,
                account.tax_type, account.status, account.system_account, account.description,
                account.bank_account_number, now_ms(), int(account.enable_payments),
                int(account.show_in_expense_claims), int(account.add_to_watchlist),
            ),
        )

    def update_account(self, tenant_id: str, account: StoredAccount, previous_code: str) -> None:
        """Save a changed account. A new code reaches the lines of stored documents that use the account
        (by AccountID), as Xero shows a document's lines with the account's code of the moment."""
        with self.transaction() as db:
            db.execute(
                "UPDATE accounts SET code = ?, name = ?, type = ?, class = ?, tax_type = ?, status = ?, description = ?, "
                "bank_account_number = ?, enable_payments = ?, show_in_expense_claims = ?, add_to_watchlist = ?, "
                "updated_ms = ? WHERE tenant_id = ? AND account_id = ?",
                (
                    account.code, account.name, account.type, account.account_class, account.tax_type, account.status,
                    account.description, account.bank_account_number, int(account.enable_payments),
                    int(account.show_in_expense_claims), int(account.add_to_watchlist), now_ms(),
                    tenant_id, account.account_id,
                ),
            )
            if account.code != previous_code:
                self._recode_lines(tenant_id, account.account_id, account.code)

    def _recode_lines(self, tenant_id: str, account_id: str, code: str) -> None:
        needle = f'"AccountID":"{account_id}"'
        for collection, table in DOCUMENT_TABLES.items():
            rows = self._db.execute(
                f"SELECT document FROM {table} WHERE tenant_id = ? AND instr(document, ?) > 0", (tenant_id, needle)
            ).fetchall()
            for row in rows:
                document = loads_exact(row["document"])
                for line in document.get("LineItems", []):
                    if line.get("AccountID") == account_id:
                        line["AccountCode"] = code
                self.save_document(collection, tenant_id, document)
        for row in self._db.execute(
            "SELECT journal FROM manual_journals WHERE tenant_id = ? AND instr(journal, ?) > 0", (tenant_id, needle)
        ).fetchall():
            journal = loads_exact(row["journal"])
            for line in journal.get("JournalLines", []):
                if line.get("AccountID") == account_id:
                    line["AccountCode"] = code
            self.save_journal(tenant_id, journal)

    def delete_account(self, tenant_id: str, account: StoredAccount) -> None:
        """Remove an unused account; its code and name are free again, and it is never seeded back."""
        with self.transaction() as db:
            db.execute("DELETE FROM accounts WHERE tenant_id = ? AND account_id = ?", (tenant_id, account.account_id))
            db.execute(
                "INSERT OR REPLACE INTO deleted_accounts VALUES (?, ?, ?, ?, ?)",
                (tenant_id, account.account_id, account.code, account.name, now_ms()),
            )

    def _mark_used(self, tenant_id: str, account_ids: set[str]) -> None:
        wanted = sorted(a for a in account_ids if a)
        if wanted:
            self.execute(
                f"UPDATE accounts SET used = 1 WHERE tenant_id = ? AND used = 0 AND account_id IN ({','.join('?' * len(wanted))})",
                [tenant_id, *wanted],
            )

    # -- tracking -------------------------------------------------------------------------------
    def tracking_categories(self, tenant_id: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT * FROM tracking_categories WHERE tenant_id = ? AND status != 'DELETED' ORDER BY name",
            (tenant_id,),
        )

    def tracking_options(self, category_ids: list[str]) -> dict[str, list[sqlite3.Row]]:
        found: dict[str, list[sqlite3.Row]] = {category_id: [] for category_id in category_ids}
        if category_ids:
            marks = ",".join("?" * len(category_ids))
            for row in self.query(
                f"SELECT * FROM tracking_options WHERE category_id IN ({marks}) AND status != 'DELETED' ORDER BY name",
                category_ids,
            ):
                found[row["category_id"]].append(row)
        return found

    def add_tracking_category(self, tenant_id: str, name: str) -> str:
        category_id = str(uuid.uuid4())
        self.execute("INSERT INTO tracking_categories VALUES (?, ?, ?, 'ACTIVE')", (category_id, tenant_id, name))
        return category_id

    def add_tracking_option(self, category_id: str, name: str) -> str:
        option_id = str(uuid.uuid4())
        self.execute("INSERT INTO tracking_options VALUES (?, ?, ?, 'ACTIVE')", (option_id, category_id, name))
        return option_id

    # -- contacts -------------------------------------------------------------------------------
    def contact_by_id(self, tenant_id: str, contact_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT document FROM contacts WHERE tenant_id = ? AND contact_id = ?", (tenant_id, contact_id))
        return loads_exact(row["document"]) if row else None

    def active_contact_by(self, tenant_id: str, column: str, value: str) -> dict[str, Any] | None:
        assert column in ("name", "contact_number", "name_key", "number_key")
        row = self.query_one(
            f"SELECT document FROM contacts WHERE tenant_id = ? AND {column} = ? AND status = 'ACTIVE' ORDER BY rowid",
            (tenant_id, value),
        )
        return loads_exact(row["document"]) if row else None

    def contacts_keyed(self, tenant_id: str, column: str, key: str, active_only: bool) -> list[dict[str, Any]]:
        """Contacts whose `name_key` or `number_key` is `key` (see name_key, number_key), oldest first."""
        assert column in ("name_key", "number_key")
        sql = f"SELECT document FROM contacts WHERE tenant_id = ? AND {column} = ?"
        if active_only:
            sql += " AND status = 'ACTIVE'"
        return [loads_exact(row["document"]) for row in self.query(sql + " ORDER BY rowid", (tenant_id, key))]

    def contacts_by_ids(self, tenant_id: str, contact_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(contact_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.query(
                f"SELECT contact_id, document FROM contacts WHERE tenant_id = ? AND contact_id IN ({marks})",
                [tenant_id, *chunk],
            ):
                found[row["contact_id"]] = loads_exact(row["document"])
        return found

    def all_contacts(self, tenant_id: str) -> list[dict[str, Any]]:
        return [loads_exact(r["document"]) for r in self.query("SELECT document FROM contacts WHERE tenant_id = ? ORDER BY rowid", (tenant_id,))]

    def save_contact(self, tenant_id: str, contact: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO contacts (contact_id, tenant_id, name, contact_number, email, status, updated_ms, document, "
            "name_key, number_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (contact_id) DO UPDATE SET "
            "name = excluded.name, contact_number = excluded.contact_number, email = excluded.email, "
            "status = excluded.status, updated_ms = excluded.updated_ms, document = excluded.document, "
            "name_key = excluded.name_key, number_key = excluded.number_key",
            (
                contact["ContactID"], tenant_id, contact["Name"], contact.get("ContactNumber"),
                contact.get("EmailAddress"), contact.get("ContactStatus", "ACTIVE"), contact["UpdatedDateUTC"],
                encode_text(contact), name_key(contact["Name"]), number_key(contact.get("ContactNumber")) or None,
            ),
        )

    # -- invoices and credit notes ----------------------------------------------------------------
    def document_rows(
        self,
        collection: str,
        tenant_id: str,
        *,
        ids: list[str] | None = None,
        numbers: Iterable[str] | None = None,
        statuses: list[str] | None = None,
        contact_ids: list[str] | None = None,
        modified_since_ms: int | None = None,
    ) -> list[sqlite3.Row]:
        """Rows (columns and stored JSON) in the order they were created, filtered by the indexed columns."""
        table = DOCUMENT_TABLES[collection]
        sql = f"SELECT * FROM {table} WHERE tenant_id = ?"
        parameters: list[Any] = [tenant_id]
        for column, values in (("id", ids), ("number", numbers), ("status", statuses), ("contact_id", contact_ids)):
            if values is not None:
                values = list(values)
                if not values:
                    return []
                sql += f" AND {column} IN ({','.join('?' * len(values))})"
                parameters += values
        if modified_since_ms is not None:
            sql += " AND updated_ms > ?"
            parameters.append(modified_since_ms)
        return self.query(sql + " ORDER BY rowid", parameters)

    def documents_by_number(self, collection: str, tenant_id: str, numbers: Iterable[str]) -> list[dict[str, Any]]:
        wanted = sorted({n for n in numbers if n})
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 500):
            for row in self.document_rows(collection, tenant_id, numbers=wanted[start : start + 500]):
                found.append(loads_exact(row["document"]))
        return found

    def document_in_any_organisation(self, document_id: str) -> tuple[str, str, dict[str, Any]] | None:
        """(collection, tenant id, document) of an invoice or credit note, whichever organisation holds it."""
        for collection, table in DOCUMENT_TABLES.items():
            row = self.query_one(f"SELECT tenant_id, document FROM {table} WHERE id = ?", (document_id,))
            if row is not None:
                return collection, row["tenant_id"], loads_exact(row["document"])
        return None

    def document(self, collection: str, tenant_id: str, document_id: str) -> dict[str, Any] | None:
        rows = self.document_rows(collection, tenant_id, ids=[document_id])
        return loads_exact(rows[0]["document"]) if rows else None

    def count_documents(self, collection: str, tenant_id: str) -> int:
        table = DOCUMENT_TABLES[collection]
        return self.query_one(f"SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = ?", (tenant_id,))["n"]

    def save_document(self, collection: str, tenant_id: str, document: dict[str, Any]) -> None:
        table = DOCUMENT_TABLES[collection]
        id_field, number_field = (
            ("InvoiceID", "InvoiceNumber") if collection == "Invoices" else ("CreditNoteID", "CreditNoteNumber")
        )
        self.execute(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "number = excluded.number, type = excluded.type, status = excluded.status, date = excluded.date, "
            "due_date = excluded.due_date, contact_id = excluded.contact_id, reference = excluded.reference, "
            "total = excluded.total, updated_ms = excluded.updated_ms, document = excluded.document",
            (
                document[id_field], tenant_id, document.get(number_field), document["Type"], document["Status"],
                document["Date"], document.get("DueDate"), document.get("ContactID"), document.get("Reference"),
                str(document["Total"]), document["UpdatedDateUTC"], encode_text(document),
            ),
        )
        self._mark_used(tenant_id, {line.get("AccountID") or "" for line in document.get("LineItems", [])})

    # -- payments -------------------------------------------------------------------------------
    def payment_rows(
        self, tenant_id: str, *, ids: list[str] | None = None, references: Iterable[str] | None = None
    ) -> list[sqlite3.Row]:
        """Payments in the order they were made, filtered by id or (case-insensitive) Reference."""
        sql = "SELECT * FROM payments WHERE tenant_id = ?"
        parameters: list[Any] = [tenant_id]
        for column, values in (("payment_id", ids), ("reference", references)):
            if values is not None:
                values = list(values)
                if not values:
                    return []
                sql += f" AND {column} IN ({','.join('?' * len(values))})"
                parameters += values
        return self.query(sql + " ORDER BY rowid", parameters)

    def payment(self, tenant_id: str, payment_id: str) -> dict[str, Any] | None:
        rows = self.payment_rows(tenant_id, ids=[payment_id])
        return loads_exact(rows[0]["payment"]) if rows else None

    def save_payment(self, tenant_id: str, payment: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (payment_id) DO UPDATE SET "
            "status = excluded.status, updated_ms = excluded.updated_ms, payment = excluded.payment",
            (
                payment["PaymentID"], tenant_id, payment["Collection"], payment["DocumentID"], payment["Status"],
                payment["Date"], str(payment["Amount"]), payment.get("Reference") or "", payment["UpdatedDateUTC"],
                encode_text(payment),
            ),
        )
        self._mark_used(tenant_id, {payment.get("AccountID") or ""})

    def documents_by_ids(self, collection: str, tenant_id: str, document_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(document_ids))
        id_field = "InvoiceID" if collection == "Invoices" else "CreditNoteID"
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 500):
            for row in self.document_rows(collection, tenant_id, ids=wanted[start : start + 500]):
                document = loads_exact(row["document"])
                found[document[id_field]] = document
        return found

    # -- manual journals --------------------------------------------------------------------------
    def journal_rows(self, tenant_id: str, *, narrations: Iterable[str] | None = None) -> list[sqlite3.Row]:
        """Journals in the order they were made, or those whose Narration is one of `narrations`
        (case-insensitively, as Xero's where compares strings)."""
        sql, parameters = "SELECT * FROM manual_journals WHERE tenant_id = ?", [tenant_id]
        if narrations is not None:
            wanted = list(narrations)
            if not wanted:
                return []
            sql += f" AND narration IN ({','.join('?' * len(wanted))})"
            parameters += wanted
        return self.query(sql + " ORDER BY rowid", parameters)

    def journal(self, tenant_id: str, journal_id: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT journal FROM manual_journals WHERE tenant_id = ? AND id = ?", (tenant_id, journal_id))
        return loads_exact(row["journal"]) if row else None

    def save_journal(self, tenant_id: str, journal: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO manual_journals VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "narration = excluded.narration, status = excluded.status, date = excluded.date, "
            "updated_ms = excluded.updated_ms, journal = excluded.journal",
            (journal["ManualJournalID"], tenant_id, journal["Narration"], journal["Status"], journal.get("Date"),
             journal["UpdatedDateUTC"], encode_text(journal)),
        )
        self._mark_used(tenant_id, {line.get("AccountID") or "" for line in journal.get("JournalLines", [])})

    # -- credit note allocations ------------------------------------------------------------------
    def save_allocation(self, tenant_id: str, allocation: dict[str, Any]) -> None:
        """An allocation row (its documents carry it too, in their `_allocations`); a deleted one is kept,
        marked DELETED, so a person reading the file sees what was undone."""
        self.execute(
            "INSERT INTO allocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (allocation_id) DO UPDATE SET "
            "status = excluded.status, updated_ms = excluded.updated_ms, allocation = excluded.allocation",
            (
                allocation["AllocationID"], tenant_id, allocation["CreditNoteID"], allocation["InvoiceID"],
                allocation["Status"], allocation["Date"], str(allocation["Amount"]), allocation["UpdatedDateUTC"],
                encode_text(allocation),
            ),
        )

    def allocation_rows(self, tenant_id: str, credit_note_id: str | None = None) -> list[sqlite3.Row]:
        """Allocations in the order they were made (deleted ones included), of one credit note or all."""
        sql, parameters = "SELECT * FROM allocations WHERE tenant_id = ?", [tenant_id]
        if credit_note_id is not None:
            sql += " AND credit_note_id = ?"
            parameters.append(credit_note_id)
        return self.query(sql + " ORDER BY rowid", parameters)

    # -- idempotency ----------------------------------------------------------------------------
    def remembered_answer(self, tenant_id: str, key: str, since_ms: int) -> tuple[int, bytes] | None:
        row = self.query_one(
            "SELECT status, body FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND created_ms >= ?",
            (tenant_id, key, since_ms),
        )
        return (row["status"], bytes(row["body"])) if row else None

    def remember_answer(self, tenant_id: str, key: str, method: str, path: str, status: int, body: bytes) -> None:
        self.execute(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, key) DO UPDATE SET "
            "method = excluded.method, path = excluded.path, status = excluded.status, body = excluded.body, "
            "created_ms = excluded.created_ms",
            (tenant_id, key, method, path, status, body, now_ms()),
        )

    # -- calls ----------------------------------------------------------------------------------
    def record_call(self, tenant_id: str, client_id: str, method: str, collection: str, status: int) -> None:
        self.execute(
            "INSERT INTO calls (tenant_id, client_id, method, collection, status, at_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (tenant_id, client_id, method, collection, status, now_ms()),
        )

    def call_counts(self, tenant_id: str) -> dict[tuple[str, str], int]:
        """Accounting API calls made for an organisation (every answer, 4xx and 429 included),
        by (method, collection), e.g. {("PUT", "Invoices"): 1}."""
        rows = self.query(
            "SELECT method, collection, COUNT(*) AS n FROM calls WHERE tenant_id = ? GROUP BY method, collection",
            (tenant_id,),
        )
        return {(row["method"], row["collection"]): row["n"] for row in rows}

