"""Posting documents to Xero exactly once, under any fault.

1. The ledger says what was posted before. A document posted with the same payload is done (no call);
   one posted with another payload was changed in CI after posting and follows the change policy.
2. Every document whose last attempt failed or ended without an answer is looked up in Xero by its
   number first: an unknown outcome is resolved before anything is sent again. So is every new credit
   note. A new invoice is sent without a lookup: Xero refuses a second sales invoice under a number it
   holds, and such a refusal is resolved by the same lookup (already there, or someone else's: `differs`).
3. The rest is recorded in the ledger as `intended` (committed) and sent, 50 to a request, several
   requests in flight under the organisation's pacer. A batch whose answer is lost is looked up
   again; what Xero does not hold is sent again as the same batch, with the same Idempotency-Key, so a
   request still in flight at Xero is replayed, not duplicated.

Changes after posting (policy): a DRAFT is updated in place; an AUTHORISED invoice is voided and posted
again as the next revision (`<number>-R1`, …) or, with `credit_note`, reversed by a credit note
(`<number>-CN<revision>`) and posted again; a credit note is always voided and posted again. A document
with payments applied is never touched: it is reported for a person. A posted document that CI no
longer has (voided in CI) is deleted (DRAFT), voided or reversed the same way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Literal, Sequence

import pandas as pd
import requests

from ..money import cents_to_decimal, decimal_to_cents
from .client import DocumentOutcome, XeroApiError, XeroClient, XeroOutcomeUnknown, parse_xero_date
from .ledger import FAILED, INTENDED, POSTED, WITHDRAWN, Intent, LedgerEntry, PostingLedger, payload_hash
from .pacing import DailyLimitReached

NUMBER_FIELD = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
ID_FIELD = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID"}

RESULT_COLUMNS = [
    "document_key", "business_date", "branch_code", "endpoint", "number", "revision", "outcome", "xero_id",
    "xero_status", "total_cents", "tax_cents", "xero_total_cents", "xero_tax_cents", "attempts", "message",
    "ci_invoice_nos",
]

# Xero holds the document as CI has it
GOOD_OUTCOMES = {"posted", "already_posted", "updated", "reposted", "withdrawn"}
# not in Xero, and it must be: the posted partition fails, and a re-run posts what is missing
FAILED_OUTCOMES = {"failed", "unknown", "deferred"}
# in Xero otherwise than CI, by a rule a person must act on (lock date, payments applied)
REPORTED_OUTCOMES = {"locked", "differs"}


@dataclass(frozen=True)
class PostingPolicy:
    authorised_changes: Literal["void_and_repost", "credit_note"] = "void_and_repost"
    # lookups and resends of batches whose answer was lost, within one run
    unknown_outcome_rounds: int = 5


def revision_number(number: str, revision: int) -> str:
    return number if revision == 0 else f"{number}-R{revision}"


def lock_date(organisation: dict[str, Any]) -> date | None:
    dates = [parse_xero_date(organisation.get(name)) for name in ("PeriodLockDate", "EndOfYearLockDate")]
    dates = [d for d in dates if d]
    return max(dates) if dates else None


def _amounts(xero_document: dict[str, Any]) -> tuple[int | None, int | None]:
    total, tax = xero_document.get("Total"), xero_document.get("TotalTax")
    return (
        decimal_to_cents(total) if total is not None else None,
        decimal_to_cents(tax) if tax is not None else None,
    )


def _unpaid(xero_document: dict[str, Any]) -> bool:
    paid = xero_document.get("AmountPaid") or 0
    credited = xero_document.get("AmountCredited") or 0
    return decimal_to_cents(paid) == 0 and decimal_to_cents(credited) == 0


class _Run:
    """One call of post_documents: the documents, their ledger rows, and the results so far."""

    def __init__(self, client: XeroClient, ledger: PostingLedger, documents: pd.DataFrame, policy: PostingPolicy):
        self.client, self.ledger, self.policy = client, ledger, policy
        self.documents = {d.document_key: d for d in documents.itertuples(index=False)}
        self.hashes = {key: payload_hash(d.payload) for key, d in self.documents.items()}
        self.entries = ledger.entries(list(self.documents))
        self.results: dict[str, dict[str, Any]] = {}
        self.sent: dict[str, int] = {}  # attempts made in this run
        self.extra_results: list[dict[str, Any]] = []  # withdrawn documents (no longer in CI)
        self.answer_lost: set[str] = set()  # keys sent in this run whose answer never came

    # -- results --------------------------------------------------------------------------------
    def result(self, key: str, outcome: str, message: str = "", xero: dict[str, Any] | None = None, revision: int = 0) -> None:
        document = self.documents[key]
        xero = xero or {}
        xero_total, xero_tax = _amounts(xero) if xero else (None, None)
        entry = self.entries.get(key)
        self.results[key] = {
            "document_key": key,
            "business_date": document.business_date,
            "branch_code": document.branch_code,
            "endpoint": document.endpoint,
            "number": revision_number(document.number, revision),
            "revision": revision,
            "outcome": outcome,
            "xero_id": xero.get(ID_FIELD[document.endpoint]) or (entry.xero_id if entry else None),
            "xero_status": xero.get("Status") or (entry.xero_status if entry else None),
            "total_cents": int(document.total_cents),
            "tax_cents": int(document.tax_cents),
            "xero_total_cents": xero_total,
            "xero_tax_cents": xero_tax,
            "attempts": (entry.attempts if entry else 0) + self.sent.get(key, 0),
            "message": message,
            "ci_invoice_nos": document.ci_invoice_nos,
        }

    def intent(self, key: str, revision: int) -> Intent:
        document = self.documents[key]
        return Intent(
            document_key=key, endpoint=document.endpoint, number=revision_number(document.number, revision),
            revision=revision, payload_hash=self.hashes[key], total_cents=int(document.total_cents),
            tax_cents=int(document.tax_cents), partition_key=document.business_date,
        )

    def payload(self, key: str, revision: int) -> dict[str, Any]:
        document = self.documents[key]
        if revision == 0:
            return document.payload
        return {**document.payload, NUMBER_FIELD[document.endpoint]: revision_number(document.number, revision)}

    def matches(self, key: str, xero: dict[str, Any]) -> bool:
        document = self.documents[key]
        return _amounts(xero) == (int(document.total_cents), int(document.tax_cents))

    def differs_message(self, key: str, xero: dict[str, Any]) -> str:
        document = self.documents[key]
        return (f"{document.number} is already in Xero with total {xero.get('Total')} and tax {xero.get('TotalTax')}; "
                f"CI says {cents_to_decimal(document.total_cents)} and {cents_to_decimal(document.tax_cents)}. "
                "It was not posted by this pipeline's ledger.")

    # -- lookups --------------------------------------------------------------------------------
    def lookup(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """(endpoint, number) → the document Xero holds, for those it holds."""
        by_endpoint: dict[str, set[str]] = {}
        for endpoint, number in wanted:
            by_endpoint.setdefault(endpoint, set()).add(number)
        found = {}
        for endpoint, numbers in sorted(by_endpoint.items()):
            for number, document in self.client.find_by_number(endpoint, numbers).items():
                found[(endpoint, number)] = document
        return found

    # -- sending --------------------------------------------------------------------------------
    def send(self, pending: list[tuple[str, int]]) -> None:
        """Create the pending documents, resolving lost answers by lookup, for a bounded number of rounds."""
        for _round in range(self.policy.unknown_outcome_rounds):
            if not pending:
                return
            self.ledger.intend([self.intent(key, revision) for key, revision in pending])
            for key, _revision in pending:
                self.sent[key] = self.sent.get(key, 0) + 1
            lost = self._send_batches(self._batches(pending))
            if not lost:
                return
            try:
                found = self.lookup((self.documents[k].endpoint, revision_number(self.documents[k].number, r)) for k, r in lost)
            except (XeroApiError, requests.RequestException) as error:
                # still unknown: the ledger says `intended`, so the next run looks them up before sending
                for key, revision in lost:
                    self.result(key, "unknown", f"{revision_number(self.documents[key].number, revision)}: the answer "
                                f"was lost and the lookup failed too ({error}); the next run looks it up before sending "
                                "again", revision=revision)
                return
            pending, confirmed, not_ours = [], [], []
            for key, revision in lost:
                xero = found.get((self.documents[key].endpoint, revision_number(self.documents[key].number, revision)))
                if xero is None:
                    pending.append((key, revision))
                elif not self.matches(key, xero):
                    not_ours.append(key)  # ours would match: Xero holds someone else's document
                    self.result(key, "differs", self.differs_message(key, xero), xero, revision)
                else:
                    confirmed.append((key, xero.get(ID_FIELD[self.documents[key].endpoint]), xero.get("Status")))
                    entry = self.entries.get(key)
                    if key in self.answer_lost or (entry is not None and entry.state == INTENDED):
                        self.result(key, "posted", "confirmed by lookup after its answer was lost", xero, revision)
                    else:
                        self.result(key, "already_posted", "already in Xero: found by its number when Xero "
                                    "refused it as a duplicate", xero, revision)
            self.ledger.posted_many(confirmed)
            self.ledger.forget(not_ours)
        for key, revision in pending:
            self.result(key, "unknown", f"{revision_number(self.documents[key].number, revision)}: no answer from Xero after "
                        f"{self.policy.unknown_outcome_rounds} attempts; the next run looks it up before sending again", revision=revision)

    def _batches(self, pending: list[tuple[str, int]]) -> list[tuple[str, list[tuple[str, int]]]]:
        batches = []
        by_endpoint: dict[str, list[tuple[str, int]]] = {}
        for key, revision in pending:
            by_endpoint.setdefault(self.documents[key].endpoint, []).append((key, revision))
        for endpoint, items in sorted(by_endpoint.items()):
            for start in range(0, len(items), self.client.batch_size):
                batches.append((endpoint, items[start : start + self.client.batch_size]))
        return batches

    def _send_batches(self, batches: list[tuple[str, list[tuple[str, int]]]]) -> list[tuple[str, int]]:
        """Send batches, several in flight; record each document's outcome; return those whose answer was lost."""
        lost: list[tuple[str, int]] = []
        daily_limit: DailyLimitReached | None = None
        with ThreadPoolExecutor(max_workers=self.client.max_in_flight) as pool:
            futures = {
                pool.submit(self.client.put_batch, endpoint, [(key, self.payload(key, revision)) for key, revision in batch]): batch
                for endpoint, batch in batches
            }
            for future in as_completed(futures):
                batch = futures[future]
                revisions = dict(batch)
                try:
                    outcomes = future.result()
                except XeroOutcomeUnknown as error:
                    self.ledger.unknown_many([key for key, _revision in batch], str(error))
                    self.answer_lost.update(key for key, _revision in batch)
                    lost += batch
                    continue
                except DailyLimitReached as error:
                    daily_limit = error
                    for key, revision in batch:
                        self.result(key, "deferred", f"not sent: {error}; the next run resumes here", revision=revision)
                    continue
                except XeroApiError as error:
                    self.ledger.failed_many([(key, str(error)) for key, _revision in batch])
                    for key, revision in batch:
                        self.result(key, "failed", f"{revision_number(self.documents[key].number, revision)}: {error}", revision=revision)
                    continue
                self._record(outcomes, revisions, lost)
        if daily_limit is not None:
            raise daily_limit
        return lost

    def _record(self, outcomes: Sequence[DocumentOutcome], revisions: dict[str, int], lost: list[tuple[str, int]]) -> None:
        posted, failed = [], []
        for outcome in outcomes:
            key, revision = outcome.key, revisions[outcome.key]
            number = revision_number(self.documents[key].number, revision)
            if outcome.ok:
                posted.append((key, outcome.document.get(ID_FIELD[self.documents[key].endpoint]), outcome.document.get("Status")))
                self.result(key, "reposted" if revision else "posted", xero=outcome.document, revision=revision)
            elif any("must be unique" in message for message in outcome.messages):
                # the number is taken: most likely by our own earlier attempt whose answer was lost
                lost.append((key, revision))
            else:
                reason = "; ".join(outcome.messages) or "Xero reported an error without a message"
                failed.append((key, reason))
                self.result(key, "failed", f"{number}: {reason}", revision=revision)
        self.ledger.posted_many(posted)
        self.ledger.failed_many(failed)

    # -- changes after posting ----------------------------------------------------------------------
    def take_back(self, endpoint: str, xero: dict[str, Any], number: str, revision: int) -> str | None:
        """Remove a posted document from the books the way its status allows. Returns a problem, or None."""
        status = xero.get("Status")
        document_id = xero.get(ID_FIELD[endpoint])
        if status in ("DRAFT", "SUBMITTED"):
            self._set_status(endpoint, document_id, "DELETED")
            return None
        if status != "AUTHORISED" or not _unpaid(xero):
            return (f"{number} is {status} in Xero with payments or credits applied; CI changed it after posting. "
                    "A person must adjust it in Xero (a credit note).")
        if endpoint == "Invoices" and self.policy.authorised_changes == "credit_note":
            reversal = reversing_credit_note(xero, f"{number}-CN{revision}")
            outcome = self.client.put_batch("CreditNotes", [(f"{number}-CN", reversal)])[0]
            if not outcome.ok and not any("must be unique" in m for m in outcome.messages):
                return f"{number}: the reversing credit note was refused: {'; '.join(outcome.messages)}"
            return None
        self._set_status(endpoint, document_id, "VOIDED")
        return None

    def _set_status(self, endpoint: str, document_id: str, status: str) -> None:
        outcome = self.client.put_batch(endpoint, [("status", {ID_FIELD[endpoint]: document_id, "Status": status})], method="POST")[0]
        if not outcome.ok:
            raise XeroApiError(400, f"Xero refused to set {status}", outcome.messages)


