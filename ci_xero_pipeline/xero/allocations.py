"""Allocating credit notes to the invoices they reverse, exactly once, and checking what each credit holds.

Pure Xero: knows a frame of wanted allocations (a credit note in Xero, the number of the invoice it reverses),
never CI or Dagster. After a process's documents are posted:

    results = allocate_credits(client, allocation_ledger(document_ledger, process), wanted, locked_until)
    differences = allocation_differences(client, results)  # the reconciliation: credits that do not add up

Rules:
- A pair's key is `<credit number>><invoice number>`; its ledger row `<process>-allocation/<key>` (amount =
  the amount allocated, partition = the credit's day, source key = the credit's document key).
- Each pair is judged on the documents as Xero holds them now: the credit note read by id
  (GET /CreditNotes/{id}, one call per credit), the invoice by number (GET /Invoices?InvoiceNumbers=…, 50 to
  a call). A pair the ledger holds as allocated (same credit, same invoice number) is not read again.
- Nothing is forced: an invoice not in Xero yet (a later day, another process, quarantined) or not approved,
  or a credit not approved, is `waiting` (a later run allocates it); a credit with nothing remaining or an
  invoice with nothing due is `nothing_to_allocate`, with why; an allocation dated on or before the lock date
  is `locked`. Amount = min(the credit's RemainingCredit, the invoice's AmountDue); Date = the later of the two
  documents' dates.
- Exactly once: a credit that already holds an allocation to the invoice (by InvoiceID) is
  `already_allocated`, whoever made it. The pair is recorded `intended` (with its amount) before the PUT
  (with an Idempotency-Key); an answer lost is settled by reading the credit again and looking for the
  allocation to that invoice, and only a credit that does not hold it is sent again, for a bounded number of
  rounds. No second allocation is ever sent for one pair.

Outcomes: allocated, already_allocated (Xero holds it); waiting, nothing_to_allocate, locked (reported:
a later run or a person acts); failed (Xero refused: its words), unknown (the answer and the lookup were
lost: the next run reads the credit before sending), deferred (Xero's daily limit: the next run resumes).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable

import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents, dumps_exact
from .client import XeroApiError, XeroClient, XeroOutcomeUnknown, batch_idempotency_key, parse_xero_date
from .ledger import CONTENT_VERSION, INTENDED, POSTED, Intent, LedgerEntry, PostingLedger
from .oauth import ReconnectRequired
from .pacing import DailyLimitReached
from .posting import CALL_ERRORS, GONE

WANTED_ALLOCATION_COLUMNS = [
    "allocation_key", "business_date", "credit_document_key", "credit_number", "credit_id", "invoice_number",
    "ci_credit_no", "ci_invoice_no",
]
ALLOCATION_RESULT_COLUMNS = WANTED_ALLOCATION_COLUMNS + [
    "invoice_id", "outcome", "allocation_date", "amount_cents", "credit_remaining_cents_after",
    "invoice_due_cents_after", "xero_id", "message",
]
CREDIT_DIFFERENCE_COLUMNS = [
    "credit_id", "credit_number", "status", "total_cents", "allocated_cents", "refunded_cents", "remaining_cents",
    "difference_cents", "message",
]
ALLOCATIONS = "Allocations"
ALLOCATION_PROCESS_SUFFIX = "-allocation"
GOOD_ALLOCATION_OUTCOMES = {"allocated", "already_allocated"}  # Xero holds it
REPORTED_ALLOCATION_OUTCOMES = {"waiting", "nothing_to_allocate", "locked"}  # nothing sent, and why
FAILED_ALLOCATION_OUTCOMES = {"failed", "unknown", "deferred"}  # a re-run may fix it
INVOICE_TYPE = {"ACCRECCREDIT": "ACCREC", "ACCPAYCREDIT": "ACCPAY"}  # credit note Type -> the Type it applies to
INVOICES_PER_LOOKUP = 50
_KEY_LIMIT = 200  # the ledger's document_key column


def allocation_ledger_key(process: str, allocation_key: str) -> str:
    """`<process>-allocation/<credit>><invoice>` (a long one shortened with its own digest, to fit the ledger)."""
    key = f"{process}{ALLOCATION_PROCESS_SUFFIX}/{allocation_key}"
    if len(key) <= _KEY_LIMIT:
        return key
    return key[: _KEY_LIMIT - 17] + "#" + hashlib.sha256(allocation_key.encode()).hexdigest()[:16]


def allocation_ledger(document_ledger: PostingLedger, process: str) -> PostingLedger:
    """The ledger of a process's allocations: the document ledger's table, site, organisation and run,
    scoped to `<process>-allocation`."""
    return PostingLedger(document_ledger.engine, document_ledger.tenant_id, document_ledger.run_id,
                         site=document_ledger.site, process=f"{process}{ALLOCATION_PROCESS_SUFFIX}")


def _process_of(ledger: PostingLedger) -> str:
    if not ledger.process or not ledger.process.endswith(ALLOCATION_PROCESS_SUFFIX):
        raise ValueError(f"{ledger!r} is not an allocation ledger: pass PostingLedger(..., process=f\"{{process}}"
                         f"{ALLOCATION_PROCESS_SUFFIX}\") (allocation_ledger(document_ledger, process) makes one)")
    return ledger.process[: -len(ALLOCATION_PROCESS_SUFFIX)]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN: absent
        return ""
    return str(value).strip()


def _cents(value: Any) -> int:
    return decimal_to_cents(value if isinstance(value, Decimal) else Decimal(str(value if value is not None else 0)))


def _day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    return parse_xero_date(str(value)) if value else None


def _id(value: Any) -> str:
    return _text(value).lower()


def _allocation_hash(credit_id: str, invoice_number: str) -> str:
    """What makes an allocation the same one: the credit note (by Xero id) and the invoice (by number)."""
    content = {"version": CONTENT_VERSION, "credit": credit_id.lower(), "invoice": invoice_number}
    return f"{CONTENT_VERSION}:{hashlib.sha256(dumps_exact(content).encode()).hexdigest()}"


@dataclass
class _Pair:
    """One wanted allocation and what became of it in this call."""

    row: dict[str, Any]  # the wanted row (WANTED_ALLOCATION_COLUMNS)
    key: str  # ledger key
    credit_id: str  # lower case; "" when the credit is not in Xero
    invoice_number: str
    result: dict[str, Any] | None = None
    invoice_id: str | None = None
    amount_cents: int | None = None
    day: date | None = None
    lost: bool = False  # an answer to its allocation was lost in this call

    @property
    def allocation_key(self) -> str:
        return str(self.row["allocation_key"])

    @property
    def content_hash(self) -> str:
        return _allocation_hash(self.credit_id, self.invoice_number)

    def intent(self, amount_cents: int) -> Intent:
        return Intent(document_key=self.key, endpoint=ALLOCATIONS, number=self.allocation_key, revision=0,
                      content_hash=self.content_hash, total_cents=int(amount_cents), tax_cents=0,
                      partition_key=_text(self.row.get("business_date")),
                      source_keys=(_text(self.row.get("credit_document_key")),))

    def report(self, outcome: str, message: str, *, amount: int | None = None, remaining: int | None = None,
               due: int | None = None, xero_id: str | None = None) -> None:
        self.result = {
            **{column: self.row.get(column) for column in WANTED_ALLOCATION_COLUMNS},
            "invoice_id": self.invoice_id, "outcome": outcome,
            "allocation_date": self.day.isoformat() if self.day else None, "amount_cents": amount,
            "credit_remaining_cents_after": remaining, "invoice_due_cents_after": due, "xero_id": xero_id,
            "message": message,
        }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        frame = pd.DataFrame({column: pd.Series(dtype=object) for column in ALLOCATION_RESULT_COLUMNS})
    else:
        frame = pd.DataFrame(rows, columns=ALLOCATION_RESULT_COLUMNS)
    for column in ("amount_cents", "credit_remaining_cents_after", "invoice_due_cents_after"):
        frame[column] = frame[column].astype("Int64")
    return frame


# -- reading Xero ----------------------------------------------------------------------------------------

def read_credit_note(client: XeroClient, credit_id: str) -> dict[str, Any] | None:
    """One credit note as Xero holds it now (its Allocations, Payments, RemainingCredit, Total); None when
    Xero has no such credit note."""
    try:
        answer = client.request("GET", f"CreditNotes/{credit_id}")
    except XeroApiError as error:
        if error.status == 404:
            return None
        raise
    found = answer.get("CreditNotes") or []
    return found[0] if found else None


def read_credit_notes(client: XeroClient, credit_ids: Iterable[str]) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
    """Credit id (lower case) → the credit note (None: not in Xero); and the ids whose read failed, with
    why. Several in flight, under the organisation's pacer."""
    ids = sorted({_id(i) for i in credit_ids if _id(i)})
    found: dict[str, dict[str, Any] | None] = {}
    failed: dict[str, str] = {}
    if not ids:
        return found, failed
    with ThreadPoolExecutor(max_workers=max(client.max_in_flight, 1)) as pool:
        futures = {credit_id: pool.submit(read_credit_note, client, credit_id) for credit_id in ids}
        stop: BaseException | None = None
        for credit_id, future in futures.items():
            try:
                found[credit_id] = future.result()
            except (ReconnectRequired, DailyLimitReached) as error:
                stop = stop or error
            except CALL_ERRORS as error:
                failed[credit_id] = f"reading the credit note in Xero failed: {error}"
    if stop is not None:
        raise stop
    return found, failed


