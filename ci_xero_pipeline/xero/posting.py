"""Posting documents to Xero exactly once, and changing the books only on evidence.

Two phases. `plan_posting` only reads (the ledger, the organisation's lock date, lookups in Xero) and
decides for each document what to do and why; `ci-xero plan` prints that plan. `post_documents` carries
it out; one document's refusal, fault or lost answer is recorded against that document (outcome, Xero's
words) and everything else goes on.

The rules of the plan:
- The ledger says what was posted before. A document whose accounting content (ledger.accounting_content)
  is unchanged is done, whatever its wording. A document the ledger knows only as intended or failed is
  looked up in Xero before anything is sent again; so is every new credit note. A new invoice goes out
  without a lookup: Xero refuses a second sales invoice under a number it holds, and the refusal is
  looked up (already there, or someone else's: `differs`, never recorded as ours).
- Absence is not evidence. A posted document is taken back only when the source positively says so:
  every source document behind it is withdrawn (VOID in CI). A day for which the source returned fewer
  of the documents the ledger holds as posted is stopped whole (`stopped`), unless the site set
  `missing_source: withdraw`. A posted document whose new version the source holds back (quarantined,
  not final) stays in Xero (`kept`). A source document already in another live Xero document is never
  posted twice (`conflict`).
- Nothing dated on or before the organisation's lock date is voided, deleted or edited (`locked`), and
  nothing is taken back when its replacement could not be posted. A document with payments or credits
  applied in Xero is never touched (`paid`).
- Changes: a DRAFT or SUBMITTED document is updated in place; an AUTHORISED one is voided and posted
  again as the next revision (`<number>-R1`, …) or, with `credit_note`, reversed by a credit note
  (`<number>-CN<revision>`) and posted again; a credit note is voided and posted again.
- Sending: each document is recorded `intended` before the call, sent 50 to a request with several
  requests in flight under the organisation's pacer; a batch whose answer is lost is looked up, and
  what Xero does not hold is sent again as the same batch with the same Idempotency-Key.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import pandas as pd
import requests

from ..money import cents_to_decimal, decimal_to_cents
from .client import DocumentOutcome, XeroApiError, XeroClient, XeroOutcomeUnknown, parse_xero_date
from .ledger import (
    FAILED, INTENDED, POSTED, WITHDRAWN, Intent, LedgerEntry, PostingLedger, content_hash, hash_is_current,
)
from .oauth import ReconnectRequired
from .pacing import DailyLimitReached
from .kinds import KINDS, Hint, find, kind_of
from .reconcile import tracking_of

ID_FIELD = {name: kind.id_field for name, kind in KINDS.items()}
# The documents this layer takes are opaque: document_key, business_date (the partition), branch_code, endpoint,
# number, status, total_cents, tax_cents, payload, and SOURCE_KEYS, the keys of the source documents behind each
# (what a withdrawal or a conflict is judged by). Which source, and how its rows map to the keys, is the caller's.
SOURCE_KEYS = "source_keys"
LOOKUP_CHUNK = 50  # numbers per lookup call: one failed lookup leaves only its own documents unknown

RESULT_COLUMNS = [
    "document_key", "business_date", "branch_code", "endpoint", "number", "revision", "action", "outcome",
    "xero_id", "xero_status", "total_cents", "tax_cents", "xero_total_cents", "xero_tax_cents", "attempts",
    "message", SOURCE_KEYS,
]
PLAN_COLUMNS = ["business_date", "document_key", "number", "action", "outcome", "reason"]

# Xero holds the document as CI has it
GOOD_OUTCOMES = {"posted", "already_posted", "updated", "reposted", "withdrawn"}
# not in Xero as it must be, and a re-run may fix it: the posted partition fails
FAILED_OUTCOMES = {"failed", "unknown", "deferred", "stopped"}
# in Xero otherwise than CI, by a rule a person must act on
# (changed_in_xero: a bill CI changed after it went to Xero for approval; never overwritten, processes.md §3)
REPORTED_OUTCOMES = {"locked", "differs", "paid", "kept", "conflict", "changed_in_xero"}
# errors that belong to one call, hence to its documents; anything else stops the run
CALL_ERRORS = (XeroApiError, requests.RequestException)

GONE = ("VOIDED", "DELETED")


@dataclass(frozen=True)
class PostingPolicy:
    authorised_changes: Literal["void_and_repost", "credit_note"] = "void_and_repost"
    # a day whose source read returned fewer documents than the ledger holds as posted: stop it, or
    # take the missing ones as withdrawn
    missing_source: Literal["stop", "withdraw"] = "stop"
    # lookups and resends of batches whose answer was lost, within one run
    unknown_outcome_rounds: int = 5


@dataclass(frozen=True)
class SourceEvidence:
    """What the source said about the partitions, so a document is taken back only on its word.

    returned: per partition, the keys of every source document the read returned (any status);
    withdrawn: keys the source positively withdrew (VOID); held_back: key → why the source's current
    version cannot be posted (quarantined, not final)."""

    returned: Mapping[str, frozenset[str]] = field(default_factory=dict)
    withdrawn: frozenset[str] = frozenset()
    held_back: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, documents: pd.DataFrame) -> "SourceEvidence":
        """Evidence that says no more than the documents do: nothing withdrawn, nothing held back."""
        returned: dict[str, set[str]] = defaultdict(set)
        for day, keys in zip(documents["business_date"], documents[SOURCE_KEYS]):
            returned[day].update(keys)
        return cls({day: frozenset(keys) for day, keys in returned.items()})


def revision_number(number: str, revision: int) -> str:
    return number if revision == 0 else f"{number}-R{revision}"


def lock_date(organisation: dict[str, Any]) -> date | None:
    dates = [parse_xero_date(organisation.get(name)) for name in ("PeriodLockDate", "EndOfYearLockDate")]
    dates = [d for d in dates if d]
    return max(dates) if dates else None


def _amounts(xero_document: dict[str, Any], endpoint: str = "Invoices") -> tuple[int | None, int | None]:
    return kind_of(endpoint).amounts(xero_document)


def _present(xero: dict[str, Any] | None) -> bool:
    """Xero holds the document in the books (a voided or deleted one is not there)."""
    return xero is not None and xero.get("Status") not in GONE


def _payments_applied(xero: dict[str, Any]) -> bool:
    paid = decimal_to_cents(xero.get("AmountPaid") or 0)
    credited = decimal_to_cents(xero.get("AmountCredited") or 0)
    # a credit note allocated to an invoice (in part or in full) is applied too: Xero changes neither until
    # the allocation is removed (xero-facts.md, credit note allocations)
    remaining, total = xero.get("RemainingCredit"), xero.get("Total")
    allocated = bool(xero.get("Allocations")) or (
        remaining is not None and total is not None and decimal_to_cents(remaining) != decimal_to_cents(total)
        and xero.get("Status") in ("AUTHORISED", "PAID"))
    return paid != 0 or credited != 0 or allocated or bool(xero.get("Payments")) or xero.get("Status") == "PAID"


def _xero_date(xero: dict[str, Any]) -> date | None:
    return parse_xero_date(xero.get("Date") or xero.get("DateString"))


@dataclass
class Step:
    """What the plan does with one document, and why."""

    key: str
    action: str  # nothing, adopt, rehash, create, update, void/delete/credit (+ _and_repost), mark_withdrawn, report, stop, unknown
    outcome: str  # the outcome when done as planned
    reason: str = ""
    revision: int = 0  # the revision to create, or the one Xero holds
    xero: dict[str, Any] | None = None
    entry: LedgerEntry | None = None


@dataclass
class Plan:
    steps: dict[str, Step]  # the documents given, by key
    gone: dict[str, Step]  # ledger documents of the partitions the documents no longer include
    locked_until: date | None

    def frame(self, documents: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for document in documents.itertuples(index=False):
            step = self.steps[document.document_key]
            rows.append((document.business_date, document.document_key, revision_number(document.number, step.revision),
                         step.action, step.outcome, step.reason))
        for step in self.gone.values():
            rows.append((step.entry.partition_key, step.key, step.entry.number, step.action, step.outcome, step.reason))
        return pd.DataFrame(rows, columns=PLAN_COLUMNS)


class _Documents:
    """The documents frame by key, with each one's accounting-content hash."""

    def __init__(self, documents: pd.DataFrame):
        self.rows = {d.document_key: d for d in documents.itertuples(index=False)}
        self.hashes = {key: content_hash(d.payload) for key, d in self.rows.items()}

    def intent(self, key: str, revision: int) -> Intent:
        document = self.rows[key]
        return Intent(
            document_key=key, endpoint=document.endpoint, number=revision_number(document.number, revision),
            revision=revision, content_hash=self.hashes[key], total_cents=int(document.total_cents),
            tax_cents=int(document.tax_cents), partition_key=document.business_date,
            source_keys=tuple(getattr(document, SOURCE_KEYS)),
        )

    def payload(self, key: str, revision: int) -> dict[str, Any]:
        document = self.rows[key]
        if revision == 0:
            return document.payload
        return kind_of(document.endpoint).with_identity(document.payload, revision_number(document.number, revision))

    def hint(self, key: str, revision: int, xero_id: str | None = None, day: str | None = None) -> Hint:
        days = tuple(d for d in dict.fromkeys((self.rows[key].business_date, day)) if d)
        return Hint(self.payload(key, revision), xero_id, days)

    def matches(self, key: str, xero: dict[str, Any]) -> bool:
        document = self.rows[key]
        if _amounts(xero, document.endpoint) != (int(document.total_cents), int(document.tax_cents)):
            return False
        if kind_of(document.endpoint).changes == "report":  # a bill is found by its day and Url: its supplier too
            wanted, held = document.payload.get("Contact") or {}, xero.get("Contact") or {}
            return any(wanted.get(field) and wanted.get(field) == held.get(field) for field in ("ContactID", "ContactNumber"))
        return True

    def equal_in_xero(self, key: str, xero: dict[str, Any]) -> bool:
        """Xero's document is this one as the reconciliation sees it: total, tax and tracking."""
        payload = self.rows[key].payload
        lines = "JournalLines" if self.rows[key].endpoint == "ManualJournals" else "LineItems"
        return self.matches(key, xero) and tracking_of(xero.get(lines) or []).casefold() == tracking_of(
            payload.get(lines) or []
        ).casefold()

    def differs_message(self, key: str, xero: dict[str, Any], number: str) -> str:
        document = self.rows[key]
        if xero.get("Status") in GONE:
            return (f"{number} is held by a {xero.get('Status')} document in Xero; it was not posted again "
                    "(a voided number is not reused). Decide in Xero whether it should be there.")
        return (f"{number} is already in Xero with total {xero.get('Total')} and tax {xero.get('TotalTax')}; "
                f"CI says {cents_to_decimal(document.total_cents)} and {cents_to_decimal(document.tax_cents)}. "
                "It was not posted by this pipeline, and was left alone.")