def reversing_credit_note(invoice: dict[str, Any], number: str) -> dict[str, Any]:
    """A credit note that cancels an AUTHORISED invoice line for line (amounts as Xero holds them)."""
    lines = []
    for line in invoice.get("LineItems") or []:
        reversed_line = {
            "Description": line.get("Description") or "Reversal",
            "Quantity": 1,
            "UnitAmount": line["LineAmount"],
            "LineAmount": line["LineAmount"],
            "AccountCode": line.get("AccountCode"),
            "TaxType": line.get("TaxType"),
            "TaxAmount": line.get("TaxAmount"),
        }
        if line.get("Tracking"):
            reversed_line["Tracking"] = [{"Name": t["Name"], "Option": t["Option"]} for t in line["Tracking"]]
        lines.append(reversed_line)
    return {
        "Type": "ACCRECCREDIT",
        "CreditNoteNumber": number,
        "Reference": f"Reverses {invoice.get('InvoiceNumber')}",
        "Contact": {"ContactID": invoice["Contact"]["ContactID"]},
        "Date": parse_xero_date(invoice.get("Date")).isoformat(),
        "LineAmountTypes": invoice.get("LineAmountTypes", "Inclusive"),
        "Status": "AUTHORISED",
        "LineItems": lines,
    }


def post_documents(
    client: XeroClient,
    ledger: PostingLedger,
    documents: pd.DataFrame,
    partitions: Sequence[str] = (),
    policy: PostingPolicy = PostingPolicy(),
) -> pd.DataFrame:
    """Bring Xero to the documents: one result row per document (plus documents withdrawn from the
    partitions), in document order. Outcomes: see GOOD_OUTCOMES, FAILED_OUTCOMES, REPORTED_OUTCOMES."""
    run = _Run(client, ledger, documents, policy)
    try:
        _post(run, partitions)
    except DailyLimitReached as stop:
        for key in run.documents:
            if key not in run.results:
                run.result(key, "deferred", f"not sent: {stop}; the next run resumes here")
    rows = [run.results[key] for key in documents["document_key"]] + run.extra_results
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _post(run: _Run, partitions: Sequence[str]) -> None:
    client, ledger = run.client, run.ledger
    locked_until = lock_date(client.organisation()) if run.documents else None

    unsure: list[str] = []  # not known as posted: Xero may hold them anyway
    changed: list[tuple[str, LedgerEntry]] = []
    for key, entry in run.entries.items():
        if entry.state == POSTED and entry.payload_hash == run.hashes[key]:
            run.result(key, "already_posted", revision=entry.revision)
        elif entry.state == POSTED:
            changed.append((key, entry))
    for key in run.documents:
        entry = run.entries.get(key)
        if entry is None or entry.state in (INTENDED, FAILED):
            unsure.append(key)
        elif entry.state == WITHDRAWN:
            changed.append((key, entry))  # back in CI after being withdrawn: a new revision

    def number_of(key: str) -> str:
        entry = run.entries.get(key)
        return entry.number if entry else run.documents[key].number

    def needs_lookup(key: str) -> bool:
        # Xero refuses a second sales invoice under a number it holds, so an invoice the ledger has never
        # seen goes straight out and a "must be unique" refusal is looked up then: one call saved per
        # hundred documents. Credit note numbers carry no such promise: they are looked up first.
        return key in run.entries or run.documents[key].endpoint != "Invoices"

    found = run.lookup((run.documents[k].endpoint, number_of(k)) for k in unsure if needs_lookup(k))
    pending: list[tuple[str, int]] = []
    for key in unsure:
        document, entry = run.documents[key], run.entries.get(key)
        revision = entry.revision if entry else 0
        xero = found.get((document.endpoint, number_of(key)))
        if xero is not None:
            if run.matches(key, xero):
                ledger.adopt(run.intent(key, revision), xero.get(ID_FIELD[document.endpoint]), xero.get("Status"))
                confirmed = entry is not None and entry.state == INTENDED
                run.result(key, "posted" if confirmed else "already_posted",
                           "confirmed by lookup after an earlier answer was lost" if confirmed else "", xero, revision)
            elif entry is not None:
                ledger.adopt(run.intent(key, revision), xero.get(ID_FIELD[document.endpoint]), xero.get("Status"))
                changed.append((key, run.ledger.entries([key])[key]))
            else:
                run.result(key, "differs", run.differs_message(key, xero), xero)
            continue
        if locked_until is not None and document.status == "AUTHORISED" and date.fromisoformat(document.business_date) <= locked_until:
            run.result(key, "locked", f"{document.number} is dated {document.business_date}, on or before Xero's lock date "
                       f"{locked_until}; not posted. Post it as DRAFT or ask the accountant to move the lock date.")
            continue
        pending.append((key, revision))

    pending += _apply_changes(run, changed)
    _withdraw(run, partitions)
    run.send(pending)


