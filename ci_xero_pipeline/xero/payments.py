"""Paying Xero documents exactly once, and removing our payments only to let a changed document change.

Pure Xero: knows payments frames (books.tenders.PAYMENT_COLUMNS), documents frames and the result rows of
posting.post_documents, never CI or Dagster. A run of a process that pays its documents goes
(post_documents_and_payments):

    released = release_payments(client, payment_ledger, payments, documents, locked_until, partitions=days,
                                evidence=evidence, policy=policy)
    results = post_documents(client, document_ledger, documents, days, policy, evidence)
    paid = post_payments(client, payment_ledger, payments, results, locked_until)

`payment_ledger` is a PostingLedger with `process=f"{process}-payment"` (payment_ledger() makes it from
the document ledger); its rows are keyed `payment_ledger_key(process, Reference)`, number = Reference,
total = amount, partition = the payment's date, source_keys = (the document's key,).

Rules:
- A payment's key is its Reference (`<base document number>/<tender>`); the payment names its document by
  Xero id, so a revised document (`<number>-R1`) is paid, not the voided one.
- Exactly once: each payment is recorded `intended` before its batch goes (50 to a PUT through
  client.put_payments, with the client's Idempotency-Key); one the ledger holds as posted with the same
  content is not sent again; one it holds as intended or failed is looked up by Reference before
  anything is sent; a batch whose answer is lost is looked up and only what Xero does not hold is sent
  again, for a bounded number of rounds.
- Removal (before post_documents): only our own payments (their PaymentIDs are in the ledger), only of a
  document post_documents will change (CI changed it, or CI withdrew it) or of which one of our payments
  changed or is no longer wanted, never on a day post_documents stops, never of a document whose new
  version CI holds back, never of a document someone else paid or credited (`paid_by_others`: then
  nothing of it is removed, and post_documents reports it `paid`), never on or before the lock date.
- Absence is not evidence: a document of which CI now wants no payment at all keeps ours (`kept`: its
  tenders are held back, e.g. unmapped); a document CI no longer returned keeps them unless CI withdrew it.

Outcomes: posted, already_posted, withdrawn (Xero holds the payments as CI has them); failed, unknown,
deferred (not in Xero as CI has them, a re-run may fix it); locked, paid_by_others, kept (a person acts);
not_sent (its document is not in Xero as CI has it: the document's outcome says why).
"""

from __future__ import annotations

import dataclasses

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Sequence

import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents, dumps_exact
from .client import XeroApiError, XeroClient, XeroOutcomeUnknown, parse_xero_date
from .ledger import (
    CONTENT_VERSION, FAILED, INTENDED, POSTED, Intent, LedgerEntry, PostingLedger, content_hash,
    hash_is_current,
)
from .oauth import ReconnectRequired
from .pacing import DailyLimitReached
from .posting import (
    CALL_ERRORS, GONE, GOOD_OUTCOMES, LOOKUP_CHUNK, SOURCE_KEYS, PostingPolicy, SourceEvidence, _days_with_missing_sources,
    _held, _lookup, post_documents,
)

PAYMENT_RESULT_COLUMNS = [
    "payment_key", "document_key", "business_date", "tender_type", "account_code", "amount_cents", "action",
    "outcome", "xero_id", "xero_amount_cents", "message",
]
PAYMENTS = "Payments"
PAYMENT_PROCESS_SUFFIX = "-payment"

# Xero holds the payments as CI has them
GOOD_PAYMENT_OUTCOMES = {"posted", "already_posted", "withdrawn"}
# not in Xero as CI has them, and a re-run may fix it
FAILED_PAYMENT_OUTCOMES = {"failed", "unknown", "deferred"}
# in Xero otherwise than CI, by a rule a person must act on
REPORTED_PAYMENT_OUTCOMES = {"locked", "paid_by_others", "kept"}
# not sent because its document is not in Xero as CI has it: the document's own outcome (failed, locked, paid …)
# says why and fails or reports the day; the payment follows it
FOLLOWS_DOCUMENT_OUTCOMES = {"not_sent"}
# document outcomes of post_documents that put a new document into Xero in this run
NEW_IN_XERO = {"posted", "reposted"}
# a document so posted can be paid ("withdrawn": CI took it back, nothing is paid on it)
PAYABLE_DOCUMENT_OUTCOMES = GOOD_OUTCOMES - {"withdrawn"}
_KEY_LIMIT = 200  # the ledger's document_key column


