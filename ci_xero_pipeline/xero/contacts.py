"""The contacts a process's documents need, in Xero exactly once, found by ContactNumber and never by name.

Pure Xero: knows a frame of wanted contacts, never CI or Dagster. A process's posting step goes

    results = ensure_contacts(client, contact_ledger(document_ledger, process), wanted)
    ready, missing = with_contact_ids(documents, contact_ids(results), contact_messages(results))

and posts `ready` (each payload's Contact now names its contact by ContactID); `missing` are the documents
whose contact is not in Xero, each with the contact's own message in `contact_message`.

Rules:
- A contact's key is its ContactNumber (the CI customer or supplier code). Names are not a key: two CI
  customers may share a name, and a contact someone renamed in Xero is still the same contact.
- Every wanted number is looked up first (`where=ContactNumber=="A" OR …`, 25 to a call, archived contacts
  included). One active contact with the number: it is used, whatever its name. Only archived ones: the
  contact is `failed` ("archived in Xero: restore it"), never created again beside the archived one. Several
  active ones: `failed` (a person merges them). A contact this pipeline created that no longer carries its
  number is read back by its id: `failed` too, so a renumbered contact is never duplicated.
- Creating: each is recorded `intended` in the ledger (`<process>-contact/<number>`) before its batch goes
  (PUT /Contacts, summarizeErrors=false, the client's Idempotency-Key). A name Xero refuses as taken by
  another contact (a look-alike customer, distinct in CI) is sent again as "<name> [<number>]". A batch
  whose answer is lost is looked up by ContactNumber; only what Xero does not hold is sent again, for a
  bounded number of rounds.

Outcomes: found, created (in Xero; `contact_id` set), failed (Xero refused, or a person must act first),
unknown (the answer and the lookup were lost: the next run looks up before creating), deferred (Xero's
daily limit: the next run resumes).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pandas as pd

from ..money import dumps_exact
from .client import DocumentOutcome, XeroClient, XeroOutcomeUnknown, where_text
from .ledger import CONTENT_VERSION, INTENDED, POSTED, Intent, LedgerEntry, PostingLedger
from .oauth import ReconnectRequired
from .pacing import DailyLimitReached
from .posting import CALL_ERRORS

CONTACT_RESULT_COLUMNS = ["contact_number", "name_sent", "contact_id", "outcome", "message"]
WANTED_CONTACT_COLUMNS = ["contact_number", "name", "email", "role", "source_keys", "business_date"]
CONTACTS = "Contacts"
CONTACT_PROCESS_SUFFIX = "-contact"
CONTACT_NAME_LIMIT = 255  # Xero's Contact.Name
CONTACT_NUMBER_LIMIT = 50  # Xero's Contact.ContactNumber
NUMBERS_PER_LOOKUP = 25  # `ContactNumber=="…" OR …` clauses per call
GOOD_CONTACT_OUTCOMES = {"found", "created"}
# Xero: "The contact name X is already assigned to another contact. The contact name must be unique …"
_NAME_TAKEN = re.compile(r"already assigned to another contact|name must be unique|already exists", re.IGNORECASE)


def contact_ledger_key(process: str, number: str) -> str:
    return f"{process}{CONTACT_PROCESS_SUFFIX}/{number}"


def contact_ledger(document_ledger: PostingLedger, process: str) -> PostingLedger:
    """The ledger of the contacts a process created: the document ledger's table, site, organisation and
    run, scoped to `<process>-contact`."""
    return PostingLedger(document_ledger.engine, document_ledger.tenant_id, document_ledger.run_id,
                         site=document_ledger.site, process=f"{process}{CONTACT_PROCESS_SUFFIX}")


def _process_of(ledger: PostingLedger) -> str:
    if not ledger.process or not ledger.process.endswith(CONTACT_PROCESS_SUFFIX):
        raise ValueError(f"{ledger!r} is not a contact ledger: pass PostingLedger(..., process=f\"{{process}}"
                         f"{CONTACT_PROCESS_SUFFIX}\") (contact_ledger(document_ledger, process) makes one)")
    return ledger.process[: -len(CONTACT_PROCESS_SUFFIX)]


def _fold(number: str) -> str:
    return number.casefold()  # Xero compares ContactNumbers without regard to case


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN: absent
        return ""
    return " ".join(str(value).split())


def name_with_number(name: str, number: str) -> str:
    """The name a look-alike gets: "<name> [<number>]", the name cut so the whole fits Xero's 255."""
    suffix = f" [{number}]"
    return name[: CONTACT_NAME_LIMIT - len(suffix)].rstrip() + suffix