def _lookup(
    client: XeroClient, wanted: Iterable[tuple[str, str]], hints: Mapping[tuple[str, str], Hint] | None = None,
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], str]]:
    """(endpoint, number) → the document Xero holds (an active one before a voided one); and the
    (endpoint, number) pairs whose lookup failed, with why. One failed call costs only its chunk. `hints`
    give what a kind whose number is not its Xero number is found by (kinds.py: a bill's supplier and
    number from its payload, or the id the ledger holds)."""
    hints = hints or {}
    by_endpoint: dict[str, set[str]] = defaultdict(set)
    for endpoint, number in wanted:
        by_endpoint[endpoint].add(number)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    failed: dict[tuple[str, str], str] = {}
    for endpoint, numbers in sorted(by_endpoint.items()):
        ordered = sorted(numbers)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start : start + LOOKUP_CHUNK]
            try:
                held = find(client, kind_of(endpoint), chunk, {n: hints[(endpoint, n)] for n in chunk if (endpoint, n) in hints})
            except ReconnectRequired:
                raise
            except LookupError as error:
                failed.update({(endpoint, number): f"it cannot be looked up: {error}" for number in chunk})
                continue
            except CALL_ERRORS as error:
                failed.update({(endpoint, number): f"the lookup in Xero failed: {error}" for number in chunk})
                continue
            for number, document in held.items():
                found[(endpoint, number)] = document
    return found, failed