def payment_ledger_key(process: str, reference: str) -> str:
    """The payment's row in the ledger: `<process>-payment/<Reference>` (a long Reference is shortened
    with its own digest, so the key fits the ledger and stays one per Reference)."""
    key = f"{process}{PAYMENT_PROCESS_SUFFIX}/{reference}"
    if len(key) <= _KEY_LIMIT:
        return key
    digest = hashlib.sha256(reference.encode()).hexdigest()[:16]
    return key[: _KEY_LIMIT - 17] + "#" + digest


def payment_ledger(document_ledger: PostingLedger, process: str) -> PostingLedger:
    """The ledger of a process's payments: the same table, site, organisation and run as its documents',
    scoped to `<process>-payment`."""
    return PostingLedger(document_ledger.engine, document_ledger.tenant_id, document_ledger.run_id,
                         site=document_ledger.site, process=f"{process}{PAYMENT_PROCESS_SUFFIX}")


def payment_content_hash(document_key: str, account_code: str, day: str, amount_cents: int, reference: str) -> str:
    """What makes a payment the same payment: its document, account, date, amount and Reference."""
    content = {"version": CONTENT_VERSION, "document": document_key, "account": account_code, "date": day,
               "amount": int(amount_cents), "reference": reference}
    return f"{CONTENT_VERSION}:{hashlib.sha256(dumps_exact(content).encode()).hexdigest()}"


def _process_of(ledger: PostingLedger) -> str:
    if not ledger.process or not ledger.process.endswith(PAYMENT_PROCESS_SUFFIX):
        raise ValueError(f"{ledger!r} is not a payment ledger: pass PostingLedger(..., process=f\"{{process}}"
                         f"{PAYMENT_PROCESS_SUFFIX}\") (payment_ledger(document_ledger, process) makes one)")
    return ledger.process[: -len(PAYMENT_PROCESS_SUFFIX)]


def _tender_of(reference: str) -> str | None:
    return reference.rsplit("/", 1)[1] if "/" in reference else None


def _paid_document_id(payment: dict[str, Any]) -> str | None:
    """The id of the document a payment pays. Xero names a credit note's payment under "CreditNote" in
    the PUT answer but under "Invoice" (with the credit note's id) when read back: both are read."""
    for key, id_field in (("Invoice", "InvoiceID"), ("CreditNote", "CreditNoteID")):
        document = payment.get(key)
        if isinstance(document, dict) and document.get(id_field):
            return str(document[id_field]).lower()
    return None


def _cents(value: Any) -> int | None:
    return decimal_to_cents(value) if value is not None else None


