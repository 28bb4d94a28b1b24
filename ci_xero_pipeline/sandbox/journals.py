"""Manual journals: the spec's createManualJournals, updateOrCreateManualJournals, updateManualJournal,
getManualJournals and getManualJournal; rules from xero-facts.md ("Manual journals") and the spec's
ManualJournal and ManualJournalLine schemas.

    PUT  /ManualJournals                   {"ManualJournals": [ManualJournal, …]}   creates
    POST /ManualJournals                   the same body: creates, or updates one named by ManualJournalID
    POST /ManualJournals/{ManualJournalID} {"ManualJournals": [one]}: updates; {"Status": "VOIDED"} voids a
                                           POSTED journal, {"Status": "DELETED"} deletes a DRAFT one
    GET  /ManualJournals                   where (Narration=="…" OR … is an index lookup), order, page/pageSize
    GET  /ManualJournals/{ManualJournalID}

With summarizeErrors=false every element answers for itself (StatusAttributeString OK or ERROR, with its
ValidationErrors) and the good ones are saved; without it one refused journal refuses the request (400
ValidationException, nothing saved), as for invoices.

Rules, with their source:
- Narration is required (spec: the schema's only required field). The spec and xero-facts give no length;
  the sandbox takes 4,000 characters, the limit Xero gives line descriptions (stricter than no limit).
- At least two JournalLines (xero-facts); each LineAmount a number with at most 2 decimals (xero-facts:
  amounts have 2 decimals), positive a debit, negative a credit (spec). A 0.00 line is allowed: no source
  found refuses one.
- The lines balance to exactly 0.00 (xero-facts), in Xero's words from the spec's example ("The total debits
  (100.00) must equal total credits (-10.00)"). With LineAmountTypes Exclusive a line's tax is posted beside it,
  so the balance counts LineAmount + TaxAmount; with Inclusive and NoTax it counts LineAmount.
- Each line names an ACTIVE account by AccountCode or AccountID, not a system account (receivables, payables,
  GST, …) and not a BANK account (xero-facts). Not an account of Type INVENTORY either: xero-facts says Xero
  reserves it for its own tracked items; whether the API refuses it on a journal is not documented, and the
  stricter reading refuses it.
- TaxType must exist, be ACTIVE and fit the account's class (as on invoices); when absent it is the
  account's own (Exclusive, Inclusive) or NONE (NoTax). A NoTax journal carries no tax: a TaxType with a
  non-zero rate on one is refused (stricter reading: Xero's docs do not say it would be ignored).
- Tracking on lines as on invoices (rules.check_tracking): at most two categories, active options.
- Status DRAFT (the default) or POSTED on create; LineAmountTypes NoTax (the default, spec examples),
  Exclusive or Inclusive; Date required (stricter reading: the pipeline always sends one).
- Lock dates: nothing is created POSTED, edited, voided or deleted on or before the lock date (processes.md).
  Editing a DRAFT dated there is refused too, as the sandbox does for invoices (stricter reading).
- A VOIDED or DELETED journal cannot change; a POSTED one can be edited or voided (not deleted, not returned
  to DRAFT: stricter readings), a DRAFT one edited, posted or deleted (not voided).

Reading: a list without `page` shows each journal's JournalLines as an empty list, as the spec's
getManualJournals example does and its page parameter describes ("with line items shown" when paging);
GET /ManualJournals/{id} and paged lists show the lines. A client that wants the lines pages or reads by id.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Callable

from ..money import loads_exact
from .rules import (
    CENT,
    DESCRIPTION_LIMIT,
    LINE_AMOUNT_TYPES,
    TAX_TOLERANCE,
    AccountInfo,
    Ledger,
    check_tracking,
    is_uuid,
    parse_amount,
    parse_date,
    tax_on,
)
from .store import SandboxStore
from .where import WhereError, parse_where, required_values
from .xerojson import envelope, ms_date, ms_timestamp, not_found, now_ms, post_data_invalid, query_parse_error, validation_exception

NARRATION_LIMIT = 4000  # see the module docstring
CREATE_STATUSES = ("DRAFT", "POSTED")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
ZERO = Decimal("0.00")
INVALID_FOR_MODIFICATION = "Manual journal not of valid status for modification"
ZERO_ID = "00000000-0000-0000-0000-000000000000"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _line_account(number: int, line: dict[str, Any], ledger: Ledger, errors: list[str]) -> AccountInfo | None:
    code = _text(line.get("AccountCode"))
    account_id = _text(line.get("AccountID")).lower()
    if not code and not account_id:
        errors.append(f"An AccountCode or AccountID must be given on journal line {number}.")
        return None
    account = ledger.account_by_id(account_id) if account_id else ledger.accounts.get(code)
    if account is not None and code and account.code != code:
        errors.append(f"The AccountCode '{code}' and AccountID {account_id} on journal line {number} name different accounts.")
        return None
    shown = code or account_id
    if account is None:
        errors.append(f"Account code '{shown}' is not a valid code for this document.")  # Xero's words (invoices)
        return None
    if account.status != "ACTIVE":
        errors.append(f"Account code '{shown}' has been archived, or is not a valid code for this document.")
        return None
    if account.system_account:
        errors.append(f"Account {account.code} ({account.name}) is a system account and cannot be used on a manual journal.")
        return None
    if account.type == "BANK":
        errors.append(f"Account {account.code} ({account.name}) is a bank account and cannot be used on a manual journal; "
                      "record bank movements as bank transactions.")
        return None
    if account.type == "INVENTORY":
        errors.append(f"Account {account.code} ({account.name}) is an INVENTORY account, which Xero reserves for its tracked "
                      "inventory items; use a CURRENT asset account for stock valued outside Xero.")
        return None
    return account


def _check_line(number: int, line: Any, line_amount_types: str, ledger: Ledger, errors: list[str]) -> dict[str, Any] | None:
    if not isinstance(line, dict):
        errors.append(f"Journal line {number} must be an object.")
        return None
    raw_amount = line.get("LineAmount")
    amount = parse_amount(raw_amount)
    if raw_amount is None:
        errors.append(f"A LineAmount must be given on journal line {number}.")
    elif amount is None:
        errors.append(f"LineAmount on journal line {number} must be a number.")
    elif amount != amount.quantize(CENT):
        errors.append(f"LineAmount on journal line {number} can have at most 2 decimal places.")
    description = line.get("Description")
    if description is not None and not isinstance(description, str):
        errors.append(f"Description on journal line {number} must be text.")
        description = str(description)
    if description and len(description) > DESCRIPTION_LIMIT:
        errors.append(f"The description of journal line {number} must be {DESCRIPTION_LIMIT} characters or fewer.")
    account = _line_account(number, line, ledger, errors)

    given_type = _text(line.get("TaxType"))
    tax_type = given_type or ("NONE" if line_amount_types == "NoTax" or account is None else account.tax_type)
    rate = ledger.tax_rates.get(tax_type)
    if rate is None or rate.status != "ACTIVE":
        errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be used with this type of transaction.")
        rate = None
    elif account is not None and account.account_class not in rate.applies_to:
        errors.append(f"The TaxType code '{tax_type}' cannot be used with account code '{account.code}'.")
    elif line_amount_types == "NoTax" and rate.rate != 0:
        errors.append(f"Journal line {number} has the TaxType {tax_type} ({rate.rate.normalize()}%), but the journal's "
                      "LineAmountTypes is NoTax: give a TaxType without tax, or make the journal Exclusive or Inclusive.")

    tax = ZERO
    if rate is not None and amount is not None:
        tax = tax_on(amount.quantize(CENT), rate.rate, line_amount_types)
        given_tax = parse_amount(line.get("TaxAmount")) if line.get("TaxAmount") is not None else None
        if line.get("TaxAmount") is not None and given_tax is None:
            errors.append(f"TaxAmount on journal line {number} must be a number.")
        elif given_tax is not None:
            allowed = ZERO if rate.rate == 0 or line_amount_types == "NoTax" else TAX_TOLERANCE  # as on invoices
            if given_tax != given_tax.quantize(CENT) or abs(given_tax - tax) > allowed:
                errors.append(f"The TaxAmount {given_tax} on journal line {number} differs from the calculated tax "
                              f"{tax} by more than {allowed}.")
            else:
                tax = given_tax
    tracking = check_tracking(line.get("Tracking"), ledger, errors)
    checked: dict[str, Any] = {
        "_amount_read": amount is not None and amount == amount.quantize(CENT),
        "LineAmount": amount.quantize(CENT) if amount is not None else ZERO,
        "Description": description or "",
        "TaxType": tax_type,
        "TaxAmount": tax,
        "Tracking": tracking,
    }
    if account is not None:
        checked["AccountCode"], checked["AccountID"] = account.code, account.account_id
    return checked


def check_journal(element: Any, ledger: Ledger, allowed_statuses: tuple[str, ...] = CREATE_STATUSES) -> tuple[dict[str, Any], list[str]]:
    """(the journal as it would be stored, what is wrong with it) for one posted ManualJournal."""
    if not isinstance(element, dict):
        return {}, ["Each manual journal must be a JSON object."]
    errors: list[str] = []
    narration = element.get("Narration")
    if not isinstance(narration, str) or not narration.strip():
        errors.append("A Narration must be given: it describes the manual journal.")
        narration = "" if narration is None else str(narration)
    elif len(narration) > NARRATION_LIMIT:
        errors.append(f"Narration must be {NARRATION_LIMIT} characters or fewer.")

    status = _text(element.get("Status")).upper() or "DRAFT"
    if status not in allowed_statuses:
        errors.append(f"Manual journals can only be saved with a status of {' or '.join(allowed_statuses)}, not {status}.")
    line_amount_types = LINE_AMOUNT_TYPES.get(_text(element.get("LineAmountTypes")).casefold() or "notax")
    if line_amount_types is None:
        errors.append(f"'{element.get('LineAmountTypes')}' is not a valid LineAmountTypes; use NoTax, Exclusive or Inclusive.")
        line_amount_types = "NoTax"

    day = parse_date(element.get("Date"))
    if element.get("Date") in (None, ""):
        errors.append("Date is required.")
    elif day is None:
        errors.append(f"'{element.get('Date')}' is not a valid date.")
    elif status == "POSTED" and ledger.locked(day):
        errors.append(f"The journal date cannot be on or before {ledger.lock_phrase()}; an adviser must change the lock date first.")

    url = element.get("Url")
    if url is not None and not isinstance(url, str):
        errors.append("Url must be text.")
    cash_basis = element.get("ShowOnCashBasisReports", True)
    if not isinstance(cash_basis, bool):
        errors.append("ShowOnCashBasisReports must be true or false.")
        cash_basis = True

    raw_lines = element.get("JournalLines")
    if raw_lines is None:
        raw_lines = []
    elif not isinstance(raw_lines, list):
        errors.append("JournalLines must be a list.")
        raw_lines = []
    if len(raw_lines) < 2:
        # Xero's docs: "The JournalLines element must contain at least two individual JournalLine sub-elements"
        errors.append("The JournalLines element must contain at least two individual JournalLine sub-elements")
    lines = [line for line in (_check_line(n, raw, line_amount_types, ledger, errors) for n, raw in enumerate(raw_lines, 1)) if line]
    read = [line.pop("_amount_read") for line in lines]
    amounts_read = len(lines) == len(raw_lines) and all(read)  # else the balance would mislead
    # Exclusive: the tax is posted beside its line, so the line's full weight is LineAmount + TaxAmount
    weights = [line["LineAmount"] + (line["TaxAmount"] if line_amount_types == "Exclusive" else ZERO) for line in lines]
    debits = sum((w for w in weights if w > 0), ZERO)
    credits = sum((w for w in weights if w < 0), ZERO)
    if amounts_read and debits + credits != 0:
        errors.append(f"The total debits ({debits}) must equal total credits ({credits})")  # the spec's example

    journal: dict[str, Any] = {
        "Narration": narration.strip() if isinstance(narration, str) else "",
        "Date": day.isoformat() if day else None,
        "Status": status,
        "LineAmountTypes": line_amount_types,
        "JournalLines": lines,
        "ShowOnCashBasisReports": cash_basis,
    }
    if _text(url):
        journal["Url"] = _text(url)
    return journal, list(dict.fromkeys(errors))


def _merge(existing: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The element an update describes: the stored journal with the posted fields laid over it. Journal
    lines have no ids: lines sent replace the journal's lines; lines not sent keep them."""
    merged = {key: value for key, value in existing.items() if key not in ("ManualJournalID", "CreatedDateUTC", "UpdatedDateUTC")}
    merged["JournalLines"] = [dict(line) for line in existing.get("JournalLines", [])]
    for key, value in changes.items():
        if key != "ManualJournalID":
            merged[key] = value
    return merged