def plan_posting(
    client: XeroClient,
    ledger: PostingLedger,
    documents: pd.DataFrame,
    partitions: Sequence[str] = (),
    evidence: SourceEvidence | None = None,
    policy: PostingPolicy = PostingPolicy(),
) -> Plan:
    """Decide what to do with each document (and with the partitions' posted documents the source no
    longer makes), reading only: nothing is written to Xero or to the ledger."""
    return _plan(client, ledger, _Documents(documents), partitions, evidence or SourceEvidence.from_documents(documents), policy)


def _plan(
    client: XeroClient, ledger: PostingLedger, docs: _Documents, partitions: Sequence[str],
    evidence: SourceEvidence, policy: PostingPolicy,
) -> Plan:
    entries = ledger.entries(list(docs.rows))
    partition_entries = ledger.entries_for_partitions(list(partitions)) if partitions else {}
    live = {**partition_entries, **entries}
    gone_entries = {k: e for k, e in partition_entries.items() if k not in docs.rows and e.state in (POSTED, INTENDED)}
    locked_until = lock_date(client.organisation()) if docs.rows or gone_entries else None
    stopped = _days_with_missing_sources(partition_entries, evidence, policy)
    owner = {source: key for key, entry in live.items() if entry.state in (POSTED, INTENDED)
             for source in (entry.source_keys or ())}
    withdrawn = set(evidence.withdrawn)
    if policy.missing_source == "withdraw":
        for entry in partition_entries.values():
            withdrawn.update(k for k in entry.source_keys or () if k not in evidence.returned.get(entry.partition_key, ()))

    steps: dict[str, Step] = {}
    gone: dict[str, Step] = {}
    to_look_up: list[tuple[str, str, str, bool]] = []  # (key, endpoint, number, gone?)

    def locked_new(key: str) -> str | None:
        document = docs.rows[key]
        if (locked_until and document.status in kind_of(document.endpoint).approved
                and date.fromisoformat(document.business_date) <= locked_until):
            return (f"{document.number} is dated {document.business_date}, on or before Xero's lock date {locked_until}; "
                    "not posted. Post it as DRAFT or ask the accountant to move the lock date.")
        return None

    def create(key: str, revision: int) -> Step:
        problem = locked_new(key)
        if problem:
            return Step(key, "report", "locked", problem, revision, entry=entries.get(key))
        return Step(key, "create", "reposted" if revision else "posted", "new in CI" if revision == 0 and key not in entries
                    else "not in Xero yet", revision, entry=entries.get(key))

    for key, document in docs.rows.items():
        entry = entries.get(key)
        if document.business_date in stopped:
            steps[key] = Step(key, "stop", "stopped", stopped[document.business_date], entry.revision if entry else 0, entry=entry)
        elif entry is None:
            clash = sorted({owner[s] for s in getattr(document, SOURCE_KEYS) if owner.get(s, key) != key})
            if clash:
                steps[key] = Step(key, "report", "conflict", f"{document.number}: its CI documents are already in Xero "
                                  f"as {', '.join(live[k].number for k in clash)}; not posted twice (did a setting such as "
                                  "mode or summary_grouping change?)")
            elif kind_of(document.endpoint).unique_numbers:  # Xero refuses a second one: no lookup needed
                steps[key] = create(key, 0)
            else:
                to_look_up.append((key, document.endpoint, document.number, False))
        elif entry.state == WITHDRAWN:
            steps[key] = create(key, entry.revision + 1)
        elif entry.state == POSTED and hash_is_current(entry.content_hash) and entry.content_hash == docs.hashes[key]:
            steps[key] = Step(key, "nothing", "already_posted", "", entry.revision, entry=entry)
        elif entry.state == POSTED and hash_is_current(entry.content_hash) and _held(entry, evidence):
            steps[key] = Step(key, "report", "kept", _kept_message(entry, evidence), entry.revision, entry=entry)
        else:
            to_look_up.append((key, entry.endpoint, entry.number, False))
    for key, entry in gone_entries.items():
        if entry.partition_key in stopped:
            gone[key] = Step(key, "stop", "stopped", stopped[entry.partition_key], entry.revision, entry=entry)
        elif entry.source_keys is None:
            gone[key] = Step(key, "report", "kept", f"{entry.number}: CI no longer makes it, and the ledger has no record "
                             "of its CI documents; left in Xero", entry.revision, entry=entry)
        elif _held(entry, evidence):
            gone[key] = Step(key, "report", "kept", _kept_message(entry, evidence), entry.revision, entry=entry)
        elif entry.source_keys and all(k in withdrawn for k in entry.source_keys):
            to_look_up.append((key, entry.endpoint, entry.number, True))
        else:
            gone[key] = Step(key, "report", "kept", f"{entry.number}: CI's documents behind it are final but no longer "
                             "make this document (a setting changed?); left in Xero", entry.revision, entry=entry)

    hints: dict[tuple[str, str], Hint] = {}
    for key, endpoint, number, is_gone in to_look_up:
        entry = gone_entries[key] if is_gone else entries.get(key)
        xero_id = entry.xero_id if entry else None
        hints[(endpoint, number)] = (Hint(xero_id=xero_id, days=(entry.partition_key,)) if is_gone
                                     else docs.hint(key, entry.revision if entry else 0, xero_id, entry.partition_key if entry else None))
    found, failed = _lookup(client, ((endpoint, number) for _key, endpoint, number, _gone in to_look_up), hints)
    for key, endpoint, number, is_gone in to_look_up:
        entry = entries.get(key) if not is_gone else gone_entries[key]
        if (endpoint, number) in failed:
            step = Step(key, "unknown", "unknown", f"{number}: {failed[(endpoint, number)]}; nothing was sent for it",
                        entry.revision if entry else 0, entry=entry)
        elif is_gone:
            step = _plan_take_back(entry, found.get((endpoint, number)), locked_until, policy, repost=False)
        else:
            step = _plan_known(key, entry, found.get((endpoint, number)), docs, locked_until, policy, create)
        (gone if is_gone else steps)[key] = step
    return Plan(steps, gone, locked_until)


