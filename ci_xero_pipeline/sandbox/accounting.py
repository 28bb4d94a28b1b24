"""The Accounting API endpoints: what each call reads or changes, and the JSON Xero would answer.

Called by the server (already authenticated, rate-limited) with the tenant, method, path below
`/api.xro/2.0/`, query and body; answers an `Answer`. Writes run in one transaction each, so a
request that Xero would refuse as a whole leaves nothing behind.

Served: Organisation, TaxRates (read); Accounts (read, create, update, archive and restore, delete:
the rules are in `chart`); TrackingCategories and their Options; Contacts;
Invoices and CreditNotes (create, update, void, delete); Payments (create, read, delete); credit note
Allocations (create, delete: `allocations`); ManualJournals (create, update, post, void, delete,
read: `journals`). A document's applied payments and allocations live in its
stored JSON (`_payments`, `_allocations`), so listing documents stays one read; the payments and
allocations themselves are rows of their own tables. Where Xero's behaviour is not documented the
stricter reading is taken and said so where the rule is applied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from ..money import loads_exact
from .allocations import (
    CreditAllocations,
    amount_allocated,
    amount_due,
    amount_paid,
    credit_note_allocations,
    invoice_credit_notes,
    is_applied,
    payments_of,
    settle,
)
from .chart import Chart, StoredAccount, TaxRateFit, check_account_update, check_new_account
from .config import SandboxConfig
from .journals import ManualJournals
from .rules import (
    CENT,
    CREATE_STATUSES,
    CREDIT_NOTES,
    INVOICES,
    KINDS,
    NUMBER_LIMIT,
    TRACKING_OPTION_LIMIT,
    AccountInfo,
    DocumentKind,
    Ledger,
    TaxRateInfo,
    TrackingCategoryInfo,
    is_uuid,
    check_document,
    merge_update,
    parse_amount,
    parse_date,
)
from .store import SandboxStore, name_key, number_key
from .where import Where, WhereError, parse_where, required_values
from .xerojson import (
    date_string,
    envelope,
    ms_date,
    ms_timestamp,
    not_found,
    now_ms,
    post_data_invalid,
    query_parse_error,
    validation_exception,
)

ZERO_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
CONTACT_NAME_LIMIT = 255
CONTACT_NUMBER_LIMIT = 50
TRACKING_CATEGORY_LIMIT = 100
MAX_ACTIVE_CATEGORIES = 2
MAX_CATEGORIES = 4
INVALID_FOR_MODIFICATION = "{noun} not of valid status for modification"
TRACKING_OPTION_FIELDS = frozenset({"TrackingOptionID", "Name", "Status", "TrackingCategoryID"})  # the spec's TrackingOption


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


# the spec's Payment.PaymentType, by the Type of the document paid
PAYMENT_TYPES = {
    "ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT", "ACCRECCREDIT": "ARCREDITPAYMENT", "ACCPAYCREDIT": "APCREDITPAYMENT",
}
live_payments = payments_of  # the payments applied to a stored document and not deleted (allocations.py)


class _Discard(Exception):
    """Raised inside a write transaction to undo it and answer `answer` instead."""

    def __init__(self, answer: Answer):
        self.answer = answer


def _ok(collection: str, elements: list[dict[str, Any]], **extra: Any) -> Answer:
    return Answer(200, envelope(collection, elements, **extra))


def _not_found() -> Answer:
    return Answer(404, not_found())


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _lookup(source: dict[str, Any]) -> Callable[[str], Any]:
    """A where-clause field getter over a nested dict ('Contact.Name')."""

    def get(path: str) -> Any:
        value: Any = source
        for part in path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


def _filtered(elements: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    where = _where(query)
    if where is None:
        return elements
    return [element for element in elements if where(_lookup(element))]


def _where(query: dict[str, str]) -> Where | None:
    text = query.get("where", "").strip()
    return parse_where(text) if text else None


def _comma_list(query: dict[str, str], name: str) -> list[str] | None:
    raw = query.get(name.lower())
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


class Accounting:
    def __init__(self, store: SandboxStore, config: SandboxConfig):
        self.store = store
        self.config = config
        self.allocations = CreditAllocations(store, self.ledger, self._allocation_summary)
        self.journals = ManualJournals(store, self.ledger)

    # -- dispatch -------------------------------------------------------------------------------
    def handle(self, tenant_id: str, method: str, parts: list[str], query: dict[str, str], body: bytes) -> Answer:
        """`query` has lower-cased names. Unknown routes answer 404."""
        collection = parts[0] if parts else ""
        rest = parts[1:]
        try:
            payload = loads_exact(body) if body.strip() else None
        except ValueError as error:
            return Answer(400, post_data_invalid(f"JSON for post data was invalid, {error}"))
        if method in ("PUT", "POST") and payload is None:
            return Answer(400, post_data_invalid("The request body is empty."))
        try:
            if collection == "Organisation" and method == "GET" and not rest:
                return self.organisation(tenant_id)
            if collection == "Accounts":
                return self.chart_of_accounts(tenant_id, method, rest, query, payload)
            if collection == "TaxRates" and method == "GET" and not rest:
                return _ok("TaxRates", _filtered(self._tax_rates(tenant_id), query))
            if collection == "TrackingCategories":
                return self.tracking(tenant_id, method, rest, query, payload)
            if collection == "Contacts":
                return self.contacts(tenant_id, method, rest, query, payload)
            if collection == "Payments":
                return self.payments(tenant_id, method, rest, query, payload)
            if collection == "ManualJournals":
                return Answer(*self.journals.handle(tenant_id, method, rest, query, payload))
            if collection == "CreditNotes" and len(rest) >= 2 and rest[1] == "Allocations":
                return self.credit_note_allocations(tenant_id, method, rest, query, payload)
            if collection in KINDS:
                kind = KINDS[collection]
                if method == "GET":
                    return self.get_documents(kind, tenant_id, rest, query)
                if method in ("PUT", "POST") and len(rest) <= 1:
                    return self.write_documents(kind, tenant_id, method, rest[0] if rest else None, query, payload)
        except WhereError as error:
            return Answer(400, query_parse_error(str(error)))
        except _Discard as discard:
            return discard.answer
        return _not_found()

    # -- organisation, chart of accounts, tax rates ---------------------------------------------------
    def organisation(self, tenant_id: str) -> Answer:
        organisation = self.store.organisation(tenant_id)
        assert organisation is not None
        element: dict[str, Any] = {
            "OrganisationID": organisation.tenant_id,
            "APIKey": "",
            "Name": organisation.name,
            "LegalName": organisation.name,
            "PaysTax": True,
            "Version": "NZ",
            "OrganisationType": "COMPANY",
            "BaseCurrency": organisation.base_currency,
            "CountryCode": "NZ",
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "TaxNumber": "123-456-789",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 3,
            "SalesTaxBasis": "INVOICE",
            "SalesTaxPeriod": "TWOMONTHS",
            "DefaultSalesTax": "Tax Inclusive",
            "DefaultPurchasesTax": "Tax Inclusive",
            "CreatedDateUTC": ms_timestamp(organisation.created_ms),
            "OrganisationEntityType": "COMPANY",
            "Timezone": "NEWZEALANDSTANDARDTIME",
            "ShortCode": organisation.short_code,
            "Edition": "BUSINESS",
            "Class": "STANDARD",
            "LineOfBusiness": "Retail",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }
        if organisation.period_lock_date:
            element["PeriodLockDate"] = ms_date(organisation.period_lock_date)
        if organisation.end_of_year_lock_date:
            element["EndOfYearLockDate"] = ms_date(organisation.end_of_year_lock_date)
        return _ok("Organisations", [element])

    @staticmethod
    def render_account(account: StoredAccount, base_currency: str, status: str | None = None, updated_ms: int | None = None) -> dict[str, Any]:
        """An account in the spec's Account shape."""
        element: dict[str, Any] = {
            "AccountID": account.account_id,
            "Code": account.code,
            "Name": account.name,
            "Status": status or account.status,
            "Type": account.type,
            "TaxType": account.tax_type,
            "Description": account.description,
            "Class": account.account_class,
            "EnablePaymentsToAccount": account.enable_payments,
            "ShowInExpenseClaims": account.show_in_expense_claims,
            "BankAccountType": "BANK" if account.type == "BANK" else "",
            "ReportingCode": account.reporting_code,
            "ReportingCodeName": account.account_class.title(),
            "HasAttachments": False,
            "UpdatedDateUTC": ms_timestamp(account.updated_ms if updated_ms is None else updated_ms),
            "AddToWatchlist": account.add_to_watchlist,
        }
        if account.type == "BANK":
            element["BankAccountNumber"] = account.bank_account_number
            element["CurrencyCode"] = base_currency
        if account.system_account:
            element["SystemAccount"] = account.system_account
        return element

    def _accounts(self, tenant_id: str) -> list[dict[str, Any]]:
        organisation = self.store.organisation(tenant_id)
        assert organisation is not None
        return [self.render_account(account, organisation.base_currency) for account in self.store.stored_accounts(tenant_id)]

    def chart_of_accounts(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> Answer:
        """GET /Accounts (where), GET /Accounts/{id}; PUT /Accounts creates one account (the body is one
        Account, as the spec's createAccount gives it); POST /Accounts/{id} updates one (the body is
        {"Accounts": [one Account]}, the spec's updateAccount); DELETE /Accounts/{id} deletes one that was
        never used. A refusal is Xero's 400 ValidationException naming the account and its errors."""
        if method == "GET" and not rest:
            return _ok("Accounts", _filtered(self._accounts(tenant_id), query))
        if method == "GET" and len(rest) == 1:
            found = [e for e in self._accounts(tenant_id) if e["AccountID"] == rest[0].lower()]
            return _ok("Accounts", found) if found else _not_found()
        if method == "PUT" and not rest:
            return self.create_account(tenant_id, payload)
        if method == "POST" and len(rest) == 1:
            return self.update_account(tenant_id, rest[0].lower(), payload)
        if method == "DELETE" and len(rest) == 1:
            return self.delete_account(tenant_id, rest[0].lower())
        return _not_found()

    def _chart(self, tenant_id: str) -> Chart:
        organisation = self.store.organisation(tenant_id)
        assert organisation is not None
        rates = {
            row["tax_type"]: TaxRateFit(row["tax_type"], row["status"], frozenset(row["applies_to"].split(",")))
            for row in self.store.tax_rates(tenant_id)
        }
        return Chart(organisation.base_currency, self.store.stored_accounts(tenant_id), rates)

    def _account_answer(self, tenant_id: str, account_id: str) -> Answer:
        found = [e for e in self._accounts(tenant_id) if e["AccountID"] == account_id]
        return _ok("Accounts", found)

    def create_account(self, tenant_id: str, payload: Any) -> Answer:
        with self.store.transaction():
            chart = self._chart(tenant_id)
            checked = check_new_account(payload, chart, str(uuid.uuid4()))
            if checked.errors:
                return self._refused(checked.echo, checked.errors)
            assert checked.account is not None
            self.store.insert_account(tenant_id, checked.account)
        return self._account_answer(tenant_id, checked.account.account_id)

    def update_account(self, tenant_id: str, account_id: str, payload: Any) -> Answer:
        # spec: the body is {"Accounts": [Account]}; one account a call (xero-facts). Xero reads only the
        # first of several (XeroAPI/Xero-Net#285): the sandbox refuses more than one instead
        if not (isinstance(payload, dict) and isinstance(payload.get("Accounts"), list)):
            return self._refused({"AccountID": account_id}, [
                'The request body must be {"Accounts": [one Account]}, as the spec\'s updateAccount gives it.'])
        if len(payload["Accounts"]) != 1:
            return self._refused({"AccountID": account_id}, ["Exactly one account can be updated a call."])
        with self.store.transaction():
            chart = self._chart(tenant_id)
            current = next((a for a in chart.accounts if a.account_id == account_id), None)
            if current is None:
                return _not_found()
            checked = check_account_update(payload["Accounts"][0], current, chart)
            if checked.errors:
                return self._refused(checked.echo, checked.errors)
            assert checked.account is not None
            if checked.account != current:
                self.store.update_account(tenant_id, checked.account, current.code)
        return self._account_answer(tenant_id, account_id)

    def delete_account(self, tenant_id: str, account_id: str) -> Answer:
        """The answer is the account as it was, with Status DELETED (the spec's deleteAccount example);
        afterwards it is gone: not listed, not found, its code and name free."""
        with self.store.transaction():
            chart = self._chart(tenant_id)
            account = next((a for a in chart.accounts if a.account_id == account_id), None)
            if account is None:
                return _not_found()
            errors = chart.deletion_errors(account)
            if errors:
                return self._refused({"AccountID": account.account_id, "Code": account.code, "Name": account.name,
                                      "Type": account.type, "Status": account.status}, errors)
            self.store.delete_account(tenant_id, account)
        return _ok("Accounts", [self.render_account(account, chart.base_currency, status="DELETED", updated_ms=now_ms())])

    def _tax_rates(self, tenant_id: str) -> list[dict[str, Any]]:
        elements = []
        for row in self.store.tax_rates(tenant_id):
            applies = set(row["applies_to"].split(","))
            rate = Decimal(row["rate"])
            elements.append(
                {
                    "Name": row["name"],
                    "TaxType": row["tax_type"],
                    "ReportTaxType": row["report_tax_type"],
                    "CanApplyToAssets": "ASSET" in applies,
                    "CanApplyToEquity": "EQUITY" in applies,
                    "CanApplyToExpenses": "EXPENSE" in applies,
                    "CanApplyToLiabilities": "LIABILITY" in applies,
                    "CanApplyToRevenue": "REVENUE" in applies,
                    "DisplayTaxRate": rate,
                    "EffectiveRate": rate,
                    "Status": row["status"],
                    "TaxComponents": [{"Name": "GST", "Rate": rate, "IsCompound": False, "IsNonRecoverable": False}],
                }
            )
        return elements

    def ledger(self, tenant_id: str) -> Ledger:
        organisation = self.store.organisation(tenant_id)
        assert organisation is not None
        accounts = {
            row["code"]: AccountInfo(
                row["code"], row["account_id"], row["name"], row["type"], row["class"], row["tax_type"],
                row["status"], row["system_account"], bool(row["enable_payments"]),
            )
            for row in self.store.accounts(tenant_id)
        }
        tax_rates = {
            row["tax_type"]: TaxRateInfo(row["tax_type"], Decimal(row["rate"]), row["status"], frozenset(row["applies_to"].split(",")))
            for row in self.store.tax_rates(tenant_id)
        }
        categories = self.store.tracking_categories(tenant_id)
        options = self.store.tracking_options([c["category_id"] for c in categories])
        by_name: dict[str, TrackingCategoryInfo] = {}
        by_id: dict[str, TrackingCategoryInfo] = {}
        for row in categories:
            info = TrackingCategoryInfo(row["category_id"], row["name"], row["status"])
            for option in options[row["category_id"]]:
                entry = (option["option_id"], option["name"], option["status"])
                info.options_by_name[option["name"].casefold()] = entry
                info.options_by_id[option["option_id"].lower()] = entry
            # an active category wins over an archived one of the same name
            if row["status"] == "ACTIVE" or row["name"].casefold() not in by_name:
                by_name[row["name"].casefold()] = info
            by_id[row["category_id"].lower()] = info
        return Ledger(
            organisation.base_currency, organisation.period_lock_date, accounts, tax_rates, by_name, by_id,
            organisation.end_of_year_lock_date,
        )

    # -- tracking categories ------------------------------------------------------------------------
    def _categories(self, tenant_id: str, include_archived: bool = True) -> list[dict[str, Any]]:
        rows = self.store.tracking_categories(tenant_id)
        options = self.store.tracking_options([row["category_id"] for row in rows])
        elements = []
        for row in rows:
            if row["status"] != "ACTIVE" and not include_archived:
                continue
            elements.append(
                {
                    "TrackingCategoryID": row["category_id"],
                    "Name": row["name"],
                    "Status": row["status"],
                    "Options": [
                        self._option(option, row["category_id"])
                        for option in options[row["category_id"]]
                        if option["status"] == "ACTIVE" or include_archived
                    ],
                }
            )
        return elements

    @staticmethod
    def _option(row: Any, category_id: str) -> dict[str, Any]:
        return {"TrackingOptionID": row["option_id"], "Name": row["name"], "Status": row["status"], "TrackingCategoryID": category_id}

    def tracking(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> Answer:
        include_archived = query.get("includearchived", "").lower() == "true"
        if method == "GET" and not rest:
            return _ok("TrackingCategories", _filtered(self._categories(tenant_id, include_archived), query))
        if method == "GET" and len(rest) == 1:
            found = [c for c in self._categories(tenant_id) if c["TrackingCategoryID"] == rest[0].lower()]
            return _ok("TrackingCategories", found) if found else _not_found()
        if method == "PUT" and not rest:
            return self.create_category(tenant_id, payload)
        if method == "POST" and len(rest) == 1:
            return self.update_category(tenant_id, rest[0].lower(), payload)
        if method == "PUT" and len(rest) == 2 and rest[1] == "Options":
            return self.add_options(tenant_id, rest[0].lower(), payload)
        if method == "POST" and len(rest) == 3 and rest[1] == "Options":
            return self.update_option(tenant_id, rest[0].lower(), rest[2].lower(), payload)
        return _not_found()

    @staticmethod
    def _single(payload: Any, collection: str) -> dict[str, Any]:
        if isinstance(payload, dict) and isinstance(payload.get(collection), list) and payload[collection]:
            first = payload[collection][0]
            return first if isinstance(first, dict) else {}
        return payload if isinstance(payload, dict) else {}

    def _category_errors(self, tenant_id: str, name: str, becoming_active: bool, category_id: str | None) -> list[str]:
        errors = []
        others = [row for row in self.store.tracking_categories(tenant_id) if row["category_id"] != category_id]
        if not name:
            errors.append("Tracking category name is required.")
        elif len(name) > TRACKING_CATEGORY_LIMIT:
            errors.append(f"The tracking category name must be {TRACKING_CATEGORY_LIMIT} characters or fewer.")
        elif any(row["name"].casefold() == name.casefold() for row in others):
            errors.append("For each specified tracking category the name must be unique.")
        if becoming_active and sum(row["status"] == "ACTIVE" for row in others) >= MAX_ACTIVE_CATEGORIES:
            errors.append("You cannot have more than 2 active tracking categories.")
        if category_id is None and len(others) >= MAX_CATEGORIES:
            errors.append("You cannot have more than 4 tracking categories, including archived ones.")
        return errors

    def create_category(self, tenant_id: str, payload: Any) -> Answer:
        element = self._single(payload, "TrackingCategories")
        name = _text(element.get("Name"))
        with self.store.transaction():
            errors = self._category_errors(tenant_id, name, becoming_active=True, category_id=None)
            if errors:
                return self._refused({"Name": name, "Status": "ACTIVE", "Options": []}, errors)
            category_id = self.store.add_tracking_category(tenant_id, name)
        found = [c for c in self._categories(tenant_id) if c["TrackingCategoryID"] == category_id]
        return _ok("TrackingCategories", found)

    def update_category(self, tenant_id: str, category_id: str, payload: Any) -> Answer:
        element = self._single(payload, "TrackingCategories")
        with self.store.transaction():
            row = self.store.query_one(
                "SELECT * FROM tracking_categories WHERE tenant_id = ? AND category_id = ? AND status != 'DELETED'",
                (tenant_id, category_id),
            )
            if row is None:
                return _not_found()
            name = _text(element.get("Name")) or row["name"]
            status = _text(element.get("Status")).upper() or row["status"]
            errors = [] if status in ("ACTIVE", "ARCHIVED") else [f"'{status}' is not a valid tracking category status."]
            errors += self._category_errors(tenant_id, name, status == "ACTIVE" and row["status"] != "ACTIVE", category_id)
            if errors:
                return self._refused({"TrackingCategoryID": category_id, "Name": name, "Status": row["status"]}, errors)
            self.store.execute(
                "UPDATE tracking_categories SET name = ?, status = ? WHERE category_id = ?", (name, status, category_id)
            )
        return _ok("TrackingCategories", [c for c in self._categories(tenant_id) if c["TrackingCategoryID"] == category_id])

    def add_options(self, tenant_id: str, category_id: str, payload: Any) -> Answer:
        """PUT TrackingCategories/{id}/Options (the spec's createTrackingOptions): the body is one
        TrackingOption object, `{"Name": "Hamilton"}`, and the answer is `{"Options": [that option]}`.
        The spec describes no list form, so `{"Options": [...]}` (or any field the TrackingOption schema
        lacks) is refused with a 400 ValidationException: one option per call, as the spec gives it."""
        shape_errors = []
        if not isinstance(payload, dict):
            shape_errors.append("The request body must be one TrackingOption object, e.g. {\"Name\": \"North\"}.")
        else:
            unknown = sorted(set(payload) - TRACKING_OPTION_FIELDS)
            if "Options" in payload:
                shape_errors.append(
                    "Options cannot be sent as a list: the body must be one TrackingOption object, "
                    "e.g. {\"Name\": \"North\"}, one request per option."
                )
            elif unknown:
                shape_errors.append(f"{', '.join(unknown)} is not a field of a TrackingOption.")
        if shape_errors:
            echo = {"Name": _text(payload.get("Name"))} if isinstance(payload, dict) else {}
            return self._refused(echo, shape_errors)
        name = _text(payload.get("Name"))
        with self.store.transaction():
            category = self.store.query_one(
                "SELECT * FROM tracking_categories WHERE tenant_id = ? AND category_id = ? AND status != 'DELETED'",
                (tenant_id, category_id),
            )
            if category is None:
                return _not_found()
            taken = {row["name"].casefold() for row in self.store.tracking_options([category_id])[category_id]}
            errors = []
            if category["status"] != "ACTIVE":
                errors.append(f"Options cannot be added to the archived tracking category '{category['name']}'.")
            if not name:
                errors.append("Tracking option name is required.")
            elif len(name) > TRACKING_OPTION_LIMIT:
                errors.append(f"The tracking option name must be {TRACKING_OPTION_LIMIT} characters or fewer.")
            elif name.casefold() in taken:
                errors.append("For each specified tracking option the name must be unique.")
            status = _text(payload.get("Status")).upper() or "ACTIVE"
            if status != "ACTIVE":
                errors.append(f"A new tracking option must be ACTIVE, not {status}.")
            if payload.get("TrackingOptionID") not in (None, ""):
                errors.append("TrackingOptionID cannot be given for a new tracking option: Xero assigns it.")
            given_category = _text(payload.get("TrackingCategoryID")).lower()
            if given_category and given_category != category_id:
                errors.append("The TrackingCategoryID in the body does not match the one in the URL.")
            if errors:
                return self._refused({"Name": name, "Status": "ACTIVE", "TrackingCategoryID": category_id}, errors)
            option_id = self.store.add_tracking_option(category_id, name)
        return _ok("Options", [{"TrackingOptionID": option_id, "Name": name, "Status": "ACTIVE", "TrackingCategoryID": category_id}])

    def update_option(self, tenant_id: str, category_id: str, option_id: str, payload: Any) -> Answer:
        element = self._single(payload, "Options")
        with self.store.transaction():
            row = self.store.query_one(
                "SELECT o.* FROM tracking_options o JOIN tracking_categories c ON c.category_id = o.category_id "
                "WHERE c.tenant_id = ? AND o.category_id = ? AND o.option_id = ? AND o.status != 'DELETED'",
                (tenant_id, category_id, option_id),
            )
            if row is None:
                return _not_found()
            name = _text(element.get("Name")) or row["name"]
            status = _text(element.get("Status")).upper() or row["status"]
            others = [o for o in self.store.tracking_options([category_id])[category_id] if o["option_id"] != option_id]
            errors = []
            if status not in ("ACTIVE", "ARCHIVED"):
                errors.append(f"'{status}' is not a valid tracking option status.")
            if len(name) > TRACKING_OPTION_LIMIT:
                errors.append(f"The tracking option name must be {TRACKING_OPTION_LIMIT} characters or fewer.")
            if any(o["name"].casefold() == name.casefold() for o in others):
                errors.append("For each specified tracking option the name must be unique.")
            if errors:
                return self._refused({"TrackingOptionID": option_id, "Name": name, "Status": row["status"]}, errors)
            self.store.execute("UPDATE tracking_options SET name = ?, status = ? WHERE option_id = ?", (name, status, option_id))
            updated = self.store.query_one("SELECT * FROM tracking_options WHERE option_id = ?", (option_id,))
        return _ok("Options", [self._option(updated, category_id)])

    @staticmethod
    def _refused(element: dict[str, Any], errors: list[str]) -> Answer:
        return Answer(400, validation_exception([{**element, "ValidationErrors": [{"Message": m} for m in errors]}]))

    # -- contacts -----------------------------------------------------------------------------------
    @staticmethod
    def render_contact(contact: dict[str, Any]) -> dict[str, Any]:
        element = {key: value for key, value in contact.items() if key != "UpdatedDateUTC"}
        element["UpdatedDateUTC"] = ms_timestamp(contact["UpdatedDateUTC"])
        element.setdefault("Addresses", [])
        element.setdefault("Phones", [])
        element["ContactGroups"] = []
        element["ContactPersons"] = []
        element["HasAttachments"] = False
        element["HasValidationErrors"] = False
        return element

    @staticmethod
    def embedded_contact(contact: dict[str, Any] | None) -> dict[str, Any]:
        if contact is None:
            return {}
        element = {"ContactID": contact["ContactID"], "Name": contact["Name"], "ContactStatus": contact["ContactStatus"]}
        for key in ("ContactNumber", "EmailAddress", "FirstName", "LastName"):
            if contact.get(key):
                element[key] = contact[key]
        element["Addresses"] = []
        element["Phones"] = []
        element["ContactGroups"] = []
        element["ContactPersons"] = []
        element["HasValidationErrors"] = False
        return element

    def contacts(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> Answer:
        if method == "GET":
            if rest:
                contact = self.store.contact_by_id(tenant_id, rest[0].lower())
                return _ok("Contacts", [self.render_contact(contact)]) if contact and len(rest) == 1 else _not_found()
            return self.list_contacts(tenant_id, query)
        if method in ("PUT", "POST") and len(rest) <= 1:
            return self.write_contacts(tenant_id, method, rest[0].lower() if rest else None, query, payload)
        return _not_found()

    def list_contacts(self, tenant_id: str, query: dict[str, str]) -> Answer:
        where = _where(query)
        contacts = None
        if where is not None:
            for field_name, column in (("Name", "name"), ("ContactNumber", "contact_number")):
                values = where.equality_values(field_name)
                if values is not None:
                    contacts = []
                    for value in values:
                        rows = self.store.query(
                            f"SELECT document FROM contacts WHERE tenant_id = ? AND {column} = ? ORDER BY rowid", (tenant_id, value)
                        )
                        contacts += [loads_exact(row["document"]) for row in rows]
                    break
        if contacts is None:
            contacts = self.store.all_contacts(tenant_id)
        ids = _comma_list(query, "IDs")
        if ids is not None:
            wanted = {i.lower() for i in ids}
            contacts = [c for c in contacts if c["ContactID"] in wanted]
        if query.get("includearchived", "").lower() != "true":
            contacts = [c for c in contacts if c["ContactStatus"] == "ACTIVE"]
        elements = [self.render_contact(c) for c in contacts]
        if where is not None:
            elements = [e for e in elements if where(_lookup(e))]
        return self._paged("Contacts", elements, query)

    def _paged(self, collection: str, elements: list[dict[str, Any]], query: dict[str, str]) -> Answer:
        if "page" not in query:
            return _ok(collection, elements)
        try:
            page = max(int(query["page"]), 1)
            size = min(max(int(query.get("pagesize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
        except ValueError:
            return Answer(400, query_parse_error("page and pageSize must be whole numbers"))
        chunk = elements[(page - 1) * size : page * size]
        pagination = {"page": page, "pageSize": size, "pageCount": -(-len(elements) // size), "itemCount": len(elements)}
        return _ok(collection, chunk, pagination=pagination)

    def _new_contact(self, element: dict[str, Any]) -> dict[str, Any]:
        contact: dict[str, Any] = {
            "ContactID": str(uuid.uuid4()),
            "ContactStatus": "ACTIVE",
            "Name": _text(element.get("Name")),
            "IsSupplier": False,
            "IsCustomer": False,
            "UpdatedDateUTC": now_ms(),
        }
        for key in ("ContactNumber", "EmailAddress", "FirstName", "LastName", "AccountNumber", "TaxNumber"):
            if _text(element.get(key)):
                contact[key] = _text(element.get(key))
        return contact

    def _contact_errors(self, tenant_id: str, contact: dict[str, Any]) -> list[str]:
        errors = []
        name = contact.get("Name", "")
        if not name:
            errors.append("The contact name must be specified.")
        elif len(name) > CONTACT_NAME_LIMIT:
            errors.append(f"The contact name must be {CONTACT_NAME_LIMIT} characters or fewer.")
        number = contact.get("ContactNumber", "")
        if len(number) > CONTACT_NUMBER_LIMIT:
            errors.append(f"ContactNumber must be {CONTACT_NUMBER_LIMIT} characters or fewer.")
        elif number:
            # Xero's docs: ContactNumber is the key of the contact in an external system. Xero does not say it
            # refuses a second contact with one; the stricter reading refuses it among all contacts, archived
            # ones too, compared case-insensitively (store.number_key)
            others = [c for c in self.store.contacts_keyed(tenant_id, "number_key", number_key(number), active_only=False)
                      if c["ContactID"] != contact["ContactID"]]
            if others:
                errors.append(f"The ContactNumber {number} is already assigned to another contact "
                              f"({others[0]['Name']}, {others[0]['ContactStatus']}). The ContactNumber must be unique.")
        if name and contact.get("ContactStatus") == "ACTIVE":
            # xero-facts.md: names are unique among active contacts; compared case-insensitively with white
            # space collapsed (store.name_key), the stricter reading
            same = [c for c in self.store.contacts_keyed(tenant_id, "name_key", name_key(name), active_only=True)
                    if c["ContactID"] != contact["ContactID"]]
            if same:
                errors.append(
                    f"The contact name {name} is already assigned to another contact. "
                    "The contact name must be unique across all active contacts."
                )
        return errors

    def write_contacts(self, tenant_id: str, method: str, path_id: str | None, query: dict[str, str], payload: Any) -> Answer:
        elements = self._elements(payload, "Contacts")
        summarize = query.get("summarizeerrors", "true").lower() != "false"
        results, failed = [], False
        with self.store.transaction():
            for element in elements:
                if not isinstance(element, dict):
                    element = {}
                existing = None
                contact_id = path_id or _text(element.get("ContactID")).lower()
                if method == "POST" and contact_id:
                    existing = self.store.contact_by_id(tenant_id, contact_id)
                    if existing is None:
                        failed = True
                        results.append({**element, "StatusAttributeString": "ERROR", "HasValidationErrors": True,
                                        "ValidationErrors": [{"Message": "The contact could not be found."}]})
                        continue
                if existing is not None:
                    contact = dict(existing)
                    for key in ("Name", "ContactNumber", "EmailAddress", "FirstName", "LastName", "AccountNumber", "TaxNumber"):
                        if key in element:
                            contact[key] = _text(element[key])
                    if _text(element.get("ContactStatus")).upper() in ("ACTIVE", "ARCHIVED"):
                        contact["ContactStatus"] = _text(element["ContactStatus"]).upper()
                    contact["UpdatedDateUTC"] = now_ms()
                else:
                    contact = self._new_contact(element)
                errors = self._contact_errors(tenant_id, contact)
                if errors:
                    failed = True
                    echo = {k: v for k, v in element.items() if k in ("Name", "ContactNumber", "EmailAddress", "FirstName", "LastName")}
                    results.append({**echo, "ContactID": ZERO_ID, "StatusAttributeString": "ERROR", "HasValidationErrors": True,
                                    "ValidationErrors": [{"Message": m} for m in errors]})
                    continue
                self.store.save_contact(tenant_id, contact)
                results.append({**self.render_contact(contact), "StatusAttributeString": "OK"})
            if failed and summarize:
                raise _Discard(Answer(400, validation_exception([r for r in results if r.get("ValidationErrors")])))
        if summarize:
            for result in results:
                result.pop("StatusAttributeString", None)
        return _ok("Contacts", results)

    def _document_contact(
        self, tenant_id: str, spec: Any, sales: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
        """(found contact, contact to create, error) for a document's Contact element."""
        if not isinstance(spec, dict) or not any(_text(spec.get(k)) for k in ("ContactID", "ContactNumber", "Name")):
            return None, None, "A Contact must be specified for this type of transaction"
        contact_id = _text(spec.get("ContactID")).lower()
        if contact_id:
            contact = self.store.contact_by_id(tenant_id, contact_id)
            if contact is None:
                return None, None, f"The contact with ContactID {contact_id} could not be found."
            return contact, None, None
        number = _text(spec.get("ContactNumber"))
        if number:
            contact = self.store.active_contact_by(tenant_id, "number_key", number_key(number))
            if contact is not None:
                return contact, None, None
        name = _text(spec.get("Name"))
        if name:
            contact = self.store.active_contact_by(tenant_id, "name", name)
            if contact is not None:
                return contact, None, None
        if not name:
            return None, None, f"No contact has ContactNumber {number}; give a Name to create one."
        new = self._new_contact(spec)
        errors = self._contact_errors(tenant_id, new)
        return None, new, (errors[0] if errors else None)

    # -- invoices and credit notes: reading --------------------------------------------------------------
    def render_document(
        self,
        kind: DocumentKind,
        document: dict[str, Any],
        contact: dict[str, Any] | None,
        unitdp: int,
        errors: list[str] | None = None,
        with_status_attribute: bool = False,
    ) -> dict[str, Any]:
        unit_places = Decimal("0.0001") if unitdp == 4 else CENT
        status = document.get("Status")
        total = document.get("Total", Decimal("0.00"))
        payments = live_payments(document)
        paid = amount_paid(document)
        open_amount = amount_due(document)  # Total − payments − allocations (allocations.py)
        element: dict[str, Any] = {}
        if document.get("Type") in kind.types:
            element["Type"] = document["Type"]
        element[kind.id_field] = document.get(kind.id_field) or ZERO_ID
        if document.get(kind.number_field):
            element[kind.number_field] = document[kind.number_field]
        element["Reference"] = document.get("Reference") or ""
        element["Contact"] = self.embedded_contact(contact)
        for name in ("Date", "DueDate"):
            day = parse_date(document.get(name))
            if day is not None:
                element[name] = ms_date(day)
                element[f"{name}String"] = date_string(day)
        if status in ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"):
            element["Status"] = status
        element["LineAmountTypes"] = document.get("LineAmountTypes", "Exclusive")
        element["LineItems"] = [self._render_line(line, unit_places) for line in document.get("LineItems", [])]
        element["SubTotal"] = document.get("SubTotal", Decimal("0.00"))
        element["TotalTax"] = document.get("TotalTax", Decimal("0.00"))
        element["Total"] = total
        if document.get("TotalDiscount"):
            element["TotalDiscount"] = document["TotalDiscount"]
        element["UpdatedDateUTC"] = ms_timestamp(document.get("UpdatedDateUTC") or now_ms())
        element["CurrencyCode"] = document.get("CurrencyCode") or "NZD"
        element["CurrencyRate"] = Decimal("1.000000")
        if document.get("Url"):
            element["Url"] = document["Url"]
        element["HasAttachments"] = False
        element["Payments"] = [self._embedded_payment(payment) for payment in payments]
        fully_paid_on = parse_date(document.get("_fully_paid_on"))
        if status == "PAID" and fully_paid_on is not None:
            element["FullyPaidOnDate"] = ms_date(fully_paid_on)
        if kind.collection == "Invoices":
            element["IsDiscounted"] = bool(document.get("TotalDiscount"))
            element["Prepayments"] = []
            element["Overpayments"] = []
            element["CreditNotes"] = invoice_credit_notes(document)
            element["AmountDue"] = open_amount
            element["AmountPaid"] = paid
            element["AmountCredited"] = amount_allocated(document)
            element["SentToContact"] = False
        else:
            element["RemainingCredit"] = open_amount
            element["Allocations"] = credit_note_allocations(document)
            element["AppliedAmount"] = amount_allocated(document)
            element["SentToContact"] = False
        element["HasErrors"] = bool(errors)
        if with_status_attribute or errors:
            element["StatusAttributeString"] = "ERROR" if errors else "OK"
        if errors:
            element["ValidationErrors"] = [{"Message": message} for message in errors]
        return element

    @staticmethod
    def _embedded_payment(payment: dict[str, Any]) -> dict[str, Any]:
        """A payment as an invoice or credit note lists it (the spec's getPayment example)."""
        return {
            "PaymentID": payment["PaymentID"],
            "Date": ms_date(parse_date(payment["Date"])),
            "Amount": payment["Amount"],
            "Reference": payment.get("Reference") or "",
            "CurrencyRate": Decimal("1.000000"),
            "HasAccount": False,
            "HasValidationErrors": False,
        }

    @staticmethod
    def _render_line(line: dict[str, Any], unit_places: Decimal) -> dict[str, Any]:
        element = {key: value for key, value in line.items() if not key.startswith("_")}
        element["UnitAmount"] = Decimal(line["UnitAmount"]).quantize(unit_places, rounding=ROUND_HALF_UP)
        element["Tracking"] = [dict(entry) for entry in line.get("Tracking", [])]
        element.setdefault("ValidationErrors", [])
        return element

    def get_documents(self, kind: DocumentKind, tenant_id: str, rest: list[str], query: dict[str, str]) -> Answer:
        unitdp = 4 if query.get("unitdp") == "4" else 2
        if rest:
            if len(rest) != 1:
                return _not_found()
            document = self.store.document(kind.collection, tenant_id, rest[0].lower())
            if document is None and kind is not None:
                # Xero also accepts the number in place of the id
                matches = self.store.documents_by_number(kind.collection, tenant_id, [rest[0]])
                document = matches[0] if matches else None
            if document is None:
                return _not_found()
            contacts = self.store.contacts_by_ids(tenant_id, [document.get("ContactID") or ""])
            return _ok(kind.collection, [self.render_document(kind, document, contacts.get(document.get("ContactID")), unitdp)])

        where = _where(query)
        numbers = _comma_list(query, "InvoiceNumbers") if kind.collection == "Invoices" else None
        if where is not None and numbers is None:
            # an index lookup by number when every matching document must have one of some numbers, as in
            # a bill's lookup: (Type=="ACCPAY" AND Contact.ContactNumber=="S1" AND InvoiceNumber=="9") OR (…)
            pushed = required_values(where, kind.number_field)
            numbers = sorted(pushed) if pushed is not None else None
        ids = _comma_list(query, "IDs")
        statuses = _comma_list(query, "Statuses")
        contact_ids = _comma_list(query, "ContactIDs")
        rows = self.store.document_rows(
            kind.collection,
            tenant_id,
            ids=[i.lower() for i in ids] if ids is not None else None,
            numbers=numbers,
            statuses=[s.upper() for s in statuses] if statuses is not None else None,
            contact_ids=[c.lower() for c in contact_ids] if contact_ids is not None else None,
        )
        column_fields = {
            kind.number_field: "number", "Type": "type", "Status": "status", "Date": "date", "DueDate": "due_date",
            "Reference": "reference", "Contact.ContactID": "contact_id", kind.id_field: "id",
        }
        if where is not None and where.fields() <= set(column_fields):
            rows = [row for row in rows if where(lambda name: row[column_fields[name]])]
            where = None
        documents = [loads_exact(row["document"]) for row in rows]
        contacts = self.store.contacts_by_ids(tenant_id, {d.get("ContactID") or "" for d in documents})
        if where is not None:
            kept = []
            for document in documents:
                view = dict(document)
                view["Contact"] = contacts.get(document.get("ContactID")) or {}
                view["AmountPaid"] = amount_paid(document)
                view["AmountDue"] = amount_due(document)
                view["AmountCredited"] = amount_allocated(document)
                if where(_lookup(view)):
                    kept.append(document)
            documents = kept
        documents = self._ordered(documents, query.get("order", ""))
        if "page" in query:
            try:
                page = max(int(query["page"]), 1)
                size = min(max(int(query.get("pagesize", DEFAULT_PAGE_SIZE)), 1), MAX_PAGE_SIZE)
            except ValueError:
                return Answer(400, query_parse_error("page and pageSize must be whole numbers"))
            item_count = len(documents)
            documents = documents[(page - 1) * size : page * size]
            pagination = {"page": page, "pageSize": size, "pageCount": -(-item_count // size), "itemCount": item_count}
            extra = {"pagination": pagination}
        else:
            extra = {}
        elements = [self.render_document(kind, d, contacts.get(d.get("ContactID")), unitdp) for d in documents]
        return _ok(kind.collection, elements, **extra)

    @staticmethod
    def _ordered(documents: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
        for clause in reversed([c.strip() for c in order.split(",") if c.strip()]):
            words = clause.split()
            name, descending = words[0], len(words) > 1 and words[1].upper() == "DESC"
            documents = sorted(documents, key=lambda d: (d.get(name) is None, str(d.get(name) or "")), reverse=descending)
        return documents

    # -- invoices and credit notes: writing --------------------------------------------------------------
    @staticmethod
    def _elements(payload: Any, collection: str) -> list[Any]:
        if isinstance(payload, dict) and isinstance(payload.get(collection), list):
            return payload[collection]
        if isinstance(payload, list):
            return payload
        return [payload]

    def write_documents(
        self, kind: DocumentKind, tenant_id: str, method: str, path_id: str | None, query: dict[str, str], payload: Any
    ) -> Answer:
        elements = self._elements(payload, kind.collection)
        summarize = query.get("summarizeerrors", "true").lower() != "false"
        unitdp = 4 if query.get("unitdp") == "4" else 2
        ledger = self.ledger(tenant_id)
        results: list[dict[str, Any]] = []
        with self.store.transaction():
            for element in elements:
                results.append(self._write_one(kind, tenant_id, method, path_id, element, ledger, unitdp, not summarize))
            if summarize and any(r["HasErrors"] for r in results):
                raise _Discard(Answer(400, validation_exception([r for r in results if r["HasErrors"]])))
        return _ok(kind.collection, results)

    def _existing_for(self, kind: DocumentKind, tenant_id: str, method: str, path_id: str | None, element: dict[str, Any]):
        """(existing document or None, error)."""
        if method != "POST":
            return None, None
        document_id = (path_id or _text(element.get(kind.id_field))).lower()
        if document_id and document_id != ZERO_ID:
            document = self.store.document(kind.collection, tenant_id, document_id)
            if document is None:
                return None, f"{kind.noun} with {kind.id_field} {document_id} could not be found."
            return document, None
        number = _text(element.get(kind.number_field))
        if number:
            for document in self.store.documents_by_number(kind.collection, tenant_id, [number]):
                if document["Status"] not in ("DELETED", "VOIDED") and kind.is_sales(document["Type"]):
                    return document, None
        return None, None

    def _write_one(
        self,
        kind: DocumentKind,
        tenant_id: str,
        method: str,
        path_id: str | None,
        element: Any,
        ledger: Ledger,
        unitdp: int,
        status_attribute: bool,
    ) -> dict[str, Any]:
        def refused(document: dict[str, Any], errors: list[str], contact: dict[str, Any] | None = None) -> dict[str, Any]:
            return self.render_document(kind, document, contact, unitdp, errors, status_attribute)

        if not isinstance(element, dict):
            return refused({}, [f"Each {kind.noun.lower()} must be a JSON object."])
        existing, error = self._existing_for(kind, tenant_id, method, path_id, element)
        if error:
            return refused({}, [error])
        stamp = now_ms()

        if existing is not None:
            current = existing["Status"]
            wanted = _text(element.get("Status")).upper() or current
            invalid = INVALID_FOR_MODIFICATION.format(noun=kind.noun)
            verb = {"VOIDED": "voided", "DELETED": "deleted"}.get(wanted, "edited")
            if is_applied(existing):
                # xero-facts.md: a document with payments or credit note allocations cannot be edited or voided
                # until they are removed. Xero's words for an edit (XeroAPI/Xero-NetStandard#84), kept for a
                # void or delete.
                return refused(existing, [f"This document cannot be {verb} as it has a payment or credit note allocated to it."])
            if current not in CREATE_STATUSES:
                return refused(existing, [invalid])
            if ledger.locked(parse_date(existing.get("Date"))):
                # processes.md: nothing is edited, voided or paid on or before a lock date. Xero documents
                # that lock dates stop approved transactions; refusing to edit or delete a DRAFT or
                # SUBMITTED document dated there too is the stricter reading.
                return refused(existing, [
                    f"This {kind.noun.lower()} is dated on or before {ledger.lock_phrase()} and cannot be {verb}; "
                    "an adviser must change the lock date first."
                ])
            if wanted in ("VOIDED", "DELETED"):
                allowed = ("AUTHORISED",) if wanted == "VOIDED" else ("DRAFT", "SUBMITTED")
                if current not in allowed:
                    reason = (
                        "Only AUTHORISED documents can be voided; delete a DRAFT or SUBMITTED one."
                        if wanted == "VOIDED"
                        else "An AUTHORISED document cannot be deleted; void it instead."
                    )
                    return refused(existing, [reason])
                changed = {**existing, "Status": wanted, "UpdatedDateUTC": stamp}
                self.store.save_document(kind.collection, tenant_id, changed)
                contact = self.store.contact_by_id(tenant_id, existing.get("ContactID") or "")
                return self.render_document(kind, changed, contact, unitdp, None, status_attribute)
            if current == "AUTHORISED" and wanted in ("DRAFT", "SUBMITTED"):
                return refused(existing, [f"An AUTHORISED {kind.noun.lower()} cannot be returned to {wanted}."])
            checked = check_document(kind, merge_update(existing, element, kind), ledger, unitdp)
        else:
            checked = check_document(kind, element, ledger, unitdp)

        document = checked.document
        errors = list(checked.errors)
        sales = kind.is_sales(document.get("Type", ""))
        contact, new_contact, contact_error = self._document_contact(tenant_id, element.get("Contact") if existing is None or "Contact" in element else {"ContactID": existing.get("ContactID")}, sales)
        if contact_error:
            errors.append(contact_error)

        number = document.get(kind.number_field)
        if sales and number:
            # xero-facts.md: ACCREC numbers are unique in an organisation. Xero's docs do not promise that
            # a VOIDED or DELETED document frees its number, so the stricter reading holds it too.
            for other in self.store.documents_by_number(kind.collection, tenant_id, [number]):
                if kind.is_sales(other["Type"]) and (existing is None or other[kind.id_field] != existing[kind.id_field]):
                    errors.append(f"{'Invoice' if kind.collection == 'Invoices' else 'Credit Note'} # must be unique.")
                    break

        if errors:
            shown = contact or new_contact or ({"ContactID": ZERO_ID, "Name": _text(element.get("Contact", {}).get("Name")) if isinstance(element.get("Contact"), dict) else "", "ContactStatus": "ACTIVE"})
            return refused(document, errors, shown)

        if document["Status"] == "AUTHORISED" and document["Total"] == 0:
            # Xero marks an approved document with nothing to pay as PAID at once (processes.md, the
            # zero-balance invoice); a PAID document can no longer be edited or voided
            document["Status"] = "PAID"
            document["_fully_paid_on"] = document["Date"]
        if new_contact is not None:
            contact = new_contact
        role = "IsCustomer" if sales else "IsSupplier"
        if not contact.get(role):
            contact = {**contact, role: True, "UpdatedDateUTC": stamp}
            self.store.save_contact(tenant_id, contact)
        if sales and not number:
            document[kind.number_field] = self._next_number(kind, tenant_id)
        document[kind.id_field] = existing[kind.id_field] if existing else str(uuid.uuid4())
        document["ContactID"] = contact["ContactID"]
        document["UpdatedDateUTC"] = stamp
        document["CreatedDateUTC"] = existing.get("CreatedDateUTC", stamp) if existing else stamp
        self.store.save_document(kind.collection, tenant_id, document)
        return self.render_document(kind, document, contact, unitdp, None, status_attribute)

    def _next_number(self, kind: DocumentKind, tenant_id: str) -> str:
        prefix = "INV-" if kind.collection == "Invoices" else "CN-"
        sequence = self.store.count_documents(kind.collection, tenant_id) + 1
        while self.store.documents_by_number(kind.collection, tenant_id, [f"{prefix}{sequence:04d}"]):
            sequence += 1
        return f"{prefix}{sequence:04d}"


    # -- credit note allocations (allocations.py) ------------------------------------------------------------
    def credit_note_allocations(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> Answer:
        """PUT /CreditNotes/{id}/Allocations, DELETE /CreditNotes/{id}/Allocations/{AllocationID}."""
        credit_note_id = rest[0].lower()
        if method == "PUT" and len(rest) == 2:
            status, body = self.allocations.create(tenant_id, credit_note_id, query, payload)
        elif method == "DELETE" and len(rest) == 3:
            status, body = self.allocations.delete(tenant_id, credit_note_id, rest[2].lower())
        else:
            return _not_found()
        return Answer(status, body)

    def _allocation_summary(self, kind: DocumentKind, document: dict[str, Any], tenant_id: str) -> dict[str, Any]:
        contact = self.store.contact_by_id(tenant_id, document.get("ContactID") or "")
        summary = self._payment_document_summary(kind, document, contact, False)
        if kind is INVOICES:
            summary["AmountCredited"] = amount_allocated(document)
        else:
            summary["AppliedAmount"] = amount_allocated(document)
        return summary

    # -- payments -------------------------------------------------------------------------------------
    # Xero's Payments endpoint (the spec's getPayments, createPayments, getPayment, deletePayment; shapes
    # from its Payment, Payments and PaymentDelete schemas; rules from xero-facts.md, Payments).
    #   PUT  /Payments           {"Payments": [Payment, …]}, summarizeErrors as for invoices
    #   GET  /Payments           where (Reference=="…" is an index lookup), order, page/pageSize
    #   GET  /Payments/{id}
    #   POST /Payments/{id}      {"Status": "DELETED"}: the only change a payment takes
    # A payment names one Invoice or CreditNote (by id or number) and an Account (by Code or AccountID).
    # The PUT answer names a credit note's payment under "CreditNote"; GET and the delete answer name it
    # under "Invoice" (with the credit note's Type, id and number), as Xero does (the spec's deletePayment
    # example; XeroAPI/xero-ruby#48): a client must read both. POST /Payments (one payment) is not served.
    def payments(self, tenant_id: str, method: str, rest: list[str], query: dict[str, str], payload: Any) -> Answer:
        if method == "GET" and not rest:
            return self.list_payments(tenant_id, query)
        if method == "GET" and len(rest) == 1:
            payment = self.store.payment(tenant_id, rest[0].lower())
            return _ok("Payments", self._render_payments(tenant_id, [payment])) if payment else _not_found()
        if method == "PUT" and not rest:
            return self.create_payments(tenant_id, query, payload)
        if method == "POST" and len(rest) == 1:
            return self.delete_payment(tenant_id, rest[0].lower(), payload)
        return _not_found()

    def _payment_document_summary(
        self, kind: DocumentKind, document: dict[str, Any], contact: dict[str, Any] | None, as_invoice: bool
    ) -> dict[str, Any]:
        """The document a payment names, as a payment shows it (no lines, no payments)."""
        rendered = self.render_document(kind, document, contact, 2)
        keep = (
            "Type", kind.id_field, kind.number_field, "Reference", "Contact", "Date", "DateString", "DueDate",
            "DueDateString", "Status", "LineAmountTypes", "SubTotal", "TotalTax", "Total", "UpdatedDateUTC",
            "CurrencyCode", "CurrencyRate", "FullyPaidOnDate", "AmountDue", "AmountPaid", "RemainingCredit",
            "HasErrors", "IsDiscounted",
        )
        summary = {key: rendered[key] for key in keep if key in rendered}
        summary["LineItems"] = []
        summary["Payments"] = []
        if as_invoice and kind is CREDIT_NOTES:
            summary["InvoiceID"] = summary.pop("CreditNoteID")
            if "CreditNoteNumber" in summary:
                summary["InvoiceNumber"] = summary.pop("CreditNoteNumber")
            summary["AmountDue"] = summary.pop("RemainingCredit")
            summary["AmountPaid"] = amount_paid(document)
        return summary

    def render_payment(
        self,
        payment: dict[str, Any],
        document: dict[str, Any] | None,
        contact: dict[str, Any] | None,
        account: AccountInfo | None,
        document_key: str,
    ) -> dict[str, Any]:
        """A stored payment in Xero's Payment shape; `document_key` is "Invoice" or "CreditNote"."""
        kind = KINDS[payment["Collection"]]
        updated = payment["UpdatedDateUTC"]
        element: dict[str, Any] = {
            "PaymentID": payment["PaymentID"],
            "Date": ms_date(parse_date(payment["Date"])),
            "BankAmount": payment["Amount"],
            "Amount": payment["Amount"],
            "Reference": payment.get("Reference") or "",
            "CurrencyRate": Decimal("1.000000"),
            "PaymentType": payment["PaymentType"],
            "Status": payment["Status"],
            "UpdatedDateUTC": ms_timestamp(updated),
            "UpdatedDateUTCString": datetime.fromtimestamp(updated / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "HasAccount": True,
            "IsReconciled": bool(payment.get("IsReconciled")),
        }
        if account is not None:
            element["Account"] = {"AccountID": account.account_id, "Code": account.code, "Name": account.name}
        if document is not None:
            element[document_key] = self._payment_document_summary(kind, document, contact, document_key == "Invoice")
        element["HasValidationErrors"] = False
        return element

    def _render_payments(self, tenant_id: str, payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stored payments as GET and the delete answer show them (each document under "Invoice"),
        rendered in bulk: documents, contacts and accounts are read once."""
        wanted: dict[str, set[str]] = {"Invoices": set(), "CreditNotes": set()}
        for payment in payments:
            wanted[payment["Collection"]].add(payment["DocumentID"])
        documents = {collection: self.store.documents_by_ids(collection, tenant_id, ids) for collection, ids in wanted.items()}
        contacts = self.store.contacts_by_ids(
            tenant_id, {d.get("ContactID") or "" for found in documents.values() for d in found.values()}
        )
        ledger_accounts = self.ledger(tenant_id).accounts
        accounts = {account.account_id: account for account in ledger_accounts.values()}
        elements = []
        for payment in payments:
            document = documents[payment["Collection"]].get(payment["DocumentID"])
            contact = contacts.get(document.get("ContactID")) if document else None
            elements.append(self.render_payment(payment, document, contact, accounts.get(payment["AccountID"]), "Invoice"))
        return elements

    def list_payments(self, tenant_id: str, query: dict[str, str]) -> Answer:
        where = _where(query)
        references = where.equality_values("Reference") if where is not None else None
        rows = self.store.payment_rows(tenant_id, references=sorted(references) if references is not None else None)
        payments = [loads_exact(row["payment"]) for row in rows]
        elements = self._render_payments(tenant_id, payments)
        pairs = []
        for payment, element in zip(payments, elements):
            view = dict(element)
            view["Date"] = payment["Date"]  # ISO, so DateTime(…) comparisons work
            if payment["Collection"] == "CreditNotes" and "Invoice" in element:
                summary = element["Invoice"]
                view["CreditNote"] = {**summary, "CreditNoteID": summary["InvoiceID"], "CreditNoteNumber": summary.get("InvoiceNumber")}
            pairs.append((view, element))
        if where is not None:
            pairs = [(view, element) for view, element in pairs if where(_lookup(view))]
        for clause in reversed([c.strip() for c in query.get("order", "").split(",") if c.strip()]):
            words = clause.split()
            name, descending = words[0], len(words) > 1 and words[1].upper() == "DESC"

            def sort_key(pair: tuple[dict[str, Any], dict[str, Any]], name: str = name) -> tuple[bool, Any]:
                value = _lookup(pair[0])(name)
                return (value is None, value if isinstance(value, Decimal) else str(value if value is not None else "").casefold())

            pairs = sorted(pairs, key=sort_key, reverse=descending)
        return self._paged("Payments", [element for _, element in pairs], query)

    def create_payments(self, tenant_id: str, query: dict[str, str], payload: Any) -> Answer:
        """PUT /Payments: the body is the spec's Payments schema, {"Payments": [...]}, and nothing else."""
        if not (isinstance(payload, dict) and isinstance(payload.get("Payments"), list)):
            return Answer(400, validation_exception([{"ValidationErrors": [
                {"Message": 'The request body must be {"Payments": [...]}, a list of Payment objects.'}
            ]}]))
        summarize = query.get("summarizeerrors", "true").lower() != "false"
        ledger = self.ledger(tenant_id)
        results: list[dict[str, Any]] = []
        with self.store.transaction():
            for element in payload["Payments"]:
                results.append(self._pay_one(tenant_id, element, ledger, not summarize))
            if summarize and any(r["HasValidationErrors"] for r in results):
                raise _Discard(Answer(400, validation_exception([r for r in results if r["HasValidationErrors"]])))
        return _ok("Payments", results)

    def _payment_target(
        self, tenant_id: str, element: dict[str, Any]
    ) -> tuple[DocumentKind | None, dict[str, Any] | None, dict[str, Any], str | None]:
        """(kind, document, what the element said of it, error) for the Invoice or CreditNote a payment
        names, by id or by number (nested, as the spec's example gives it)."""
        if any(element.get(name) for name in ("Prepayment", "Overpayment")):
            return None, None, {}, "The sandbox holds no prepayments or overpayments: a payment must name an Invoice or a CreditNote."
        named = [name for name in ("Invoice", "CreditNote") if element.get(name) not in (None, {})]
        if len(named) != 1:
            return None, None, {}, "A payment must name exactly one Invoice or CreditNote."
        kind = INVOICES if named[0] == "Invoice" else CREDIT_NOTES
        spec = element[named[0]]
        if not isinstance(spec, dict):
            return kind, None, {}, f"{named[0]} must be an object with its {kind.id_field} or {kind.number_field}."
        document_id, number = _text(spec.get(kind.id_field)).lower(), _text(spec.get(kind.number_field))
        echo = {key: value for key, value in ((kind.id_field, document_id), (kind.number_field, number)) if value}
        if kind.id_field in echo and not is_uuid(document_id):
            echo.pop(kind.id_field)
        document = None
        if document_id and document_id != ZERO_ID:
            document = self.store.document(kind.collection, tenant_id, document_id)
        elif number:
            found = self.store.documents_by_number(kind.collection, tenant_id, [number])
            live = [d for d in found if d["Status"] not in ("VOIDED", "DELETED")]
            if len(live) > 1:  # bill numbers need not be unique (xero-facts.md)
                return kind, None, echo, f"More than one {kind.noun.lower()} has the number {number}; name it by its {kind.id_field}."
            document = (live or found or [None])[0]
        else:
            return kind, None, echo, f"The {kind.noun.lower()} must be named by its {kind.id_field} or {kind.number_field}."
        if document is None:
            return kind, None, echo, f"{kind.noun} could not be found"  # Xero's words for an invoice
        return kind, document, echo, None

    @staticmethod
    def _payment_account(element: dict[str, Any], ledger: Ledger) -> tuple[AccountInfo | None, dict[str, Any], str | None]:
        spec = element.get("Account")
        code = _text(spec.get("Code")) if isinstance(spec, dict) else ""
        account_id = _text(spec.get("AccountID")).lower() if isinstance(spec, dict) else ""
        echo = {key: value for key, value in (("AccountID", account_id), ("Code", code)) if value}
        if "AccountID" in echo and not is_uuid(account_id):
            echo.pop("AccountID")
        if not code and not account_id:
            return None, echo, "You must specify an Account code or Account ID for the payment"  # Xero's words
        account = ledger.account_by_id(account_id) if account_id else ledger.accounts.get(code)
        if account is not None and code and account.code != code:
            return None, echo, f"The Account Code '{code}' and AccountID {account_id} name different accounts."
        if account is None:
            return None, echo, f"The account {code or account_id} could not be found."
        if account.status != "ACTIVE":
            return None, echo, f"The account {account.code} has been archived and cannot take payments."
        if not account.takes_payments:
            return None, echo, (
                f"Account type is invalid for making a payment to/from account {account.code}: it must be a BANK "
                "account or have payments enabled (EnablePaymentsToAccount)."
            )
        return account, echo, None

    def _pay_one(self, tenant_id: str, element: Any, ledger: Ledger, status_attribute: bool) -> dict[str, Any]:
        """One payment of a batch: checked, and when good saved and applied to its document."""
        if not isinstance(element, dict):
            return self._refused_payment({}, ["Each payment must be a JSON object."])
        errors: list[str] = []
        kind, document, document_echo, error = self._payment_target(tenant_id, element)
        if error:
            errors.append(error)
        account, account_echo, error = self._payment_account(element, ledger)
        if error:
            errors.append(error)

        raw_date = element.get("Date")
        day = parse_date(raw_date)
        if raw_date in (None, ""):
            errors.append("A payment Date must be specified.")
        elif day is None:
            errors.append(f"'{raw_date}' is not a valid date.")
        elif ledger.locked(day):
            # processes.md and xero-facts.md: nothing is paid on or before a lock date
            errors.append(f"The payment date cannot be on or before {ledger.lock_phrase()}; an adviser must change the lock date first.")

        raw_amount = element.get("Amount")
        amount = parse_amount(raw_amount)
        if raw_amount is None:
            errors.append("A payment Amount must be specified.")
        elif amount is None:
            errors.append("The payment Amount must be a number.")
        elif amount <= 0:  # xero-facts.md: Amount > 0; Xero takes no negative payment
            errors.append("The payment Amount must be greater than zero.")
        elif amount != amount.quantize(CENT):
            errors.append("The payment Amount can have at most 2 decimal places.")

        status = _text(element.get("Status")).upper()
        if status and status != "AUTHORISED":
            errors.append(f"Payments can only be created with a status of AUTHORISED, not {status}.")
        reference = element.get("Reference")
        if reference is not None and not isinstance(reference, str):
            errors.append("Reference must be text.")
            reference = str(reference)
        reference = (reference or "").strip()
        if len(reference) > NUMBER_LIMIT:
            errors.append(f"Reference must be {NUMBER_LIMIT} characters or fewer.")
        reconciled = element.get("IsReconciled", False)
        if not isinstance(reconciled, bool):
            errors.append("IsReconciled must be true or false.")

        if kind is not None and document is not None:
            if document["Status"] != "AUTHORISED":
                errors.append("Payments can only be made against Authorised documents")  # Xero's words
            elif amount is not None and amount > 0 and amount > amount_due(document):  # allocations count too
                errors.append("Payment amount exceeds the amount outstanding on this document")  # the spec's example

        if errors:
            echo: dict[str, Any] = {}
            if day is not None:
                echo["Date"] = ms_date(day)
            if amount is not None:
                echo["Amount"] = amount
            echo["Reference"] = reference
            echo["Account"] = (
                {"AccountID": account.account_id, "Code": account.code, "Name": account.name} if account else account_echo
            )
            if kind is not None:
                key = "Invoice" if kind is INVOICES else "CreditNote"
                if document is not None:
                    contact = self.store.contact_by_id(tenant_id, document.get("ContactID") or "")
                    echo[key] = self._payment_document_summary(kind, document, contact, False)
                else:
                    echo[key] = document_echo
            return self._refused_payment(echo, list(dict.fromkeys(errors)))

        assert kind is not None and document is not None and account is not None and amount is not None and day is not None
        stamp = now_ms()
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "Collection": kind.collection,
            "DocumentID": document[kind.id_field],
            "Date": day.isoformat(),
            "Amount": amount,
            "Reference": reference,
            "AccountID": account.account_id,
            "AccountCode": account.code,
            "Status": "AUTHORISED",
            "PaymentType": PAYMENT_TYPES[document["Type"]],
            "IsReconciled": reconciled,
            "UpdatedDateUTC": stamp,
            "CreatedDateUTC": stamp,
        }
        self.store.save_payment(tenant_id, payment)
        applied = live_payments(document) + [
            {"PaymentID": payment["PaymentID"], "Date": payment["Date"], "Amount": amount, "Reference": reference}
        ]
        # paid in full (payments and allocations together): PAID (xero-facts.md, Payments)
        document = settle({**document, "_payments": applied, "UpdatedDateUTC": stamp})
        self.store.save_document(kind.collection, tenant_id, document)
        contact = self.store.contact_by_id(tenant_id, document.get("ContactID") or "")
        key = "Invoice" if kind is INVOICES else "CreditNote"
        element_out = self.render_payment(payment, document, contact, account, key)
        if status_attribute:
            element_out["StatusAttributeString"] = "OK"
        return element_out

    @staticmethod
    def _refused_payment(echo: dict[str, Any], errors: list[str]) -> dict[str, Any]:
        element = {**echo, "HasValidationErrors": True, "StatusAttributeString": "ERROR"}
        element["ValidationErrors"] = [{"Message": message} for message in errors]
        return element

    def delete_payment(self, tenant_id: str, payment_id: str, payload: Any) -> Answer:
        """POST /Payments/{id} with the spec's PaymentDelete, {"Status": "DELETED"}: the payment is removed,
        its document returns to AUTHORISED and its amount due rises. Payments take no other change
        (Xero: "you're not able to update Payments", XeroAPI/xero-php-oauth2#91); the spec's example
        wraps the body in {"Payments": [...]}, but its schema does not: only the schema's form is taken."""
        with self.store.transaction():
            payment = self.store.payment(tenant_id, payment_id)
            if payment is None:
                return _not_found()
            ledger = self.ledger(tenant_id)
            errors = []
            if not isinstance(payload, dict) or set(payload) != {"Status"}:
                errors.append('A payment cannot be changed, only deleted: send {"Status": "DELETED"}.')
            elif _text(payload["Status"]).upper() != "DELETED":
                errors.append(f"A payment's Status can only be changed to DELETED, not {payload['Status']}.")
            if payment["Status"] == "DELETED":
                errors.append("Payment not of valid status for modification")
            if payment.get("IsReconciled"):
                errors.append("A reconciled payment cannot be deleted.")
            if ledger.locked(parse_date(payment["Date"])):
                errors.append(
                    f"The payment is dated on or before {ledger.lock_phrase()} and cannot be deleted; "
                    "an adviser must change the lock date first."
                )
            if errors:
                element = self._render_payments(tenant_id, [payment])[0]
                element.update(HasValidationErrors=True, ValidationErrors=[{"Message": m} for m in dict.fromkeys(errors)])
                return Answer(400, validation_exception([element]))
            stamp = now_ms()
            payment = {**payment, "Status": "DELETED", "UpdatedDateUTC": stamp}
            self.store.save_payment(tenant_id, payment)
            kind = KINDS[payment["Collection"]]
            document = self.store.document(kind.collection, tenant_id, payment["DocumentID"])
            if document is not None:
                document["_payments"] = [p for p in live_payments(document) if p["PaymentID"] != payment["PaymentID"]]
                document = settle(document)  # AUTHORISED again, unless allocations still cover it all
                document["UpdatedDateUTC"] = stamp
                self.store.save_document(kind.collection, tenant_id, document)
        return _ok("Payments", self._render_payments(tenant_id, [payment]))