def find_invoices(client: XeroClient, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Invoice number → every invoice Xero holds under it (any Type and status: the caller chooses), 50
    numbers to a call (GET /Invoices?InvoiceNumbers=…)."""
    wanted = sorted({n for n in numbers if n})
    found: dict[str, list[dict[str, Any]]] = {n: [] for n in wanted}
    by_folded = {n.casefold(): n for n in wanted}
    for start in range(0, len(wanted), INVOICES_PER_LOOKUP):
        chunk = wanted[start : start + INVOICES_PER_LOOKUP]
        params = {"InvoiceNumbers": ",".join(chunk), "page": 1, "pageSize": 100}
        for invoice in client.get_all("Invoices", "Invoices", params):
            number = by_folded.get(_text(invoice.get("InvoiceNumber")).casefold())
            if number is not None:
                found[number].append(invoice)
    return found


def _allocations_to(credit: dict[str, Any], invoice_ids: set[str], invoice_number: str) -> list[dict[str, Any]]:
    """The credit's live allocations to the invoice (by InvoiceID; by number only where Xero names no id)."""
    held = []
    for allocation in credit.get("Allocations") or []:
        if allocation.get("IsDeleted"):
            continue
        invoice = allocation.get("Invoice") or {}
        invoice_id = _id(invoice.get("InvoiceID"))
        if invoice_id in invoice_ids or (not invoice_id and _text(invoice.get("InvoiceNumber")) == invoice_number):
            held.append(allocation)
    return held


# -- the run ---------------------------------------------------------------------------------------------------

@dataclass
class _AllocationRun:
    client: XeroClient
    ledger: PostingLedger
    locked_until: date | None
    rounds: int
    entries: dict[str, LedgerEntry]
    credits: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)  # credit id -> RemainingCredit as this run leaves it
    due: dict[str, int] = field(default_factory=dict)  # invoice id -> AmountDue as this run leaves it
    stop: DailyLimitReached | None = None

    def judge(self, pair: _Pair, invoices: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Decide a pair on the documents as Xero holds them; the allocation to send, or None (reported)."""
        credit = self.credits.get(pair.credit_id)
        number, invoice_number = pair.row.get("credit_number"), pair.invoice_number
        entry = self.entries.get(pair.key)
        if credit is None:
            pair.report("waiting", f"credit note {number} ({pair.credit_id}) is not in Xero: nothing to allocate yet")
            return None
        credit_type = _text(credit.get("Type"))
        status = _text(credit.get("Status"))
        candidates = [i for i in invoices if _text(i.get("Type")) == INVOICE_TYPE.get(credit_type, "ACCREC")]
        held = _allocations_to(credit, {_id(i.get("InvoiceID")) for i in candidates}, invoice_number)
        remaining = self.remaining.setdefault(pair.credit_id, _cents(credit.get("RemainingCredit")))
        if held:
            invoice_id = _id((held[0].get("Invoice") or {}).get("InvoiceID")) or None
            pair.invoice_id = invoice_id
            pair.day = _day(held[0].get("Date"))
            due = self._due(invoice_id, candidates)
            amount = sum(_cents(a.get("Amount")) for a in held)
            ids = ", ".join(_text(a.get("AllocationID")) for a in held)
            if entry is not None:  # ours: an earlier attempt whose answer was lost, or a ledger that forgot
                self.ledger.record_posted(pair.intent(amount), _text(held[0].get("AllocationID")) or None, "AUTHORISED")
                message = (f"{number} is allocated to {invoice_number} in Xero ({cents_to_decimal(amount)}): confirmed by "
                           "reading the credit note; nothing sent again")
            else:
                message = (f"{number} already holds an allocation to {invoice_number} in Xero ({cents_to_decimal(amount)}) "
                           "that this pipeline did not make; nothing sent")
            if len(held) > 1:
                message += f"; Xero holds {len(held)} allocations of it to that invoice ({ids})"
            pair.report("already_allocated", message, amount=amount, remaining=remaining, due=due,
                        xero_id=_text(held[0].get("AllocationID")) or None)
            return None
        if status in ("DRAFT", "SUBMITTED"):
            pair.report("waiting", f"credit note {number} is {status} in Xero: it is allocated once it is approved (AUTHORISED)",
                        remaining=remaining)
            return None
        if status in GONE:
            pair.report("nothing_to_allocate", f"credit note {number} is {status} in Xero: nothing to allocate")
            return None
        live = [i for i in candidates if _text(i.get("Status")) not in GONE]
        if len(live) > 1:
            contact = _id((credit.get("Contact") or {}).get("ContactID"))
            live = [i for i in live if _id((i.get("Contact") or {}).get("ContactID")) == contact] or live
        if not live:
            if candidates:
                pair.report("nothing_to_allocate", f"invoice {invoice_number} is {candidates[0].get('Status')} in Xero: "
                            f"credit note {number} stays unallocated", remaining=remaining)
            else:
                pair.report("waiting", f"invoice {invoice_number} is not in Xero yet (a later day, another process, or "
                            f"quarantined): credit note {number} stays unallocated until it is", remaining=remaining)
            return None
        if len(live) > 1:
            pair.report("failed", f"Xero holds {len(live)} invoices numbered {invoice_number} for this contact: "
                        f"allocate credit note {number} by hand", remaining=remaining)
            return None
        invoice = live[0]
        pair.invoice_id = _id(invoice.get("InvoiceID"))
        due = self._due(pair.invoice_id, [invoice])
        invoice_status = _text(invoice.get("Status"))
        if invoice_status in ("DRAFT", "SUBMITTED"):
            pair.report("waiting", f"invoice {invoice_number} is {invoice_status} in Xero: credit note {number} is allocated "
                        "once it is approved (AUTHORISED)", remaining=remaining, due=due)
            return None
        if _id((invoice.get("Contact") or {}).get("ContactID")) != _id((credit.get("Contact") or {}).get("ContactID")):
            pair.report("failed", f"credit note {number} and invoice {invoice_number} are for different contacts in Xero "
                        f"({(credit.get('Contact') or {}).get('Name')!r}, {(invoice.get('Contact') or {}).get('Name')!r}): "
                        "not allocated", remaining=remaining, due=due)
            return None
        if remaining <= 0:
            pair.report("nothing_to_allocate", f"credit note {number} has no credit remaining in Xero (allocated or refunded "
                        f"elsewhere): nothing allocated to {invoice_number}", remaining=remaining, due=due)
            return None
        if due <= 0:
            pair.report("nothing_to_allocate", f"invoice {invoice_number} has nothing due: it was paid in full before the "
                        f"credit; credit note {number} keeps {cents_to_decimal(remaining)} of credit: refund the customer or "
                        "allocate it elsewhere", remaining=remaining, due=due)
            return None
        amount = min(remaining, due)
        days = [d for d in (_day(credit.get("DateString") or credit.get("Date")),
                            _day(invoice.get("DateString") or invoice.get("Date"))) if d]
        pair.day = max(days) if days else _day(pair.row.get("business_date"))
        if self.locked_until and pair.day and pair.day <= self.locked_until:
            pair.report("locked", f"{number} → {invoice_number} would be dated {pair.day}, on or before Xero's lock date "
                        f"{self.locked_until}: not allocated. Ask the accountant to move the lock date, or allocate it by "
                        "hand in an open period", amount=amount, remaining=remaining, due=due)
            return None
        pair.amount_cents = amount
        return {"Amount": cents_to_decimal(amount), "Invoice": {"InvoiceID": invoice.get("InvoiceID")},
                "Date": pair.day.isoformat()}

    def _due(self, invoice_id: str | None, invoices: list[dict[str, Any]]) -> int | None:
        if not invoice_id:
            return None
        if invoice_id not in self.due:
            invoice = next((i for i in invoices if _id(i.get("InvoiceID")) == invoice_id), None)
            if invoice is None:
                return None
            self.due[invoice_id] = _cents(invoice.get("AmountDue"))
        return self.due[invoice_id]

    def send(self, pair: _Pair, body: dict[str, Any]) -> None:
        """PUT one allocation; a lost answer is settled by reading the credit note again."""
        number, invoice_number = pair.row.get("credit_number"), pair.invoice_number
        amount = int(pair.amount_cents or 0)
        path = f"CreditNotes/{pair.credit_id}/Allocations"
        key = batch_idempotency_key(path, [(pair.key, body)], self.client.idempotency_scope)
        lost: XeroOutcomeUnknown | None = None
        for _round in range(max(self.rounds, 1)):
            self.ledger.intend([pair.intent(amount)])
            try:
                answer = self.client.request("PUT", path, params={"summarizeErrors": "false"},
                                             body={"Allocations": [body]}, idempotency_key=key)
            except (ReconnectRequired, DailyLimitReached):
                raise
            except XeroOutcomeUnknown as error:
                lost, pair.lost = error, True
                self.ledger.unknown_many([pair.key], str(error))
                try:
                    credit = read_credit_note(self.client, pair.credit_id)
                except (ReconnectRequired, DailyLimitReached):
                    raise
                except CALL_ERRORS as read_error:
                    pair.report("unknown", f"{number} → {invoice_number}: the answer was lost ({error}) and reading the "
                                f"credit note failed ({read_error}); nothing more was sent (the next run reads it first)",
                                amount=amount)
                    return
                held = _allocations_to(credit or {}, {pair.invoice_id or ""}, invoice_number)
                if held:
                    allocation_id = _text(held[0].get("AllocationID")) or None
                    self.ledger.posted_many([(pair.key, allocation_id, "AUTHORISED")])
                    self._allocated(pair, amount, allocation_id, "confirmed by reading the credit note after the answer was lost")
                    return
                continue  # Xero does not hold it: the allocation did not go through; send it again
            except XeroApiError as error:
                reason = "; ".join(error.messages) or str(error)
                self.ledger.failed_many([(pair.key, reason)])
                pair.report("failed", f"{number} → {invoice_number}: {reason}", amount=amount,
                            remaining=self.remaining.get(pair.credit_id), due=self.due.get(pair.invoice_id or ""))
                return
            except CALL_ERRORS as error:
                self.ledger.failed_many([(pair.key, str(error))])
                pair.report("failed", f"{number} → {invoice_number}: {error}", amount=amount)
                return
            elements = answer.get("Allocations") or []
            element = elements[0] if elements else {}
            errors = [str(e.get("Message", "")) for e in element.get("ValidationErrors") or [] if e.get("Message")]
            if not elements or element.get("StatusAttributeString") == "ERROR" or errors:
                reason = "; ".join(errors) or "Xero answered no allocation"
                self.ledger.failed_many([(pair.key, reason)])
                pair.report("failed", f"{number} → {invoice_number}: {reason}", amount=amount,
                            remaining=self.remaining.get(pair.credit_id), due=self.due.get(pair.invoice_id or ""))
                return
            allocation_id = _text(element.get("AllocationID")) or None
            self.ledger.posted_many([(pair.key, allocation_id, "AUTHORISED")])
            self._allocated(pair, amount, allocation_id, "")
            return
        pair.report("unknown", f"{number} → {invoice_number}: no answer from Xero after {self.rounds} attempts ({lost}); "
                    "the next run reads the credit note before sending again", amount=amount)

    def _allocated(self, pair: _Pair, amount: int, allocation_id: str | None, said: str) -> None:
        self.remaining[pair.credit_id] -= amount
        if pair.invoice_id in self.due:
            self.due[pair.invoice_id] -= amount
        remaining, due = self.remaining[pair.credit_id], self.due.get(pair.invoice_id or "")
        parts = [said] if said else []
        if remaining > 0:
            parts.append(f"credit note {pair.row.get('credit_number')} keeps {cents_to_decimal(remaining)} of credit "
                         f"(more than {pair.invoice_number} had due): refund the customer or allocate it elsewhere")
        pair.report("allocated", "; ".join(parts), amount=amount, remaining=remaining, due=due, xero_id=allocation_id)


def _wanted(wanted: pd.DataFrame, process: str) -> list[_Pair]:
    missing = [c for c in ("allocation_key", "credit_number", "credit_id", "invoice_number") if c not in wanted.columns]
    if missing:
        raise ValueError(f"the wanted allocations lack the columns {missing} (expected {WANTED_ALLOCATION_COLUMNS})")
    pairs: dict[str, _Pair] = {}
    for row in wanted.to_dict("records"):
        row = {column: row.get(column) for column in WANTED_ALLOCATION_COLUMNS}
        key = _text(row["allocation_key"])
        if key in pairs:
            continue  # one allocation per pair, however often it is asked for
        pairs[key] = _Pair(row=row, key=allocation_ledger_key(process, key), credit_id=_id(row["credit_id"]),
                           invoice_number=_text(row["invoice_number"]))
    return list(pairs.values())


def allocate_credits(client: XeroClient, ledger: PostingLedger, wanted: pd.DataFrame, locked_until: date | None,
                     rounds: int = 5) -> pd.DataFrame:
    """Allocate each wanted credit note to the invoice it reverses, once. `wanted` has
    WANTED_ALLOCATION_COLUMNS (credit_id: the credit's CreditNoteID in Xero, or None when it is not there);
    `ledger` is PostingLedger(process=f"{process}-allocation") (allocation_ledger() makes one). One row per
    allocation_key, in the frame's order (ALLOCATION_RESULT_COLUMNS)."""
    process = _process_of(ledger)
    pairs = _wanted(wanted, process)
    if not pairs:
        return _frame([])
    entries = ledger.entries([p.key for p in pairs])
    run = _AllocationRun(client, ledger, locked_until, rounds, entries)
    to_read: list[_Pair] = []
    for pair in pairs:
        entry = entries.get(pair.key)
        if entry is not None and entry.state == POSTED and entry.content_hash == pair.content_hash:
            pair.report("already_allocated", f"{pair.row.get('credit_number')} was allocated to {pair.invoice_number} by an "
                        "earlier run", amount=entry.total_cents, xero_id=entry.xero_id)
        elif not pair.credit_id:
            pair.report("waiting", f"credit note {pair.row.get('credit_number')} is not in Xero (not posted yet, or "
                        "quarantined or refused): nothing to allocate yet")
        else:
            to_read.append(pair)
    try:
        if to_read:
            run.credits, failed = read_credit_notes(client, [p.credit_id for p in to_read])
            readable = []
            for pair in to_read:
                if pair.credit_id in failed:
                    intended = (entry := entries.get(pair.key)) is not None and entry.state == INTENDED
                    pair.report("unknown" if intended else "failed", f"{pair.row.get('credit_number')}: {failed[pair.credit_id]}; "
                                "nothing sent (the next run reads it again)")
                else:
                    readable.append(pair)
            numbers = [p.invoice_number for p in readable if run.credits.get(p.credit_id) is not None]
            invoices: dict[str, list[dict[str, Any]]] = {}
            try:
                invoices = find_invoices(client, numbers) if numbers else {}
            except (ReconnectRequired, DailyLimitReached):
                raise
            except CALL_ERRORS as error:
                for pair in readable:
                    if run.credits.get(pair.credit_id) is not None:
                        pair.report("failed", f"{pair.row.get('credit_number')} → {pair.invoice_number}: reading the invoice "
                                    f"in Xero failed ({error}); nothing sent")
                readable = [p for p in readable if p.result is None]
            for pair in readable:  # one after another: a credit's remaining credit falls with each allocation
                body = run.judge(pair, invoices.get(pair.invoice_number, []))
                if body is not None:
                    run.send(pair, body)
    except DailyLimitReached as stop:
        for pair in pairs:
            if pair.result is not None:
                continue
            if pair.lost:
                pair.report("unknown", f"{pair.allocation_key}: the answer was lost and {stop}; the next run reads the credit "
                            "note before sending again", amount=pair.amount_cents)
            else:
                pair.report("deferred", f"{pair.allocation_key}: not allocated: {stop}; the next run resumes here")
    return _frame([pair.result for pair in pairs])


# -- the reconciliation ----------------------------------------------------------------------------------

def credit_note_differences(credit_notes: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The credit notes (as Xero holds them) whose allocations + refunds (payments on the credit) + remaining
    credit do not add up to their total (CREDIT_DIFFERENCE_COLUMNS). Only approved ones (AUTHORISED, PAID):
    a draft has nothing applied, a voided one nothing left."""
    rows = []
    for credit in credit_notes:
        status = _text(credit.get("Status"))
        if status not in ("AUTHORISED", "PAID"):
            continue
        allocated = sum(_cents(a.get("Amount")) for a in credit.get("Allocations") or [] if not a.get("IsDeleted"))
        refunded = sum(_cents(p.get("Amount")) for p in credit.get("Payments") or []
                       if _text(p.get("Status")) in ("", "AUTHORISED"))
        remaining, total = _cents(credit.get("RemainingCredit")), _cents(credit.get("Total"))
        difference = total - allocated - refunded - remaining
        if difference:
            rows.append({
                "credit_id": _id(credit.get("CreditNoteID")), "credit_number": credit.get("CreditNoteNumber"), "status": status,
                "total_cents": total, "allocated_cents": allocated, "refunded_cents": refunded, "remaining_cents": remaining,
                "difference_cents": difference,
                "message": (f"credit note {credit.get('CreditNoteNumber')}: allocated {cents_to_decimal(allocated)} + refunded "
                            f"{cents_to_decimal(refunded)} + remaining {cents_to_decimal(remaining)} ≠ total "
                            f"{cents_to_decimal(total)} (out by {cents_to_decimal(difference)})"),
            })
    frame = pd.DataFrame(rows, columns=CREDIT_DIFFERENCE_COLUMNS)
    for column in CREDIT_DIFFERENCE_COLUMNS[3:8]:
        frame[column] = frame[column].astype("Int64")
    return frame


def allocation_differences(client: XeroClient, results: pd.DataFrame) -> pd.DataFrame:
    """credit_note_differences over the credit notes of allocate_credits' results, read from Xero now. A
    credit note that could not be read is a row of its own (difference unknown, its message says why)."""
    ids = sorted({_id(i) for i in results["credit_id"] if _id(i)}) if len(results) else []
    found, failed = read_credit_notes(client, ids)
    frame = credit_note_differences([credit for credit in found.values() if credit is not None])
    if failed:
        unread = pd.DataFrame([{"credit_id": i, "message": why} for i, why in sorted(failed.items())],
                              columns=CREDIT_DIFFERENCE_COLUMNS)
        frame = pd.concat([frame, unread], ignore_index=True) if len(frame) else unread
    return frame