def _held(entry: LedgerEntry, evidence: SourceEvidence) -> bool:
    return any(k in evidence.held_back for k in entry.source_keys or ())


def _kept_message(entry: LedgerEntry, evidence: SourceEvidence) -> str:
    reasons = [f"{k}: {evidence.held_back[k]}" for k in entry.source_keys or () if k in evidence.held_back]
    return (f"{entry.number} stays in Xero as posted; CI's new version is held back ({'; '.join(reasons[:5])}"
            + (f"; +{len(reasons) - 5} more" if len(reasons) > 5 else "") + ")")


def _days_with_missing_sources(entries: dict[str, LedgerEntry], evidence: SourceEvidence, policy: PostingPolicy) -> dict[str, str]:
    """Days whose read returned fewer source documents than the ledger holds as (possibly) posted."""
    if policy.missing_source == "withdraw":
        return {}
    held: dict[str, set[str]] = defaultdict(set)
    documents: dict[str, int] = defaultdict(int)
    for entry in entries.values():
        if entry.state in (POSTED, INTENDED):
            held[entry.partition_key].update(entry.source_keys or ())
            documents[entry.partition_key] += 1
    stopped = {}
    for day, keys in held.items():
        returned = evidence.returned.get(day, frozenset())
        missing = sorted(keys - returned)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            stopped[day] = (
                f"{day} stopped: CI returned {len(returned)} document(s) for the day, but the ledger holds "
                f"{documents[day]} Xero document(s) posted from {len(keys)} CI document(s), {len(missing)} of which "
                f"CI did not return ({shown}). A missing document is not a voided one: nothing of the day was sent, "
                "changed or taken back. Check the CI database and its views; if CI really no longer has them, "
                "set missing_source: withdraw for this process and re-run."
            )
    return stopped


def _plan_known(
    key: str, entry: LedgerEntry | None, xero: dict[str, Any] | None, docs: _Documents, locked_until: date | None,
    policy: PostingPolicy, create: Callable[[str, int], Step],
) -> Step:
    """A document the ledger knows (or a new credit note), now that Xero's copy is known."""
    number = entry.number if entry else docs.rows[key].number
    revision = entry.revision if entry else 0
    if entry is None or entry.state in (INTENDED, FAILED):
        if xero is None:
            return create(key, revision)
        if _present(xero) and docs.matches(key, xero):
            confirmed = entry is not None and entry.state == INTENDED
            return Step(key, "adopt", "posted" if confirmed else "already_posted",
                        "confirmed by lookup after an earlier answer was lost" if confirmed else "found in Xero as CI has it",
                        revision, xero, entry)
        ours_before = entry is not None and _present(xero) and _amounts(xero, entry.endpoint) == (entry.total_cents, entry.tax_cents)
        if not ours_before:
            return Step(key, "report", "differs", docs.differs_message(key, xero, number), revision, xero, entry)
        # our earlier version (sent, answer lost, then CI changed it): judged as a change below
    elif entry.state == POSTED and not hash_is_current(entry.content_hash):
        if _present(xero) and docs.equal_in_xero(key, xero):
            return Step(key, "rehash", "already_posted", "hashed under an older content version; Xero holds CI's "
                        "document", revision, xero, entry)
    return _plan_change(key, entry, xero, docs, locked_until, policy, create)