def _content_hash(number: str, name: str) -> str:
    content = {"version": CONTENT_VERSION, "number": number, "name": name}
    return f"{CONTENT_VERSION}:{hashlib.sha256(dumps_exact(content).encode()).hexdigest()}"


@dataclass
class _Contact:
    """One wanted contact and what became of it in this call."""

    number: str
    name: str
    email: str
    role: str
    source_keys: tuple[str, ...]
    business_date: str
    key: str
    note: str = ""  # said in the result's message whatever the outcome (e.g. a name cut to fit)
    name_sent: str | None = None
    renamed: bool = False  # already sent as "<name> [<number>]"
    lost: bool = False  # an answer about it was lost in this call
    created_here: bool = False
    result: dict[str, Any] | None = None

    def intent(self) -> Intent:
        return Intent(document_key=self.key, endpoint=CONTACTS, number=self.number, revision=0,
                      content_hash=_content_hash(self.number, self.name_sent or self.name), total_cents=0, tax_cents=0,
                      partition_key=self.business_date, source_keys=self.source_keys)

    def body(self) -> dict[str, Any]:
        body = {"Name": self.name_sent or self.name, "ContactNumber": self.number}
        if self.email:
            body["EmailAddress"] = self.email
        return body

    def report(self, outcome: str, message: str = "", contact_id: str | None = None, name: str | None = None) -> None:
        message = "; ".join(part for part in (message, self.note) if part)
        self.result = {"contact_number": self.number, "name_sent": name if name is not None else self.name_sent,
                       "contact_id": contact_id, "outcome": outcome, "message": message}


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in CONTACT_RESULT_COLUMNS})
    return pd.DataFrame(rows, columns=CONTACT_RESULT_COLUMNS)


def _keys_of(value: Any) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _wanted(wanted: pd.DataFrame, process: str) -> tuple[list[_Contact], list[dict[str, Any]]]:
    """One contact per ContactNumber (the source keys of its rows merged, the first row's name, e-mail and
    earliest day kept); and the result rows of the ones refused before any call."""
    missing = [c for c in ("contact_number", "name") if c not in wanted.columns]
    if missing:
        raise ValueError(f"the wanted contacts lack the columns {missing} (expected {WANTED_CONTACT_COLUMNS})")
    contacts: dict[str, _Contact] = {}
    by_fold: dict[str, str] = {}
    refused: dict[str, dict[str, Any]] = {}
    for row in wanted.to_dict("records"):
        number = _text(row.get("contact_number"))
        keys = _keys_of(row.get("source_keys"))
        day = _text(row.get("business_date"))
        if number in contacts:
            contact = contacts[number]
            contact.source_keys = tuple(dict.fromkeys(contact.source_keys + keys))
            if day and (not contact.business_date or day < contact.business_date):
                contact.business_date = day
            continue
        if number in refused:
            continue

        def refuse(message: str) -> None:
            refused[number] = {"contact_number": number, "name_sent": None, "contact_id": None, "outcome": "failed",
                               "message": message}

        if not number:
            refuse("no ContactNumber: a contact is found and made only by its CI code, never by name")
            continue
        if len(number) > CONTACT_NUMBER_LIMIT:
            refuse(f"ContactNumber {number!r} is longer than Xero's {CONTACT_NUMBER_LIMIT} characters")
            continue
        if _fold(number) in by_fold:
            refuse(f"ContactNumber {number!r} and {by_fold[_fold(number)]!r} are one number to Xero (it ignores case): "
                   "they cannot be two contacts")
            continue
        name = _text(row.get("name"))
        if not name:
            refuse(f"{number} has no name in CI: Xero needs one to create the contact")
            continue
        note = ""
        if len(name) > CONTACT_NAME_LIMIT:
            note = f"the name was cut to Xero's {CONTACT_NAME_LIMIT} characters (CI has {len(name)})"
            name = name[:CONTACT_NAME_LIMIT].rstrip()
        by_fold[_fold(number)] = number
        contacts[number] = _Contact(number=number, name=name, email=_text(row.get("email")), role=_text(row.get("role")),
                                    source_keys=keys, business_date=day, key=contact_ledger_key(process, number), note=note)
    return list(contacts.values()), list(refused.values())


# -- reading Xero --------------------------------------------------------------------------------