def _day(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    return parse_xero_date(str(value)) if value else None


def _locked(day: Any, locked_until: date | None) -> bool:
    day = _day(day)
    return bool(locked_until and day and day <= locked_until)


@dataclass(frozen=True)
class _Payment:
    """One wanted payment (a row of the payments frame) and its ledger identity."""

    reference: str
    key: str  # ledger key
    document_key: str
    business_date: str
    document_endpoint: str
    document_number: str
    tender_type: str
    account_code: str
    amount_cents: int
    payload: dict[str, Any]
    content_hash: str

    def intent(self) -> Intent:
        return Intent(document_key=self.key, endpoint=PAYMENTS, number=self.reference, revision=0,
                      content_hash=self.content_hash, total_cents=self.amount_cents, tax_cents=0,
                      partition_key=self.business_date, source_keys=(self.document_key,))

    def same_as(self, entry: LedgerEntry) -> bool:
        """The ledger's payment is this one (a row hashed under an older content version: by amount, date
        and Reference, what it kept of the payment)."""
        if hash_is_current(entry.content_hash):
            return entry.content_hash == self.content_hash
        return (entry.total_cents, entry.partition_key, entry.number, tuple(entry.source_keys or ())) == (
            self.amount_cents, self.business_date, self.reference, (self.document_key,))

    def body(self, document_endpoint: str, document_id: str) -> dict[str, Any]:
        """The Payment sent: the builder's payload, its document named by Xero id."""
        document = ({"Invoice": {"InvoiceID": document_id}} if document_endpoint == "Invoices"
                    else {"CreditNote": {"CreditNoteID": document_id}})
        rest = {k: v for k, v in self.payload.items() if k not in ("Invoice", "CreditNote", "Account", "Date", "Amount", "Reference")}
        return {**document, "Account": {"Code": self.account_code}, "Date": self.business_date,
                "Amount": cents_to_decimal(self.amount_cents), "Reference": self.reference, **rest}


def _wanted(payments: pd.DataFrame, process: str) -> dict[str, _Payment]:
    wanted: dict[str, _Payment] = {}
    for row in payments.itertuples(index=False):
        reference, amount = str(row.payment_key), int(row.amount_cents)
        wanted[reference] = _Payment(
            reference=reference, key=payment_ledger_key(process, reference), document_key=str(row.document_key),
            business_date=str(row.business_date), document_endpoint=str(row.document_endpoint),
            document_number=str(row.document_number), tender_type=str(row.tender_type), account_code=str(row.account_code),
            amount_cents=amount, payload=dict(row.payload or {}),
            content_hash=payment_content_hash(str(row.document_key), str(row.account_code), str(row.business_date), amount, reference),
        )
    return wanted


def _row(reference: str, document_key: str | None, day: str | None, tender: str | None, account: str | None,
         amount: int | None, action: str, outcome: str, xero_id: str | None = None, xero_amount: int | None = None,
         message: str = "") -> dict[str, Any]:
    return {"payment_key": reference, "document_key": document_key, "business_date": day, "tender_type": tender,
            "account_code": account, "amount_cents": amount, "action": action, "outcome": outcome, "xero_id": xero_id,
            "xero_amount_cents": xero_amount, "message": message}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        frame = pd.DataFrame({column: pd.Series(dtype=object) for column in PAYMENT_RESULT_COLUMNS})
    else:
        frame = pd.DataFrame(rows, columns=PAYMENT_RESULT_COLUMNS)
    for column in ("amount_cents", "xero_amount_cents"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _payments_of_documents(entries: Iterable[LedgerEntry]) -> dict[str, list[LedgerEntry]]:
    by_document: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        if entry.endpoint == PAYMENTS and entry.source_keys:
            by_document[entry.source_keys[0]].append(entry)
    return by_document


# -- removing our payments -----------------------------------------------------------------------

@dataclass
class _Removal:
    """One payment of ours to take out of Xero: its ledger row (if any) and Xero's copy on the document."""

    reference: str
    entry: LedgerEntry | None
    xero: dict[str, Any] | None  # the payment as the document lists it (PaymentID, Date, Amount, Reference)
    wanted: _Payment | None

    @property
    def payment_id(self) -> str | None:
        if self.xero and self.xero.get("PaymentID"):
            return str(self.xero["PaymentID"])
        return self.entry.xero_id if self.entry else None


def release_payments(
    client: XeroClient,
    ledger: PostingLedger,
    payments: pd.DataFrame,
    documents: pd.DataFrame,
    locked_until: date | None,
    *,
    partitions: Sequence[str] = (),
    evidence: SourceEvidence | None = None,
    policy: PostingPolicy = PostingPolicy(),
) -> pd.DataFrame:
    """Remove our payments where post_documents (called next, with the same partitions, evidence and
    policy) must change or withdraw their document, or where one of them changed or is no longer wanted.
    One row per payment of ours considered (PAYMENT_RESULT_COLUMNS, action `remove`); outcomes
    withdrawn (removed, or no longer in Xero), locked, paid_by_others, kept, failed, unknown."""
    process = _process_of(ledger)
    wanted = _wanted(payments, process)
    wanted_by_document: dict[str, list[_Payment]] = defaultdict(list)
    for payment in wanted.values():
        wanted_by_document[payment.document_key].append(payment)
    docs = {d.document_key: d for d in documents.itertuples(index=False)}
    if evidence is None:
        evidence = SourceEvidence.from_documents(documents) if SOURCE_KEYS in documents.columns else SourceEvidence()
    days = sorted(set(partitions) | {str(d) for d in documents["business_date"]} | {p.business_date for p in wanted.values()})

    ours = ledger.entries_for_partitions(days) if days else {}
    ours.update(ledger.entries([p.key for p in wanted.values()]))
    all_ours = _payments_of_documents(ours.values())
    held = {key: [e for e in entries if e.state in (POSTED, INTENDED)] for key, entries in all_ours.items()}
    held = {key: entries for key, entries in held.items() if entries}
    if not held:
        return _frame([])

    document_ledger = PostingLedger(ledger.engine, ledger.tenant_id, ledger.run_id, site=ledger.site, process=process)
    document_entries = document_ledger.entries(sorted(held))
    partition_documents = document_ledger.entries_for_partitions(list(partitions)) if partitions else {}
    stopped = _days_with_missing_sources(partition_documents, evidence, policy)
    withdrawn_sources = set(evidence.withdrawn)
    if policy.missing_source == "withdraw":
        for entry in partition_documents.values():
            withdrawn_sources.update(k for k in entry.source_keys or () if k not in evidence.returned.get(entry.partition_key, ()))

    rows: list[dict[str, Any]] = []

    def report(entries: Iterable[LedgerEntry], outcome: str, message: str) -> None:
        for entry in entries:
            payment = wanted.get(entry.number)
            rows.append(_row(entry.number, entry.source_keys[0], entry.partition_key, _tender_of(entry.number),
                             payment.account_code if payment else None, entry.total_cents, "remove", outcome,
                             entry.xero_id, None, message))

    # which documents lose which of our payments (decided on the ledgers, before reading Xero)
    plans: dict[str, tuple[bool, list[LedgerEntry]]] = {}  # document key -> (all of ours?, rows to remove)
    for document_key, entries in sorted(held.items()):
        document, entry = docs.get(document_key), document_entries.get(document_key)
        if entry is None:
            continue  # no document of ours behind them in this ledger: nothing to judge them by
        number = entry.number
        if document is not None:
            changed = (entry.state == POSTED and hash_is_current(entry.content_hash)
                       and entry.content_hash != content_hash(document.payload))
            if changed:
                remove = entries
            else:
                remove = [e for e in entries if e.number not in wanted or not wanted[e.number].same_as(e)
                          or wanted[e.number].document_key != document_key]
                if remove and not wanted_by_document.get(document_key):
                    report(remove, "kept", f"{number}: CI now gives no payment of it (its tenders are held back); "
                           "our payments stay in Xero until CI pays it again or withdraws it")
                    continue
            if not remove:
                continue
            if changed and _held(entry, evidence):
                report(remove, "kept", f"{number}: CI's new version is held back, so the document stays as posted "
                       "and so do its payments")
                continue
        else:
            gone = (entry.partition_key in partitions and entry.state in (POSTED, INTENDED) and entry.source_keys
                    and all(k in withdrawn_sources for k in entry.source_keys) and not _held(entry, evidence))
            if not gone:
                continue  # CI did not say the document is withdrawn: absence is not evidence
            changed, remove = True, entries
        day = document.business_date if document is not None else entry.partition_key
        if day in stopped:
            report(remove, "kept", f"{number}: not removed, {stopped[day]}")
            continue
        if _locked(day, locked_until) or any(_locked(e.partition_key, locked_until) for e in remove):
            report(remove, "locked", f"{number} and its payments are dated {day}, on or before Xero's lock date "
                   f"{locked_until}; CI changed them after posting and nothing was removed. Adjust them in an open period.")
            continue
        plans[document_key] = (changed, remove)
    if not plans:
        return _frame(rows)

    # read the documents in Xero: whose payments they hold
    where_of = {key: (document_entries[key].endpoint, document_entries[key].number) for key in plans}
    found, failed = _lookup(client, where_of.values())
    removals: dict[str, list[_Removal]] = {}
    for document_key, (changed, remove) in plans.items():
        where = where_of[document_key]
        number = where[1]
        if where in failed:
            report(remove, "unknown", f"{number}: {failed[where]}; nothing of it was removed")
            continue
        xero = found.get(where)
        if xero is None or xero.get("Status") in GONE:
            # a document with payments can be neither voided nor deleted: none of ours is left on it
            for entry in remove:
                ledger.withdrawn(entry.document_key, "DELETED")
            report(remove, "withdrawn", f"{number} is {xero.get('Status') if xero else 'not'} in Xero: no payment of it remains")
            continue
        mine_by_id = {e.xero_id.lower(): e for e in all_ours.get(document_key, []) if e.xero_id}
        mine_intended = {(e.number.casefold(), e.total_cents): e for e in all_ours[document_key] if e.state == INTENDED}
        listed: list[tuple[dict[str, Any], LedgerEntry]] = []
        others: list[dict[str, Any]] = []
        for payment in xero.get("Payments") or []:
            entry = mine_by_id.get(str(payment.get("PaymentID", "")).lower()) or mine_intended.get(
                (str(payment.get("Reference") or "").casefold(), _cents(payment.get("Amount"))))
            if entry is None:
                others.append(payment)
            else:
                listed.append((payment, entry))
        listed_cents = sum(_cents(p.get("Amount")) or 0 for p in xero.get("Payments") or [])
        credited = (_cents(xero.get("AmountCredited") or 0) or any(xero.get(name) for name in ("Allocations", "Prepayments", "Overpayments"))
                    or (xero.get("AmountPaid") is not None and _cents(xero["AmountPaid"]) != listed_cents))
        if others or credited:
            shown = "; ".join(f"{p.get('Reference') or '(no reference)'} {p.get('Amount')} on "
                              f"{_day(p.get('Date'))}" for p in others[:5])
            report(remove, "paid_by_others", f"{number} has payments or credits in Xero that this pipeline did not make "
                   f"({shown or 'credit allocated'}): none of its payments was removed, and post_documents leaves it as it "
                   "is (paid). A person must adjust it in Xero.")
            continue
        removing = {e.document_key for e in remove}
        if changed:  # the document must be free of payments: every one of ours on it goes
            removing |= {entry.document_key for _payment, entry in listed}
        on_xero = {entry.document_key: payment for payment, entry in listed}
        entries_by_key = {e.document_key: e for e in all_ours[document_key]}
        locked = [key for key in removing if key in on_xero and _locked(on_xero[key].get("Date"), locked_until)]
        if locked:
            report([entries_by_key[k] for k in sorted(removing)], "locked", f"{number}: a payment of it is dated on or "
                   f"before Xero's lock date {locked_until}; nothing of it was removed")
            continue
        removals[document_key] = [
            _Removal(entries_by_key[key].number, entries_by_key[key], on_xero.get(key), wanted.get(entries_by_key[key].number))
            for key in sorted(removing)
        ]

    stop: DailyLimitReached | None = None
    for document_key, items in removals.items():
        for item in items:
            if stop is None:
                try:
                    rows.append(_remove(client, ledger, document_key, item, policy.unknown_outcome_rounds))
                    continue
                except DailyLimitReached as error:
                    stop = error
            rows.append(_row(item.reference, document_key, item.entry.partition_key if item.entry else None,
                             _tender_of(item.reference), item.wanted.account_code if item.wanted else None,
                             item.entry.total_cents if item.entry else None, "remove", "failed", item.payment_id, None,
                             f"{item.reference} not removed: {stop}; the next run resumes here"))
    return _frame(rows)


def _remove(client: XeroClient, ledger: PostingLedger, document_key: str, item: _Removal, rounds: int) -> dict[str, Any]:
    """Take one payment of ours out of Xero; a lost answer is settled by reading the payment back."""
    entry = item.entry
    amount = entry.total_cents if entry else (item.wanted.amount_cents if item.wanted else None)
    xero_amount = _cents(item.xero.get("Amount")) if item.xero else None

    def row(outcome: str, message: str) -> dict[str, Any]:
        return _row(item.reference, document_key, entry.partition_key if entry else None, _tender_of(item.reference),
                    item.wanted.account_code if item.wanted else None, amount, "remove", outcome, item.payment_id,
                    xero_amount, message)

    def done(message: str) -> dict[str, Any]:
        if entry is not None:
            ledger.withdrawn(entry.document_key, "DELETED")
        return row("withdrawn", message)

    def unsettled(message: str) -> dict[str, Any]:
        # removed or not, nobody knows: the ledger must stop saying "paid", so that the next payment of it is
        # looked up in Xero (by Reference and document) before anything is taken as already there
        if entry is not None:
            ledger.unknown_many([entry.document_key], message)
        return row("unknown", message)

    if item.xero is None:
        return done(f"{item.reference} is not on its document in Xero any more: nothing to remove")
    payment_id = item.payment_id
    for attempt in range(max(rounds, 1)):
        try:
            client.delete_payment(payment_id)
            return done(f"{item.reference} removed ({payment_id}) so that its document can be changed or the payment made again")
        except (ReconnectRequired, DailyLimitReached):
            raise
        except XeroOutcomeUnknown as lost:
            try:
                now = client.payment(payment_id)
            except (ReconnectRequired, DailyLimitReached):
                raise
            except CALL_ERRORS as error:
                return unsettled(f"{item.reference}: the answer to its removal was lost ({lost}) and the lookup "
                                 f"failed ({error}); the next run looks again")
            if now is None or now.get("Status") == "DELETED":
                return done(f"{item.reference} removed ({payment_id}): confirmed by lookup after the answer was lost")
            continue  # still AUTHORISED: the removal did not go through; try again
        except XeroApiError as error:
            if error.status == 404:
                return done(f"{item.reference}: Xero no longer has payment {payment_id}")
            return row("failed", f"{item.reference} could not be removed: {'; '.join(error.messages) or error}")
        except CALL_ERRORS as error:
            return row("failed", f"{item.reference} could not be removed: {error}")
    return unsettled(f"{item.reference}: no answer from Xero to its removal after {rounds} attempts")


# -- paying ------------------------------------------------------------------------------------------

class _PaymentRun:
    def __init__(self, client: XeroClient, ledger: PostingLedger, rounds: int):
        self.client, self.ledger, self.rounds = client, ledger, rounds
        self.results: dict[str, dict[str, Any]] = {}
        self.document_ids: dict[str, tuple[str, str]] = {}  # reference -> (document endpoint, Xero id)
        self.sent: set[str] = set()  # references sent at least once in this run

    def result(self, payment: _Payment, action: str, outcome: str, message: str = "", xero: dict[str, Any] | None = None,
               xero_id: str | None = None) -> None:
        xero = xero or {}
        self.results[payment.reference] = _row(
            payment.reference, payment.document_key, payment.business_date, payment.tender_type, payment.account_code,
            payment.amount_cents, action, outcome, xero.get("PaymentID") or xero_id, _cents(xero.get("Amount")), message)

    def matches(self, payment: _Payment, xero: dict[str, Any]) -> bool:
        return (xero.get("Status") == "AUTHORISED" and _cents(xero.get("Amount")) == payment.amount_cents
                and _paid_document_id(xero) == self.document_ids[payment.reference][1].lower())

    def look_up(self, items: list[_Payment]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
        """Reference -> the AUTHORISED payments Xero holds under it; and references whose lookup failed."""
        found: dict[str, list[dict[str, Any]]] = {}
        failed: dict[str, str] = {}
        references = sorted({p.reference for p in items})
        for start in range(0, len(references), LOOKUP_CHUNK):
            chunk = references[start : start + LOOKUP_CHUNK]
            try:
                held = self.client.find_payments_by_reference(chunk)
            except ReconnectRequired:
                raise
            except CALL_ERRORS as error:
                failed.update({reference: f"the lookup in Xero failed: {error}" for reference in chunk})
                continue
            for reference in chunk:
                found[reference] = [p for p in held.get(reference, []) if p.get("Status") == "AUTHORISED"]
        return found, failed

    def settle(self, items: list[_Payment], after_loss: bool) -> list[_Payment]:
        """Look payments up by Reference: adopt the ones Xero holds as CI has them, refuse to send again
        under a Reference Xero holds otherwise; return those Xero does not hold (to send)."""
        found, failed = self.look_up(items)
        to_send: list[_Payment] = []
        adopted: list[tuple[_Payment, dict[str, Any]]] = []
        differing: list[tuple[str, str]] = []
        for payment in items:
            if payment.reference in failed:
                said = "the answer was lost and " if after_loss else ""
                self.result(payment, "look_up", "unknown", f"{payment.reference}: {said}{failed[payment.reference]}; "
                            "nothing more was sent for it (the next run looks it up before sending)")
                continue
            held = found.get(payment.reference, [])
            same = [p for p in held if self.matches(payment, p)]
            if same:
                adopted.append((payment, same[0]))
                extra = f"; Xero holds {len(same)} such payments under this Reference" if len(same) > 1 else ""
                self.result(payment, "adopt", "posted", ("confirmed by lookup after its answer was lost" if after_loss
                            else "found in Xero by its Reference") + extra, same[0])
            elif held:
                shown = ", ".join(f"{p.get('Amount')} on {_paid_document_id(p)}" for p in held[:3])
                message = (f"{payment.reference}: Xero already holds a payment under this Reference that is not this one "
                           f"({shown}); not sent, so nothing is paid twice. Remove it in Xero if it is wrong.")
                differing.append((payment.key, message))
                self.result(payment, "report", "failed", message, held[0])
            else:
                to_send.append(payment)
        for payment, xero in adopted:
            self.ledger.record_posted(payment.intent(), xero.get("PaymentID"), xero.get("Status"))
        self.ledger.failed_many(differing)
        return to_send

    def send(self, pending: list[_Payment]) -> None:
        for _round in range(max(self.rounds, 1)):
            if not pending:
                return
            self.ledger.intend([p.intent() for p in pending])
            self.sent.update(p.reference for p in pending)
            lost = self._send_batches(pending)
            if not lost:
                return
            pending = self.settle(lost, after_loss=True)
        for payment in pending:
            self.result(payment, "send", "unknown", f"{payment.reference}: no answer from Xero after {self.rounds} "
                        "attempts; the next run looks it up before sending again")

    def _send_batches(self, pending: list[_Payment]) -> list[_Payment]:
        size = self.client.batch_size
        batches = [pending[start : start + size] for start in range(0, len(pending), size)]
        lost: list[_Payment] = []
        stop: DailyLimitReached | None = None
        with ThreadPoolExecutor(max_workers=max(self.client.max_in_flight, 1)) as pool:
            futures = {}
            for batch in batches:
                keyed = [(p.key, p.body(*self.document_ids[p.reference])) for p in batch]
                futures[pool.submit(self.client.put_payments, keyed)] = batch
            for future in as_completed(futures):
                batch = futures[future]
                try:
                    outcomes = future.result()
                except XeroOutcomeUnknown as error:
                    self.ledger.unknown_many([p.key for p in batch], str(error))
                    lost += batch
                    continue
                except DailyLimitReached as error:
                    stop = error
                    for payment in batch:  # the ledger says intended: the next run looks them up first
                        self.result(payment, "send", "deferred", f"{payment.reference}: not sent: {error}; the next run resumes here")
                    continue
                except ReconnectRequired:
                    raise
                except CALL_ERRORS as error:
                    self.ledger.failed_many([(p.key, str(error)) for p in batch])
                    for payment in batch:
                        self.result(payment, "send", "failed", f"{payment.reference}: {error}")
                    continue
                by_key = {p.key: p for p in batch}
                posted, failed = [], []
                for outcome in outcomes:
                    payment = by_key[outcome.key]
                    if outcome.ok:
                        posted.append((payment.key, outcome.document.get("PaymentID"), outcome.document.get("Status") or "AUTHORISED"))
                        self.result(payment, "send", "posted", "", outcome.document)
                    else:
                        reason = "; ".join(outcome.messages) or "Xero refused it without a message"
                        failed.append((payment.key, reason))
                        self.result(payment, "send", "failed", f"{payment.reference}: {reason}")
                self.ledger.posted_many(posted)
                self.ledger.failed_many(failed)
        if stop is not None:  # no more calls today: what was lost stays intended, looked up first next run
            for payment in lost:
                self.result(payment, "send", "unknown", f"{payment.reference}: the answer was lost and {stop}; the "
                            "next run looks it up before sending again")
            return []
        return lost


def post_payments(
    client: XeroClient,
    ledger: PostingLedger,
    payments: pd.DataFrame,
    document_results: pd.DataFrame,
    locked_until: date | None,
    rounds: int = 5,
) -> pd.DataFrame:
    """Pay each wanted payment whose document post_documents holds in Xero as CI has it (its result row
    has an outcome in posting.GOOD_OUTCOMES other than withdrawn, and a Xero id), exactly once. One row
    per payment, in the frame's order (PAYMENT_RESULT_COLUMNS); outcomes posted, already_posted, failed,
    unknown, locked, not_sent."""
    process = _process_of(ledger)
    wanted = _wanted(payments, process)
    if not wanted:
        return _frame([])
    documents = {r.document_key: r for r in document_results.itertuples(index=False)}
    entries = ledger.entries([p.key for p in wanted.values()])
    run = _PaymentRun(client, ledger, rounds)
    to_look_up: list[_Payment] = []
    to_send: list[_Payment] = []
    for payment in wanted.values():
        entry = entries.get(payment.key)
        document = documents.get(payment.document_key)
        if entry is not None and entry.state == POSTED and payment.same_as(entry):
            if document is not None and document.outcome in NEW_IN_XERO:
                # the document went into Xero in this run (a first post, or a revision): it carries none of our
                # payments, so the ledger's "paid" belongs to an earlier document. Look it up on this one.
                entry = dataclasses.replace(entry, state=INTENDED)
            else:
                run.result(payment, "nothing", "already_posted", xero_id=entry.xero_id)
                continue
        if document is None:
            run.result(payment, "report", "not_sent", f"{payment.reference}: its document {payment.document_number} "
                       "was not posted in this run; not paid")
            continue
        outcome, xero_id = document.outcome, document.xero_id
        if outcome not in PAYABLE_DOCUMENT_OUTCOMES or not isinstance(xero_id, str) or not xero_id:
            why = f"it is {outcome}" + (f": {document.message}" if isinstance(document.message, str) and document.message else "")
            run.result(payment, "report", "not_sent", f"{payment.reference}: its document {document.number} is not in "
                       f"Xero as CI has it ({why}); not paid")
            continue
        if document.endpoint != payment.document_endpoint:
            run.result(payment, "report", "not_sent", f"{payment.reference} pays a document of {payment.document_endpoint}, "
                       f"but {document.number} is posted to {document.endpoint}; not paid")
            continue
        if entry is not None and entry.state == POSTED:
            run.result(payment, "report", "not_sent", f"{payment.reference}: its earlier version is still in Xero "
                       f"({entry.xero_id}, {cents_to_decimal(entry.total_cents)}); release_payments removes it before "
                       "the new one is made", xero_id=entry.xero_id)
            continue
        if _locked(payment.business_date, locked_until):
            run.result(payment, "report", "locked", f"{payment.reference} is dated {payment.business_date}, on or "
                       f"before Xero's lock date {locked_until}; not paid. Ask the accountant to move the lock date.")
            continue
        run.document_ids[payment.reference] = (document.endpoint, xero_id)
        (to_look_up if entry is not None and entry.state in (INTENDED, FAILED) else to_send).append(payment)
    try:
        if to_look_up:
            to_send += run.settle(to_look_up, after_loss=False)
        run.send(to_send)
    except DailyLimitReached as stop:  # raised by a lookup: no more calls today
        for payment in to_look_up + to_send:
            if payment.reference in run.results:
                continue
            if payment.reference in run.sent:  # its answer was lost: the ledger says intended, looked up next run
                run.result(payment, "send", "unknown", f"{payment.reference}: the answer was lost and {stop}; the next "
                           "run looks it up before sending again")
            else:
                run.result(payment, "send", "deferred", f"{payment.reference}: not sent: {stop}; the next run resumes here")
    return _frame([run.results[reference] for reference in wanted])


def post_documents_and_payments(
    client: XeroClient, ledger: PostingLedger, documents: pd.DataFrame, payments: pd.DataFrame,
    partitions: Sequence[str], policy: PostingPolicy, evidence: SourceEvidence, locked_until: date | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A process's posting, in its order: our payments of documents about to change come off first (Xero
    changes no paid document), then the documents (posting.post_documents), then their payments. `ledger` is
    the process's document ledger (PostingLedger(process=…)); its payments live in payment_ledger(ledger, …).
    Returns the documents' results (posting.RESULT_COLUMNS) and the payments' (PAYMENT_RESULT_COLUMNS)."""
    payments_of = payment_ledger(ledger, ledger.process)
    released = release_payments(client, payments_of, payments, documents, locked_until,
                                partitions=partitions, evidence=evidence, policy=policy)
    results = post_documents(client, ledger, documents, partitions, policy, evidence)
    paid = post_payments(client, payments_of, payments, results, locked_until)
    return results, pd.concat([frame for frame in (released, paid) if len(frame)] or [paid], ignore_index=True)