def _plan_change(
    key: str, entry: LedgerEntry, xero: dict[str, Any] | None, docs: _Documents, locked_until: date | None,
    policy: PostingPolicy, create: Callable[[str, int], Step],
) -> Step:
    """A posted document whose accounting content CI changed."""
    kind = kind_of(entry.endpoint)
    if kind.changes == "report":
        return Step(key, "report", "changed_in_xero", _changed_bill_message(entry, xero, docs.rows[key]),
                    entry.revision, xero, entry)
    if not _present(xero):
        step = create(key, entry.revision + 1)
        if step.action == "create":
            step.reason = f"{entry.number} is {xero.get('Status') if xero else 'missing'} in Xero; CI has it"
        return step
    if _xero_date(xero) and locked_until and _xero_date(xero) <= locked_until:
        return Step(key, "report", "locked", f"{entry.number} is dated {_xero_date(xero)}, on or before Xero's lock date "
                    f"{locked_until}; CI changed it after posting and it was left as it is (site policy: report). Adjust "
                    "it in an open period.", entry.revision, xero, entry)
    replacement = create(key, entry.revision + 1)
    if replacement.action != "create":
        return Step(key, "report", "locked", replacement.reason + f" {entry.number} was left as it is.", entry.revision, xero, entry)
    if _payments_applied(xero):
        return Step(key, "report", "paid", f"{entry.number} has payments or credits applied in Xero ({xero.get('Status')}, "
                    f"paid {xero.get('AmountPaid', 0)}); CI changed it after posting. It was not touched: a person must "
                    "adjust it in Xero (a credit note).", entry.revision, xero, entry)
    status = xero.get("Status")
    if status in kind.editable and entry.endpoint == docs.rows[key].endpoint:
        return Step(key, "update", "updated", f"{entry.number} is a {status} in Xero: updated in place", entry.revision, xero, entry)
    take_back = _plan_take_back(entry, xero, locked_until, policy, repost=True)
    take_back.key = key
    return take_back


def _plan_take_back(entry: LedgerEntry, xero: dict[str, Any] | None, locked_until: date | None, policy: PostingPolicy, repost: bool) -> Step:
    """Void, delete or reverse a posted document (and post its next revision when `repost`)."""
    key, revision = entry.document_key, entry.revision
    if not _present(xero):
        return Step(key, "mark_withdrawn", "withdrawn", f"{entry.number} is {xero.get('Status') if xero else 'not'} in Xero",
                    revision, xero, entry)
    if _xero_date(xero) and locked_until and _xero_date(xero) <= locked_until:
        return Step(key, "report", "locked", f"{entry.number} is dated {_xero_date(xero)}, on or before Xero's lock date "
                    f"{locked_until}; CI voided it, and it was left in Xero (site policy: report). Reverse it in an open "
                    "period.", revision, xero, entry)
    if _payments_applied(xero):
        return Step(key, "report", "paid", f"{entry.number} has payments or credits applied in Xero; CI "
                    f"{'changed' if repost else 'voided'} it. It was not touched: a person must adjust it in Xero.",
                    revision, xero, entry)
    kind = kind_of(entry.endpoint)
    if kind.changes == "report" and _amounts(xero, entry.endpoint) != (entry.total_cents, entry.tax_cents):
        return Step(key, "report", "changed_in_xero", f"{entry.number}: CI voided it, but Xero holds it otherwise than it was "
                    f"posted (total {xero.get('Total')}, {xero.get('Status')}): edited during approval. It was left in Xero "
                    "for the payables clerk.", revision, xero, entry)
    status = xero.get("Status")
    if status in ("DRAFT", "SUBMITTED"):
        action = "delete"
    elif status in ("AUTHORISED", "POSTED"):
        action = "credit" if entry.endpoint == "Invoices" and policy.authorised_changes == "credit_note" else "void"
    else:
        return Step(key, "report", "differs", f"{entry.number} is {status} in Xero; it was not changed", revision, xero, entry)
    why = "CI changed it after posting" if repost else "CI voided it"
    if repost:
        return Step(key, f"{action}_and_repost", "reposted", f"{why}: {action} {entry.number}, post "
                    f"{revision_number(_base_number(entry), revision + 1)}", revision + 1, xero, entry)
    return Step(key, action, "withdrawn", f"{why}: {action} {entry.number}", revision, xero, entry)


def _changed_bill_message(entry: LedgerEntry, xero: dict[str, Any] | None, document: Any) -> str:
    held = (f"Xero holds it {xero.get('Status')} with total {xero.get('Total')}" if _present(xero)
            else f"it is {xero.get('Status') if xero else 'no longer'} in Xero")
    return (f"{entry.number}: CI changed it after it went to Xero for approval (CI now: total "
            f"{cents_to_decimal(int(document.total_cents))}, tax {cents_to_decimal(int(document.tax_cents))}; posted: total "
            f"{cents_to_decimal(entry.total_cents)}); {held}. It was not overwritten: the payables clerk brings the bill "
            "in Xero to CI's figures, or CI back to the bill's.")