def render_journal(journal: dict[str, Any], with_lines: bool = True) -> dict[str, Any]:
    """A stored journal in the spec's ManualJournal shape."""
    element: dict[str, Any] = {"ManualJournalID": journal["ManualJournalID"], "Narration": journal["Narration"]}
    day = parse_date(journal.get("Date"))
    if day is not None:
        element["Date"] = ms_date(day)
    element["Status"] = journal["Status"]
    element["LineAmountTypes"] = journal["LineAmountTypes"]
    element["JournalLines"] = [_render_line(line) for line in journal.get("JournalLines", [])] if with_lines else []
    if journal.get("Url"):
        element["Url"] = journal["Url"]
    element["ShowOnCashBasisReports"] = journal.get("ShowOnCashBasisReports", True)
    element["HasAttachments"] = False
    element["UpdatedDateUTC"] = ms_timestamp(journal["UpdatedDateUTC"])
    return element


def _render_line(line: dict[str, Any]) -> dict[str, Any]:
    element: dict[str, Any] = {"LineAmount": line["LineAmount"]}
    if line.get("AccountCode"):
        element["AccountCode"] = line["AccountCode"]
    if line.get("AccountID"):
        element["AccountID"] = line["AccountID"]
    element["Description"] = line.get("Description") or ""
    element["TaxType"] = line.get("TaxType") or "NONE"
    element["TaxAmount"] = line.get("TaxAmount", ZERO)
    element["Tracking"] = [dict(entry) for entry in line.get("Tracking", [])]
    element["IsBlank"] = False
    return element