def _apply_changes(run: _Run, changed: list[tuple[str, LedgerEntry]]) -> list[tuple[str, int]]:
    """Documents CI changed after posting: update drafts in place; take back and re-post the others."""
    if not changed:
        return []
    current = run.lookup((entry.endpoint, entry.number) for _key, entry in changed)
    resend: list[tuple[str, int]] = []
    for key, entry in changed:
        document = run.documents[key]
        xero = current.get((entry.endpoint, entry.number))
        if entry.state == WITHDRAWN or xero is None or xero.get("Status") in ("VOIDED", "DELETED"):
            resend.append((key, entry.revision + 1))
            continue
        if xero.get("Status") in ("DRAFT", "SUBMITTED") and document.status == "DRAFT":
            update = {**run.payload(key, entry.revision), ID_FIELD[entry.endpoint]: xero[ID_FIELD[entry.endpoint]]}
            run.ledger.intend([run.intent(key, entry.revision)])
            outcome = run.client.put_batch(entry.endpoint, [(key, update)], method="POST")[0]
            if outcome.ok:
                run.ledger.posted(key, outcome.document.get(ID_FIELD[entry.endpoint]), outcome.document.get("Status"))
                run.result(key, "updated", f"{entry.number} updated in place (it was a DRAFT)", outcome.document, entry.revision)
            else:
                run.ledger.failed(key, "; ".join(outcome.messages))
                run.result(key, "failed", f"{entry.number}: {'; '.join(outcome.messages)}", revision=entry.revision)
            continue
        problem = run.take_back(entry.endpoint, xero, entry.number, entry.revision + 1)
        if problem:
            run.result(key, "differs", problem, xero, entry.revision)
        else:
            resend.append((key, entry.revision + 1))
    return resend