def _base_number(entry: LedgerEntry) -> str:
    suffix = f"-R{entry.revision}"
    return entry.number[: -len(suffix)] if entry.revision and entry.number.endswith(suffix) else entry.number


def reversing_credit_note(invoice: dict[str, Any], number: str) -> dict[str, Any]:
    """A credit note that cancels an AUTHORISED invoice line for line (amounts and tax as Xero holds them)."""
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


# -- carrying the plan out ----------------------------------------------------------------------

class _Run:
    """One call of post_documents: the plan, and the results so far."""

    def __init__(self, client: XeroClient, ledger: PostingLedger, docs: _Documents, plan: Plan, policy: PostingPolicy):
        self.client, self.ledger, self.docs, self.plan, self.policy = client, ledger, docs, plan, policy
        self.results: dict[str, dict[str, Any]] = {}
        self.sent: dict[str, int] = {}  # attempts made in this run
        self.answer_lost: set[str] = set()  # keys sent in this run whose answer never came

    def step(self, key: str) -> Step:
        return self.plan.steps.get(key) or self.plan.gone[key]

    def result(self, key: str, outcome: str, message: str = "", xero: dict[str, Any] | None = None, revision: int | None = None) -> None:
        step = self.step(key)
        entry = step.entry
        document = self.docs.rows.get(key)
        revision = step.revision if revision is None else revision
        xero = xero or step.xero or {}
        endpoint = document.endpoint if document is not None else entry.endpoint
        xero_total, xero_tax = _amounts(xero, endpoint) if xero else (None, None)
        self.results[key] = {
            "document_key": key,
            "business_date": document.business_date if document is not None else entry.partition_key,
            "branch_code": document.branch_code if document is not None else None,
            "endpoint": endpoint,
            "number": revision_number(document.number, revision) if document is not None else entry.number,
            "revision": revision,
            "action": step.action,
            "outcome": outcome,
            "xero_id": xero.get(ID_FIELD[endpoint]) or (entry.xero_id if entry else None),
            "xero_status": xero.get("Status") or (entry.xero_status if entry else None),
            "total_cents": int(document.total_cents) if document is not None else 0,
            "tax_cents": int(document.tax_cents) if document is not None else 0,
            "xero_total_cents": xero_total,
            "xero_tax_cents": xero_tax,
            "attempts": (entry.attempts if entry else 0) + self.sent.get(key, 0),
            "message": message or step.reason,
            SOURCE_KEYS: tuple(getattr(document, SOURCE_KEYS)) if document is not None else tuple(entry.source_keys or ()),
        }

    # -- sending new documents and revisions ---------------------------------------------------
    def send(self, pending: list[tuple[str, int]]) -> None:
        """Create the pending documents, resolving lost answers by lookup, for a bounded number of rounds."""
        docs = self.docs
        for _round in range(self.policy.unknown_outcome_rounds):
            if not pending:
                return
            self.ledger.intend([docs.intent(key, revision) for key, revision in pending])
            for key, _revision in pending:
                self.sent[key] = self.sent.get(key, 0) + 1
            lost = self._send_batches(self._batches(pending))
            if not lost:
                return
            number_of = {key: revision_number(docs.rows[key].number, revision) for key, revision in lost}
            found, failed = _lookup(self.client, ((docs.rows[k].endpoint, number_of[k]) for k, _r in lost),
                                    {(docs.rows[k].endpoint, number_of[k]): docs.hint(k, r) for k, r in lost})
            pending, confirmed, not_ours = [], [], []
            for key, revision in lost:
                where = (docs.rows[key].endpoint, number_of[key])
                xero = found.get(where)
                if where in failed:
                    # still unknown: the ledger says `intended`, so the next run looks it up before sending
                    self.result(key, "unknown", f"{number_of[key]}: the answer was lost and {failed[where]}; the next "
                                "run looks it up before sending again", revision=revision)
                elif xero is None:
                    pending.append((key, revision))
                elif not _present(xero) or not docs.matches(key, xero):
                    message = docs.differs_message(key, xero, number_of[key])
                    not_ours.append((key, message))
                    self.result(key, "differs", message, xero, revision)
                else:
                    confirmed.append((key, xero.get(ID_FIELD[docs.rows[key].endpoint]), xero.get("Status")))
                    entry = self.step(key).entry
                    if key in self.answer_lost or (entry is not None and entry.state == INTENDED):
                        self.result(key, "reposted" if revision else "posted", "confirmed by lookup after its answer "
                                    "was lost", xero, revision)
                    else:
                        self.result(key, "already_posted", "already in Xero: found by its number when Xero refused "
                                    "it as a duplicate", xero, revision)
            self.ledger.posted_many(confirmed)
            self.ledger.failed_many(not_ours)  # never recorded as ours: the next run says `differs` again
        for key, revision in pending:
            self.result(key, "unknown", f"{revision_number(docs.rows[key].number, revision)}: no answer from Xero after "
                        f"{self.policy.unknown_outcome_rounds} attempts; the next run looks it up before sending again",
                        revision=revision)

    def _batches(self, pending: list[tuple[str, int]]) -> list[tuple[str, list[tuple[str, int]]]]:
        batches = []
        by_endpoint: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for key, revision in pending:
            by_endpoint[self.docs.rows[key].endpoint].append((key, revision))
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
                pool.submit(self.client.put_batch, kind_of(endpoint).path,
                            [(key, self.docs.payload(key, revision)) for key, revision in batch]): batch
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
                except ReconnectRequired:
                    raise
                except CALL_ERRORS as error:
                    self.ledger.failed_many([(key, str(error)) for key, _revision in batch])
                    for key, revision in batch:
                        self.result(key, "failed", f"{revision_number(self.docs.rows[key].number, revision)}: {error}", revision=revision)
                    continue
                self._record(outcomes, revisions, lost)
        if daily_limit is not None:
            raise daily_limit
        return lost

    def _record(self, outcomes: Sequence[DocumentOutcome], revisions: dict[str, int], lost: list[tuple[str, int]]) -> None:
        posted, failed = [], []
        for outcome in outcomes:
            key, revision = outcome.key, revisions[outcome.key]
            number = revision_number(self.docs.rows[key].number, revision)
            if outcome.ok:
                posted.append((key, outcome.document.get(ID_FIELD[self.docs.rows[key].endpoint]), outcome.document.get("Status")))
                self.result(key, "reposted" if revision else "posted", _warnings(outcome), outcome.document, revision)
            elif any("must be unique" in message for message in outcome.messages):
                # the number is taken: most likely by our own earlier attempt whose answer was lost
                lost.append((key, revision))
            else:
                reason = "; ".join(outcome.messages) or "Xero reported an error without a message"
                failed.append((key, reason))
                self.result(key, "failed", f"{number}: {reason}", revision=revision)
        self.ledger.posted_many(posted)
        self.ledger.failed_many(failed)

    # -- changes to documents already in Xero ----------------------------------------------------
    def calls(self, endpoint: str, method: str, items: list[tuple[str, dict[str, Any]]]) -> dict[str, DocumentOutcome | str]:
        """Send (key, element) pairs in batches; each key's outcome, or why its call gave none (a
        string starting 'lost:' when the answer was lost)."""
        answers: dict[str, DocumentOutcome | str] = {}
        for start in range(0, len(items), self.client.batch_size):
            batch = items[start : start + self.client.batch_size]
            try:
                for outcome in self.client.put_batch(endpoint, batch, method=method):
                    answers[outcome.key] = outcome
            except (ReconnectRequired, DailyLimitReached):
                raise
            except XeroOutcomeUnknown as error:
                answers.update({key: f"lost: {error}" for key, _element in batch})
            except CALL_ERRORS as error:
                answers.update({key: str(error) for key, _element in batch})
        return answers

    def take_back(self, steps: list[Step]) -> list[tuple[str, int]]:
        """Void, delete or reverse documents; those that are out of the books and must be posted again
        are returned as (key, revision). A failure stays with its document; nothing is reposted for it."""
        status_changes: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        reversals: list[tuple[str, dict[str, Any]]] = []
        for step in steps:
            entry, xero = step.entry, step.xero
            kind = step.action.removesuffix("_and_repost")
            if kind == "credit":
                reversals.append((step.key, reversing_credit_note(xero, f"{_base_number(entry)}-CN{entry.revision + 1}")))
            else:
                wanted = "VOIDED" if kind == "void" else "DELETED"
                status_changes[entry.endpoint].append((step.key, {ID_FIELD[entry.endpoint]: xero[ID_FIELD[entry.endpoint]], "Status": wanted}))
        answers: dict[str, DocumentOutcome | str] = {}
        for endpoint, items in sorted(status_changes.items()):
            answers.update(self.calls(kind_of(endpoint).path, "POST", items))
        answers.update(self.calls("CreditNotes", "PUT", reversals))

        # a lost answer is settled by looking again: out of the books (or the reversal there) is done
        lost = [step for step in steps if isinstance(answers.get(step.key), str) and answers[step.key].startswith("lost:")]
        recheck = {}
        for step in lost:
            if step.action.startswith("credit"):
                recheck[step.key] = ("CreditNotes", f"{_base_number(step.entry)}-CN{step.entry.revision + 1}")
            else:
                recheck[step.key] = (step.entry.endpoint, step.entry.number)
        ids = {where: Hint(xero_id=(step.xero or {}).get(ID_FIELD[step.entry.endpoint]) or step.entry.xero_id,
                           days=(step.entry.partition_key,))
               for step in lost for where in [recheck[step.key]]}
        found, failed = _lookup(self.client, recheck.values(), ids) if recheck else ({}, {})

        repost: list[tuple[str, int]] = []
        for step in steps:
            entry, answer = step.entry, answers.get(step.key)
            done, why = False, ""
            if isinstance(answer, DocumentOutcome):
                done = answer.ok or (step.action.startswith("credit") and any("must be unique" in m for m in answer.messages))
                why = "; ".join(answer.messages)
            elif step.key in recheck:
                where = recheck[step.key]
                xero = found.get(where)
                if where in failed:  # unsettled: neither taken back nor known to be there
                    why = f"the answer was lost and {failed[where]}"
                elif step.action.startswith("credit"):
                    done, why = _present(xero), f"the answer was lost and the credit note {where[1]} is not in Xero"
                else:  # a lookup that finds nothing under the number: deleted (Xero lists voided ones)
                    done, why = not _present(xero), f"the answer was lost and {entry.number} is still {xero.get('Status') if xero else ''} in Xero"
            else:
                why = answer or "no answer"
            if not done:
                outcome = "unknown" if step.key in recheck and recheck[step.key] in failed else "failed"
                self.result(step.key, outcome, f"{entry.number} could not be taken back ({step.action}): {why}. It is "
                            "still in Xero as posted; nothing was reposted for it.", revision=entry.revision)
            elif step.action.endswith("_and_repost"):
                repost.append((step.key, step.revision))
            else:
                status = "VOIDED" if step.action == "void" else "DELETED" if step.action == "delete" else entry.xero_status
                self.ledger.withdrawn(step.key, status)
                self.result(step.key, "withdrawn", f"{entry.number} taken back ({step.action}): CI voided it")
        return repost

    def update(self, steps: list[Step]) -> None:
        """DRAFT or SUBMITTED documents updated in place. An update sent twice is harmless, so the
        ledger is written only once Xero has it."""
        if not steps:
            return
        items_by_endpoint: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for step in steps:
            endpoint = step.entry.endpoint
            payload = {**self.docs.payload(step.key, step.entry.revision), ID_FIELD[endpoint]: step.xero[ID_FIELD[endpoint]]}
            items_by_endpoint[endpoint].append((step.key, payload))
        answers: dict[str, DocumentOutcome | str] = {}
        for endpoint, items in sorted(items_by_endpoint.items()):
            answers.update(self.calls(kind_of(endpoint).path, "POST", items))
        lost = {s.key for s in steps if isinstance(answers.get(s.key), str) and answers[s.key].startswith("lost:")}
        found, failed = (_lookup(self.client, ((s.entry.endpoint, s.entry.number) for s in steps if s.key in lost),
                                 {(s.entry.endpoint, s.entry.number): self.docs.hint(s.key, s.entry.revision, s.entry.xero_id, s.entry.partition_key)
                                  for s in steps if s.key in lost})
                         if lost else ({}, {}))
        for step in steps:
            entry, answer = step.entry, answers.get(step.key)
            if isinstance(answer, DocumentOutcome) and answer.ok:
                xero: dict[str, Any] | None = answer.document
            elif step.key in lost and _present(found.get((entry.endpoint, entry.number))) and self.docs.matches(step.key, found[(entry.endpoint, entry.number)]):
                xero = found[(entry.endpoint, entry.number)]
            else:
                why = "; ".join(answer.messages) if isinstance(answer, DocumentOutcome) else (answer or "no answer")
                self.result(step.key, "unknown" if step.key in lost else "failed", f"{entry.number} could not be updated: {why}. "
                            "Xero still holds the earlier version.", revision=entry.revision)
                continue
            self.ledger.record_posted(self.docs.intent(step.key, entry.revision), xero.get(ID_FIELD[entry.endpoint]), xero.get("Status"))
            self.result(step.key, "updated", f"{entry.number} updated in place (it was a {step.xero.get('Status')})", xero, entry.revision)