class _Undo(Exception):
    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body


class ManualJournals:
    """The ManualJournals routes of one sandbox; `ledger(tenant_id)` gives the organisation's rules."""

    def __init__(self, store: SandboxStore, ledger: Callable[[str], Ledger]):
        self.store = store
        self.ledger = ledger

    def handle(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> tuple[int, Any]:
        if method == "GET" and not rest:
            return self.list(tenant_id, query)
        if method == "GET" and len(rest) == 1:
            journal = self.store.journal(tenant_id, rest[0].lower())
            return (200, envelope("ManualJournals", [render_journal(journal)])) if journal else (404, not_found())
        if method in ("PUT", "POST") and not rest:
            return self.write(tenant_id, method, None, query, payload)
        if method == "POST" and len(rest) == 1:
            return self.write(tenant_id, method, rest[0].lower(), {}, payload)  # the spec gives it no summarizeErrors
        return 404, not_found()

    # -- reading --------------------------------------------------------------------------------------
    def list(self, tenant_id: str, query: dict[str, str]) -> tuple[int, Any]:
        text = query.get("where", "").strip()
        try:
            where = parse_where(text) if text else None
        except WhereError as error:
            return 400, query_parse_error(str(error))
        narrations = required_values(where, "Narration") if where is not None else None  # an index lookup
        journals = [loads_exact(row["journal"]) for row in self.store.journal_rows(
            tenant_id, narrations=sorted(narrations) if narrations is not None else None)]
        if where is not None:
            journals = [j for j in journals if where(_lookup(j))]  # the stored form: Date ISO, amounts Decimal
        for clause in reversed([c.strip() for c in query.get("order", "").split(",") if c.strip()]):
            words = clause.split()
            name, descending = words[0], len(words) > 1 and words[1].upper() == "DESC"

            def sort_key(journal: dict[str, Any], name: str = name) -> tuple[bool, Any]:
                value = _lookup(journal)(name)
                return (value is None, value if isinstance(value, Decimal) else str(value if value is not None else "").casefold())

            journals = sorted(journals, key=sort_key, reverse=descending)
        if "page" not in query:
            return 200, envelope("ManualJournals", [render_journal(j, with_lines=False) for j in journals])
        try:
            page = max(int(query["page"]), 1)
            size = min(max(int(query.get("pagesize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
        except ValueError:
            return 400, query_parse_error("page and pageSize must be whole numbers")
        chunk = journals[(page - 1) * size : page * size]
        pagination = {"page": page, "pageSize": size, "pageCount": -(-len(journals) // size), "itemCount": len(journals)}
        return 200, envelope("ManualJournals", [render_journal(j) for j in chunk], pagination=pagination)

    # -- writing --------------------------------------------------------------------------------------
    def write(self, tenant_id: str, method: str, path_id: str | None, query: dict[str, str], payload: Any) -> tuple[int, Any]:
        if not (isinstance(payload, dict) and isinstance(payload.get("ManualJournals"), list) and payload["ManualJournals"]):
            return 400, validation_exception([{"ValidationErrors": [
                {"Message": 'The request body must be {"ManualJournals": [...]}, a list of ManualJournal objects.'}]}])
        elements = payload["ManualJournals"]
        if path_id is not None:
            if not is_uuid(path_id):
                return 400, post_data_invalid(f"'{path_id}' is not a valid ManualJournalID.")
            if len(elements) != 1:
                return 400, validation_exception([{"ValidationErrors": [
                    {"Message": "POST /ManualJournals/{ManualJournalID} updates one journal: send exactly one."}]}])
            if self.store.journal(tenant_id, path_id) is None:
                return 404, not_found()
        summarize = query.get("summarizeerrors", "true").lower() != "false"
        ledger = self.ledger(tenant_id)
        try:
            with self.store.transaction():
                results = [self._write_one(tenant_id, method, path_id, element, ledger, not summarize) for element in elements]
                if summarize and any(r.get("ValidationErrors") for r in results):
                    raise _Undo(400, validation_exception([r for r in results if r.get("ValidationErrors")]))
        except _Undo as undo:
            return undo.status, undo.body
        return 200, envelope("ManualJournals", results)

    def _write_one(self, tenant_id: str, method: str, path_id: str | None, element: Any, ledger: Ledger,
                   status_attribute: bool) -> dict[str, Any]:
        def refused(shown: dict[str, Any], errors: list[str]) -> dict[str, Any]:
            body = {"Narration": "", **shown} if shown else {"Narration": ""}
            if "JournalLines" in body:
                body["JournalLines"] = [_render_line(line) for line in body["JournalLines"]]
            if "Date" in body:
                day = parse_date(body["Date"])
                body["Date"] = ms_date(day) if day else str(body["Date"])
            body.pop("UpdatedDateUTC", None)
            body.pop("CreatedDateUTC", None)
            if body.get("Status") not in ("DRAFT", "POSTED", "DELETED", "VOIDED", "ARCHIVED"):  # the spec's enum
                body.pop("Status", None)
            body["StatusAttributeString"] = "ERROR"
            body["ValidationErrors"] = [{"Message": message} for message in errors]
            return body

        if not isinstance(element, dict):
            return refused({}, ["Each manual journal must be a JSON object."])
        journal_id = path_id or _text(element.get("ManualJournalID")).lower()
        if journal_id == ZERO_ID:  # the spec's examples send the empty id for "none"
            journal_id = ""
        existing = None
        if journal_id:
            if method == "PUT":
                return refused({"ManualJournalID": journal_id}, [
                    "A ManualJournalID cannot be given to PUT /ManualJournals, which creates journals: update with POST."])
            if not is_uuid(journal_id):
                return refused({}, [f"'{journal_id}' is not a valid ManualJournalID."])
            existing = self.store.journal(tenant_id, journal_id)
            if existing is None:
                return refused({"ManualJournalID": journal_id}, [f"Manual journal with ManualJournalID {journal_id} could not be found."])

        stamp = now_ms()
        if existing is None:
            journal, errors = check_journal(element, ledger)
            if errors:
                return refused(journal, errors)
            journal = {"ManualJournalID": str(uuid.uuid4()), **journal, "CreatedDateUTC": stamp, "UpdatedDateUTC": stamp}
        else:
            current = existing["Status"]
            wanted = _text(element.get("Status")).upper() or current
            verb = {"VOIDED": "voided", "DELETED": "deleted"}.get(wanted, "edited")
            if current not in CREATE_STATUSES:
                return refused(existing, [INVALID_FOR_MODIFICATION])
            if ledger.locked(parse_date(existing.get("Date"))):
                return refused(existing, [
                    f"This manual journal is dated on or before {ledger.lock_phrase()} and cannot be {verb}; "
                    "an adviser must change the lock date first."])
            if wanted in ("VOIDED", "DELETED"):
                allowed = "POSTED" if wanted == "VOIDED" else "DRAFT"
                if current != allowed:
                    return refused(existing, [
                        "Only a POSTED manual journal can be voided; delete a DRAFT one." if wanted == "VOIDED"
                        else "A POSTED manual journal cannot be deleted; void it instead."])
                journal = {**existing, "Status": wanted, "UpdatedDateUTC": stamp}
            else:
                if current == "POSTED" and wanted == "DRAFT":  # stricter reading: a posted journal stays posted
                    return refused(existing, ["A POSTED manual journal cannot be returned to DRAFT."])
                checked, errors = check_journal(_merge(existing, element), ledger)
                if errors:
                    return refused({"ManualJournalID": existing["ManualJournalID"], **checked}, errors)
                journal = {**checked, "ManualJournalID": existing["ManualJournalID"],
                           "CreatedDateUTC": existing.get("CreatedDateUTC", stamp), "UpdatedDateUTC": stamp}
        self.store.save_journal(tenant_id, journal)
        shown = render_journal(journal)
        if status_attribute:
            shown["StatusAttributeString"] = "OK"
        return shown


def _lookup(journal: dict[str, Any]) -> Callable[[str], Any]:
    def get(path: str) -> Any:
        value: Any = journal
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get