def _withdraw(run: _Run, partitions: Sequence[str]) -> None:
    """Posted documents of these partitions that CI no longer has (voided in CI): take them back."""
    if not partitions:
        return
    gone = {key: entry for key, entry in run.ledger.entries_for_partitions(list(partitions)).items()
            if key not in run.documents and entry.state == POSTED}
    if not gone:
        return
    current = run.lookup((entry.endpoint, entry.number) for entry in gone.values())
    for key, entry in gone.items():
        xero = current.get((entry.endpoint, entry.number))
        problem = None
        if xero is not None and xero.get("Status") not in ("VOIDED", "DELETED"):
            problem = run.take_back(entry.endpoint, xero, entry.number, entry.revision + 1)
        if problem is None:
            run.ledger.withdrawn(key, "VOIDED" if xero is None else xero.get("Status"))
        run.extra_results.append({
            "document_key": key, "business_date": entry.partition_key, "branch_code": None, "endpoint": entry.endpoint,
            "number": entry.number, "revision": entry.revision, "outcome": "differs" if problem else "withdrawn",
            "xero_id": entry.xero_id, "xero_status": xero.get("Status") if xero else None,
            "total_cents": 0, "tax_cents": 0, "xero_total_cents": None, "xero_tax_cents": None,
            "attempts": entry.attempts, "message": problem or f"{entry.number} taken back: CI no longer has it",
            "ci_invoice_nos": [],
        })