def _warnings(outcome: DocumentOutcome) -> str:
    warnings = [w.get("Message", "") for w in outcome.document.get("Warnings") or [] if isinstance(w, dict)]
    return ("Xero warned: " + "; ".join(warnings)) if warnings else ""


def post_documents(
    client: XeroClient,
    ledger: PostingLedger,
    documents: pd.DataFrame,
    partitions: Sequence[str] = (),
    policy: PostingPolicy = PostingPolicy(),
    evidence: SourceEvidence | None = None,
) -> pd.DataFrame:
    """Bring Xero to the documents as the plan says: one result row per document (plus the partitions'
    posted documents the source no longer makes), in document order. Outcomes: GOOD_OUTCOMES,
    FAILED_OUTCOMES, REPORTED_OUTCOMES."""
    docs = _Documents(documents)
    plan = _plan(client, ledger, docs, partitions, evidence or SourceEvidence.from_documents(documents), policy)
    run = _Run(client, ledger, docs, plan, policy)
    try:
        _carry_out(run)
    except DailyLimitReached as stop:
        for key in list(plan.steps) + list(plan.gone):
            if key not in run.results:
                run.result(key, "deferred", f"not sent: {stop}; the next run resumes here")
    rows = [run.results[key] for key in documents["document_key"]] + [run.results[key] for key in plan.gone]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _carry_out(run: _Run) -> None:
    steps = list(run.plan.steps.values()) + list(run.plan.gone.values())
    by_action: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        by_action[step.action].append(step)
    for step in by_action["nothing"] + by_action["report"] + by_action["stop"] + by_action["unknown"]:
        run.result(step.key, step.outcome, step.reason)
    for step in by_action["adopt"]:
        endpoint = run.docs.rows[step.key].endpoint
        run.ledger.record_posted(run.docs.intent(step.key, step.revision), step.xero.get(ID_FIELD[endpoint]), step.xero.get("Status"))
        run.result(step.key, step.outcome, step.reason)
    for step in by_action["rehash"]:
        document = run.docs.rows[step.key]
        run.ledger.rehash(step.key, run.docs.hashes[step.key], tuple(getattr(document, SOURCE_KEYS)))
        run.result(step.key, "already_posted", step.reason)
    for step in by_action["mark_withdrawn"]:
        run.ledger.withdrawn(step.key, step.xero.get("Status") if step.xero else None)
        run.result(step.key, "withdrawn", step.reason)
    take_backs = [s for s in steps if s.action in ("void", "delete", "credit", "void_and_repost", "delete_and_repost", "credit_and_repost")]
    pending = [(s.key, s.revision) for s in by_action["create"]]
    pending += run.take_back(take_backs)
    run.update(by_action["update"])
    run.send(pending)