def find_contacts_by_number(client: XeroClient, numbers: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Every contact Xero holds (archived too) under each number, keyed by the number folded to lower case;
    one call per 25 numbers (`where=ContactNumber=="…" OR …`, includeArchived=true)."""
    wanted = sorted({_fold(n): n for n in numbers}.values())
    found: dict[str, list[dict[str, Any]]] = {_fold(n): [] for n in wanted}
    for start in range(0, len(wanted), NUMBERS_PER_LOOKUP):
        chunk = wanted[start : start + NUMBERS_PER_LOOKUP]
        where = " OR ".join(f'ContactNumber=="{where_text(number)}"' for number in chunk)
        params = {"where": where, "includeArchived": "true", "page": 1, "pageSize": 100}
        for contact in client.get_all("Contacts", "Contacts", params):
            folded = _fold(str(contact.get("ContactNumber") or ""))
            if folded in found:
                found[folded].append(contact)
    return found


def _contacts_by_id(client: XeroClient, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    ids = sorted({i.lower() for i in ids})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 50):
        params = {"IDs": ",".join(ids[start : start + 50]), "includeArchived": "true", "page": 1, "pageSize": 100}
        for contact in client.get_all("Contacts", "Contacts", params):
            found[str(contact.get("ContactID", "")).lower()] = contact
    return found


def _put_contacts(client: XeroClient, keyed: list[tuple[str, dict[str, Any]]]) -> list[DocumentOutcome]:
    """One PUT /Contacts (the spec's createContacts) with the client's batch Idempotency-Key. Not put_batch:
    that one adds unitdp, which createContacts does not take."""
    return client.put_contacts(keyed)


# -- the run ---------------------------------------------------------------------------------------------

@dataclass
class _ContactRun:
    client: XeroClient
    ledger: PostingLedger
    rounds: int
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    stop: DailyLimitReached | None = None

    def judge(self, contact: _Contact, held: list[dict[str, Any]], confirming: bool) -> bool:
        """Settle a contact on what Xero holds under its number; False when Xero holds nothing (create it)."""
        active = [c for c in held if c.get("ContactStatus", "ACTIVE") == "ACTIVE"]
        if len(active) == 1:
            xero = active[0]
            contact_id = str(xero.get("ContactID"))
            entry = self.entries.get(contact.key)
            if contact.created_here:
                message = "confirmed by lookup after the answer was lost" if confirming else ""
                if contact.name_sent and contact.name_sent != contact.name:
                    message = "; ".join(m for m in (message, f"created as {contact.name_sent!r}: Xero holds another "
                                        f"contact named {contact.name!r} (a look-alike, a different customer in CI)") if m)
                outcome = "created"
            else:
                outcome = "found"
                message = "" if _text(xero.get("Name")).casefold() == contact.name.casefold() else (
                    f"found by ContactNumber; Xero calls it {xero.get('Name')!r} (CI: {contact.name!r}), left as it is")
                if entry is not None and entry.state == INTENDED:
                    message = "; ".join(m for m in ("an earlier attempt to create it ended without an answer: Xero holds it (found by ContactNumber)",
                                                    message) if m)
            # ours (created now, or the ledger knew it): the ledger says so from now on; a contact found that we
            # never made stays out of the ledger
            stale = entry is not None and (entry.state != POSTED or (entry.xero_id or "").lower() != contact_id.lower())
            if confirming or stale:
                self.ledger.record_posted(contact.intent(), contact_id, str(xero.get("ContactStatus") or "ACTIVE"))
            contact.report(outcome, message, contact_id, _text(xero.get("Name")) or contact.name_sent)
            return True
        if len(active) > 1:
            shown = ", ".join(f"{c.get('Name')!r} ({c.get('ContactID')})" for c in active[:5])
            contact.report("failed", f"Xero holds {len(active)} active contacts with ContactNumber {contact.number} ({shown}): "
                           "merge them in Xero; nothing was created")
            return True
        if held:
            archived = held[0]
            contact.report("failed", f"{contact.number} ({archived.get('Name')!r}, {archived.get('ContactID')}) is archived "
                           "in Xero: restore it; no second contact was created", None, _text(archived.get("Name")))
            return True
        return False

    def look_up(self, contacts: list[_Contact], confirming: bool) -> list[_Contact]:
        """Judge the contacts on a lookup by number; return the ones Xero does not hold."""
        try:
            found = find_contacts_by_number(self.client, [c.number for c in contacts])
        except (ReconnectRequired, DailyLimitReached):
            raise
        except CALL_ERRORS as error:
            for contact in contacts:
                said = "the answer to its creation was lost and " if confirming else ""
                contact.report("unknown", f"{contact.number}: {said}the lookup in Xero failed ({error}); nothing more was "
                               "sent for it (the next run looks it up before creating)")
            return []
        absent = [c for c in contacts if not self.judge(c, found.get(_fold(c.number), []), confirming)]
        return absent

    def renumbered(self, contacts: list[_Contact]) -> list[_Contact]:
        """Of contacts Xero holds under no such number, those the ledger says we created: read by id. One that
        lives on (renumbered in Xero) fails, so that no second contact is made; the rest are returned."""
        ours = [c for c in contacts if (entry := self.entries.get(c.key)) is not None and entry.state == POSTED and entry.xero_id]
        ours_keys = {c.key for c in ours}
        if not ours:
            return contacts
        try:
            by_id = _contacts_by_id(self.client, [self.entries[c.key].xero_id for c in ours])
        except (ReconnectRequired, DailyLimitReached):
            raise
        except CALL_ERRORS as error:
            for contact in ours:
                contact.report("unknown", f"{contact.number}: Xero holds no contact with this number, and reading the one "
                               f"this pipeline created ({self.entries[contact.key].xero_id}) failed ({error}); nothing created")
            return [c for c in contacts if c.key not in ours_keys]
        left = []
        for contact in contacts:
            entry = self.entries.get(contact.key)
            xero = by_id.get((entry.xero_id or "").lower()) if entry is not None and entry.xero_id else None
            if contact.key in ours_keys and xero is not None:
                contact.report("failed", f"the contact this pipeline created for {contact.number} ({xero.get('Name')!r}, "
                               f"{xero.get('ContactID')}) now has ContactNumber {xero.get('ContactNumber')!r} in Xero "
                               f"({xero.get('ContactStatus')}): give it back {contact.number!r}; no second contact was created",
                               None, _text(xero.get("Name")))
            else:
                left.append(contact)
        return left

    def send(self, pending: list[_Contact]) -> None:
        for _round in range(max(self.rounds, 1)):
            if not pending:
                return
            for contact in pending:
                contact.name_sent = contact.name_sent or contact.name
                contact.created_here = True
            self.ledger.intend([c.intent() for c in pending])
            lost, again = self._send_batches(pending)
            for contact in lost:
                contact.lost = True
            if self.stop is not None:  # no more calls today: the ledger says intended, looked up next run
                for contact in lost + again:
                    contact.report("unknown" if contact.lost else "deferred", f"{contact.number}: "
                                   f"{'the answer was lost and ' if contact.lost else 'not created: '}{self.stop}; the next "
                                   "run looks it up before creating it")
                return
            if lost:
                again += self.look_up(lost, confirming=True)
            pending = again
        for contact in pending:
            if contact.lost:
                contact.report("unknown", f"{contact.number}: no answer from Xero after {self.rounds} attempts; the next run "
                               "looks it up before creating it")
            else:
                contact.report("failed", f"{contact.number}: not created after {self.rounds} attempts")

    def _send_batches(self, pending: list[_Contact]) -> tuple[list[_Contact], list[_Contact]]:
        """Send in batches; the contacts whose answer was lost, and those to send again under a new name."""
        size = max(self.client.batch_size, 1)
        lost: list[_Contact] = []
        again: list[_Contact] = []
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            try:
                outcomes = _put_contacts(self.client, [(c.key, c.body()) for c in batch])
            except XeroOutcomeUnknown as error:
                self.ledger.unknown_many([c.key for c in batch], str(error))
                lost += batch
                continue
            except DailyLimitReached as error:
                self.stop = error
                for contact in pending[start:]:  # intended in the ledger: the next run looks them up first
                    contact.report("deferred", f"{contact.number}: not created: {error}; the next run resumes here")
                break
            except ReconnectRequired:
                raise
            except CALL_ERRORS as error:
                self.ledger.failed_many([(c.key, str(error)) for c in batch])
                for contact in batch:
                    contact.report("failed", f"{contact.number}: {error}")
                continue
            by_key = {c.key: c for c in batch}
            posted, failed = [], []
            for outcome in outcomes:
                contact = by_key[outcome.key]
                if outcome.ok:
                    contact_id = str(outcome.document.get("ContactID"))
                    posted.append((contact.key, contact_id, str(outcome.document.get("ContactStatus") or "ACTIVE")))
                    message = ""
                    if contact.renamed:
                        message = (f"created as {contact.name_sent!r}: Xero holds another contact named {contact.name!r} "
                                   "(a look-alike, a different customer in CI)")
                    contact.report("created", message, contact_id, _text(outcome.document.get("Name")) or contact.name_sent)
                    continue
                reason = "; ".join(outcome.messages) or "Xero refused it without a message"
                if not contact.renamed and _NAME_TAKEN.search(reason):
                    contact.renamed = True
                    contact.name_sent = name_with_number(contact.name, contact.number)
                    again.append(contact)
                    continue
                failed.append((contact.key, reason))
                contact.report("failed", f"{contact.number}: {reason}")
            self.ledger.posted_many(posted)
            self.ledger.failed_many(failed)
        return lost, again


def ensure_contacts(client: XeroClient, ledger: PostingLedger, wanted: pd.DataFrame, rounds: int = 5) -> pd.DataFrame:
    """Make sure Xero holds one contact per wanted ContactNumber (found, or created exactly once). `wanted`
    has WANTED_CONTACT_COLUMNS (several rows may name one number: they are one contact). `ledger` is
    PostingLedger(process=f"{process}-contact") (contact_ledger() makes one). One row per number, in the
    order first wanted (CONTACT_RESULT_COLUMNS): `name_sent` is the name the contact has in Xero (the one
    sent when created here); `contact_id` is set for found and created only (a failed contact's documents must
    not go, even where Xero holds an archived or renumbered contact: its id is in the message)."""
    process = _process_of(ledger)
    contacts, refused = _wanted(wanted, process)
    order = [c.number for c in contacts]
    if contacts:
        run = _ContactRun(client, ledger, rounds, ledger.entries([c.key for c in contacts]))
        try:
            absent = run.look_up(contacts, confirming=False)
            absent = run.renumbered(absent)
            run.send(absent)
        except DailyLimitReached as stop:  # raised by a lookup: no more calls today
            for contact in contacts:
                if contact.result is not None:
                    continue
                if contact.lost:
                    contact.report("unknown", f"{contact.number}: the answer was lost and {stop}; the next run looks it "
                                   "up before creating it")
                else:
                    contact.report("deferred", f"{contact.number}: not created: {stop}; the next run resumes here")
    by_number = {c.number: c.result for c in contacts}
    rows = [by_number[number] for number in order] + refused
    return _frame(rows)


# -- documents ---------------------------------------------------------------------------------------

def contact_ids(results: pd.DataFrame) -> dict[str, str]:
    """ContactNumber → ContactID of the contacts Xero holds (outcomes found and created)."""
    good = results[results["outcome"].isin(GOOD_CONTACT_OUTCOMES) & results["contact_id"].notna()]
    return dict(zip(good["contact_number"], good["contact_id"]))


def contact_messages(results: pd.DataFrame) -> dict[str, str]:
    """ContactNumber → why its contact is not in Xero (the other outcomes)."""
    bad = results[~results["outcome"].isin(GOOD_CONTACT_OUTCOMES)]
    return {number: f"contact {number} is not in Xero ({outcome}): {message}" for number, outcome, message in
            zip(bad["contact_number"], bad["outcome"], bad["message"])}


def with_contact_ids(documents: pd.DataFrame, contact_ids: Mapping[str, str],
                     messages: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ready, missing). In `ready` each payload whose Contact is {"ContactNumber": n, "Name": …} names it as
    {"ContactID": id, "ContactNumber": n} (the number stays: the ledger's content hash reads it); a payload
    with no ContactNumber, or already a ContactID, is left as it is. `missing`: the documents whose number
    has no id (their contact failed), unchanged, with a `contact_message` column saying why."""
    folded = {_fold(str(n)): i for n, i in contact_ids.items()}
    said = {_fold(str(n)): m for n, m in (messages or {}).items()}
    ready_rows: list[int] = []
    missing_rows: list[int] = []
    payloads: list[Any] = []
    reasons: list[str] = []
    for position, payload in enumerate(documents["payload"]):
        contact = (payload or {}).get("Contact") or {}
        number = _text(contact.get("ContactNumber"))
        if not number or contact.get("ContactID"):
            ready_rows.append(position)
            payloads.append(payload)
            continue
        contact_id = contact_ids.get(number) or folded.get(_fold(number))
        if contact_id is None:
            missing_rows.append(position)
            reasons.append(said.get(_fold(number)) or f"contact {number} is not in Xero")
            continue
        ready_rows.append(position)
        payloads.append({**payload, "Contact": {"ContactID": contact_id, "ContactNumber": number}})
    ready = documents.iloc[ready_rows].copy()
    ready["payload"] = pd.Series(payloads, index=ready.index, dtype=object)
    missing = documents.iloc[missing_rows].copy()
    missing["contact_message"] = pd.Series(reasons, index=missing.index, dtype=object)
    return ready, missing
