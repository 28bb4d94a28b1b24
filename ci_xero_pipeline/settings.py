"""Site settings: one YAML file per CI site, validated when the code location loads.

The file is `site.yaml` in the working folder unless the environment variable `CI_XERO_SITE` names
another. Every setting is documented in that file; errors name the setting and say what to fix.
Relative paths are relative to the folder of the settings file.
"""

from __future__ import annotations

import os
import re
import string
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SETTINGS_ENV_VAR = "CI_XERO_SITE"
DEFAULT_SETTINGS_FILE = "site.yaml"
NZ_TIMEZONE = "Pacific/Auckland"
# the sections of the processes that post to Xero, each with its own schedule and policy (code_location
# declares one process for each)
PROCESS_SECTIONS = ("eretailer", "takings", "receivables", "payables", "cogs")

_TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
# Xero's deep link to a document in a named organisation (developer.xero.com, "Deep link to Xero")
DEFAULT_DOCUMENT_LINK = "https://go.xero.com/organisationlogin/default.aspx?shortcode={short_code}&redirecturl={page}"
DOCUMENT_LINK_FIELDS = {"short_code", "page", "id", "endpoint"}


class SettingsError(ValueError):
    """The site settings file is missing or wrong; the message says what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _time_of_day(value: str, example: str) -> str:
    """A process's schedule_time: HH:MM, 24-hour, NZ time (every process's schedule reads it alike)."""
    if not _TIME_OF_DAY.match(value):
        raise ValueError(f"'{value}' is not a time of day as HH:MM (24-hour, NZ time), e.g. '{example}'")
    return value


def _hour_minute(value: str) -> tuple[int, int]:
    hour, minute = value.split(":")
    return int(hour), int(minute)


# Xero's Account Code: "alpha numeric account code e.g 200 or SALES (max length = 10)" (the Account schema)
_ACCOUNT_CODE_LIMIT = 10


def _account_code(value: str | None, setting: str) -> str | None:
    if value is None:
        return value
    if not value.strip():
        raise ValueError(f"{setting} is empty: write a Xero account code (e.g. \"611\") or leave the setting out")
    if len(value) > _ACCOUNT_CODE_LIMIT:
        raise ValueError(f"{setting} '{value}' is longer than Xero's {_ACCOUNT_CODE_LIMIT} characters for an account code")
    return value


def _account_codes(values: dict[str, str], setting: str) -> dict[str, str]:
    for key, value in values.items():
        _account_code(value, f"{setting}.{key}")
    return values


class EretailerSettings(_Strict):
    mode: Literal["summary", "detail"] = "summary"
    summary_grouping: Literal["day", "branch_day"] = "day"
    status: Literal["DRAFT", "AUTHORISED"] = "DRAFT"
    schedule_time: str = "02:00"
    sensor_interval_seconds: int = Field(default=300, ge=30)
    number_prefix: str = Field(default="ER-", max_length=20)
    summary_contact_name: str = "E-Retailer Sales"
    contact_strategy: Literal["customer", "default"] = "customer"
    default_contact_name: str = "E-Retailer Customer"
    contact_name_format: str = "{customer_name} [{customer_code}]"
    due_days: int = Field(default=0, ge=0, le=365)
    # An AUTHORISED document CI changed after posting: void_and_repost (void it, post the new version
    # as <number>-R1, -R2 …) or credit_note (reverse it with a credit note, then post the new version).
    # A DRAFT is always updated in place; a document with payments applied is reported, never touched.
    changes_after_posting: Literal["void_and_repost", "credit_note"] = "void_and_repost"
    # A day whose CI read returns fewer documents than the ledger holds as posted (a wrong database,
    # a view being rebuilt, an old backup): stop that day (nothing sent, changed or taken back), or
    # take the missing documents as withdrawn from CI and take them back in Xero. Absence is not
    # evidence: choose withdraw only if CI deletes documents instead of voiding them.
    missing_ci_documents: Literal["stop", "withdraw"] = "stop"
    # A CI change to a document dated on or before Xero's lock date: report it (nothing in Xero is
    # changed; the accountant adjusts it in an open period).
    locked_changes: Literal["report"] = "report"
    # A day with any quarantined document posts none of its documents (until the day is clean).
    all_or_nothing_days: bool = False
    # Money held in quarantine fails the day's no_quarantined_rows check (error) or only warns.
    quarantine_check_severity: Literal["error", "warn"] = "error"
    # Web orders' tenders become payments of the E-Retailer documents (into mapping.tender_accounts),
    # so web sales do not sit in receivables and web voucher redemptions reduce the liability. Off: the
    # documents are posted unpaid, for a bookkeeper who applies the payouts by hand.
    pay_tenders: bool = False

    @field_validator("schedule_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        return _time_of_day(value, "02:00")

    @property
    def schedule_hour_minute(self) -> tuple[int, int]:
        return _hour_minute(self.schedule_time)


class TrackingSettings(_Strict):
    category_name: str = Field(default="CI Branches", min_length=1, max_length=100)
    strategy: Literal["existing", "create"] = "create"
    branch_options: dict[str, str] = Field(default_factory=dict)

    @field_validator("branch_options")
    @classmethod
    def _option_length(cls, value: dict[str, str]) -> dict[str, str]:
        too_long = [name for name in value.values() if len(name) > 50]
        if too_long:
            raise ValueError(f"tracking option names are limited to 50 characters by Xero: {too_long}")
        return value


class MappingSettings(_Strict):
    sales_accounts: dict[str, str] = Field(default_factory=dict)
    tax_types: dict[str, str] = Field(
        default_factory=lambda: {"S": "OUTPUT2", "Z": "ZERORATED", "E": "NONE"}
    )
    # The GST rate (per cent) behind each CI gst_code, used to check CI's GST and to compute each
    # line's tax as Xero does.
    gst_rates: dict[str, Decimal] = Field(default_factory=lambda: {"S": Decimal(15), "Z": Decimal(0), "E": Decimal(0)})
    # How far CI's GST on a line may be from rate × amount before the document is quarantined (CI
    # rounds GST per unit, so a line of many units can be a few cents away).
    gst_tolerance_cents: int = Field(default=2, ge=0, le=100)
    # The tender mapping every process shares (takings, E-Retailer tenders): CI tender_type → the Xero
    # account its payments go into (a clearing account with payments enabled, or a bank account).
    # GIFT_VOUCHER, unless listed, pays into voucher_liability_account (a redemption reduces it).
    tender_accounts: dict[str, str] = Field(default_factory=dict)
    # The gift voucher liability (CURRLIAB with payments enabled): vouchers sold are credited to it,
    # vouchers redeemed (GIFT_VOUCHER tenders) are paid out of it.
    voucher_liability_account: str | None = None
    # CI analysis codes of gift vouchers sold: those lines go to the liability, tax type NONE.
    voucher_analysis_codes: list[str] = Field(default_factory=list)
    # The mapping check before a run creates accounts Xero lacks altogether, typed for their role
    # (payments enabled where payments go to them); it never changes an existing account.
    create_missing_accounts: bool = False

    @field_validator("tender_accounts")
    @classmethod
    def _tender_codes(cls, value: dict[str, str]) -> dict[str, str]:
        return _account_codes(value, "mapping.tender_accounts")

    @field_validator("voucher_liability_account")
    @classmethod
    def _liability_code(cls, value: str | None) -> str | None:
        return _account_code(value, "mapping.voucher_liability_account")

    @model_validator(mode="after")
    def _vouchers_are_not_sales(self) -> "MappingSettings":
        sold_as_sales = sorted(set(self.voucher_analysis_codes) & set(self.sales_accounts))
        if sold_as_sales:
            raise ValueError(
                f"mapping.voucher_analysis_codes {sold_as_sales} are also in mapping.sales_accounts: a gift voucher "
                "sold is a liability, not a sale; take them out of mapping.sales_accounts")
        if self.voucher_analysis_codes and not self.voucher_liability_account:
            raise ValueError("mapping.voucher_analysis_codes are set but mapping.voucher_liability_account is not: set "
                             "the Xero account (a liability with payments enabled) that vouchers sold go to")
        voucher_tender = self.tender_accounts.get("GIFT_VOUCHER")
        if voucher_tender and self.voucher_liability_account and voucher_tender != self.voucher_liability_account:
            raise ValueError(
                f"mapping.tender_accounts.GIFT_VOUCHER ({voucher_tender}) differs from mapping.voucher_liability_account "
                f"({self.voucher_liability_account}): a voucher redeemed must reduce the liability its sale raised; "
                "leave GIFT_VOUCHER out of tender_accounts (it then pays into voucher_liability_account)")
        return self

    @model_validator(mode="after")
    def _rates_for_every_code(self) -> "MappingSettings":
        missing = sorted(set(self.tax_types) - set(self.gst_rates))
        if missing:
            raise ValueError(f"gst_rates has no rate for gst_code(s) {missing}")
        return self

    @field_validator("sales_accounts")
    @classmethod
    def _some_accounts(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one CI analysis code to a Xero sales account code")
        return value


_CONTACT_FIELDS = {"branch_code", "branch_name"}


def _contact_format(value: str) -> str:
    """A takings contact format: text with {branch_code} and {branch_name} only."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as error:
        raise ValueError(f"'{value}' is not a format: {error} (write {{branch_code}} or {{branch_name}})") from None
    unknown = sorted(names - _CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown} in '{value}'; use {{branch_code}} and {{branch_name}}")
    if "branch_code" not in names and "branch_name" not in names:
        raise ValueError(f"'{value}' would give every branch the same contact: use {{branch_code}} or {{branch_name}}")
    return value


class TakingsContact(_Strict):
    """A branch's takings contact in Xero. Xero finds contacts by ContactNumber (unique, 50 characters)."""

    ContactNumber: str | None = Field(default=None, min_length=1, max_length=50)
    Name: str | None = Field(default=None, min_length=1, max_length=255)

    @model_validator(mode="after")
    def _something(self) -> "TakingsContact":
        if self.ContactNumber is None and self.Name is None:
            raise ValueError("give the branch's ContactNumber, Name or both (or leave the branch out for the formats)")
        return self


class TakingsSettings(_Strict):
    """End-of-day takings (processes.md §1): one Xero document per branch per trading day, paid by its
    tenders. The sales mapping, tax types, GST rates, tolerance, tracking and the tender mapping are the
    shared `mapping:` and `tracking:` sections'."""

    enabled: bool = False
    schedule_time: str = "01:30"
    sensor_interval_seconds: int = Field(default=300, ge=30)
    # DRAFT needs zero_balance (Xero pays only AUTHORISED documents)
    status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    # The takings invoice carries its tenders as negative lines to their accounts, totals 0.00 and has
    # no payments (the only layout a DRAFT can have).
    zero_balance: bool = False
    over_short_account: str | None = None
    # tender_type → over/short account, where one tender's differences go elsewhere
    over_short_accounts: dict[str, str] = Field(default_factory=dict)
    rounding_account: str | None = None
    rounding_analysis_codes: list[str] = Field(default_factory=list)
    # A voucher sale line on which CI charged GST: quarantine it, or post it taxed_at_sale (to the
    # liability with its tax type and CI's GST). NZ taxes vouchers at redemption: an accountant decides.
    voucher_gst: Literal["quarantine", "taxed_at_sale"] = "quarantine"
    # branch_code → {ContactNumber, Name}; other branches get the formats below
    contacts: dict[str, TakingsContact] = Field(default_factory=dict)
    contact_number_format: str = Field(default="TAKINGS-{branch_code}", min_length=1)
    contact_name_format: str = Field(default="Takings {branch_name}", min_length=1)
    # A tender with money and no ci_cash_ups row: quarantine the branch-day, or take counted = expected.
    missing_cash_up: Literal["quarantine", "counted_is_expected"] = "quarantine"
    number_prefix: str = Field(default="EOD-", max_length=20)
    credit_note_prefix: str = Field(default="EODCR-", max_length=20)
    # as eretailer's (site.yaml says what each does)
    changes_after_posting: Literal["void_and_repost", "credit_note"] = "void_and_repost"
    missing_ci_documents: Literal["stop", "withdraw"] = "stop"
    quarantine_check_severity: Literal["error", "warn"] = "error"

    @field_validator("schedule_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        return _time_of_day(value, "01:30")

    @field_validator("over_short_account", "rounding_account")
    @classmethod
    def _one_code(cls, value: str | None, info) -> str | None:
        return _account_code(value, f"takings.{info.field_name}")

    @field_validator("over_short_accounts")
    @classmethod
    def _per_tender_codes(cls, value: dict[str, str]) -> dict[str, str]:
        return _account_codes(value, "takings.over_short_accounts")

    @field_validator("contact_number_format", "contact_name_format")
    @classmethod
    def _formats(cls, value: str) -> str:
        return _contact_format(value)

    @model_validator(mode="after")
    def _consistent(self) -> "TakingsSettings":
        if self.status == "DRAFT" and not self.zero_balance:
            raise ValueError(
                "takings.status DRAFT needs takings.zero_balance: true. Xero pays only AUTHORISED documents, so a "
                "DRAFT takings invoice can only carry its tenders as negative lines (total 0.00); or set "
                "takings.status: AUTHORISED")
        if self.number_prefix == self.credit_note_prefix:
            raise ValueError(f"takings.number_prefix and takings.credit_note_prefix are both '{self.number_prefix}': the takings "
                             "credit note of a net-negative day needs a prefix of its own")
        if self.enabled:
            if not self.over_short_account:
                raise ValueError("takings.over_short_account is required when takings.enabled is true: the Xero "
                                 "account (expense or revenue) each till's over/short goes to")
            if self.rounding_analysis_codes and not self.rounding_account:
                raise ValueError(f"takings.rounding_account is required when takings.rounding_analysis_codes are set "
                                 f"({sorted(self.rounding_analysis_codes)}): the Xero account cash rounding goes to")
        return self

    @property
    def schedule_hour_minute(self) -> tuple[int, int]:
        return _hour_minute(self.schedule_time)


def _format_with(value: str, allowed: set[str], setting: str) -> str:
    """A name format: text with the given {placeholders} only, at least one of them."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as error:
        raise ValueError(f"{setting} '{value}' is not a format: {error}") from None
    unknown = sorted(names - allowed)
    if unknown or not names:
        raise ValueError(f"{setting} '{value}': use {' and '.join('{' + n + '}' for n in sorted(allowed))} only "
                         f"(and at least one){'; unknown: ' + str(unknown) if unknown else ''}")
    return value


class _ProcessSection(_Strict):
    """What every process beyond E-Retailer and takings shares: on or off, its time, its sensor, and how it
    treats CI documents missing from a read and money left in quarantine (site.yaml says what each does)."""

    enabled: bool = False
    schedule_time: str = "02:30"
    sensor_interval_seconds: int = Field(default=300, ge=30)
    missing_ci_documents: Literal["stop", "withdraw"] = "stop"
    quarantine_check_severity: Literal["error", "warn"] = "error"

    @field_validator("schedule_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        return _time_of_day(value, "02:30")

    @property
    def schedule_hour_minute(self) -> tuple[int, int]:
        return _hour_minute(self.schedule_time)


class ReceivablesSettings(_ProcessSection):
    """Account customers (processes.md §2): one Xero invoice per CI account invoice (and per POS document
    paid on account), one credit note per CI credit, each credit allocated to the invoice it reverses."""

    schedule_time: str = "02:30"
    status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    invoice_prefix: str = Field(default="", max_length=20)
    credit_note_prefix: str = Field(default="", max_length=20)
    due_days: int = Field(default=20, ge=0, le=365)
    contact_name_format: str = "{customer_name}"
    pay_tenders: bool = True
    changes_after_posting: Literal["void_and_repost", "credit_note"] = "void_and_repost"

    @field_validator("contact_name_format")
    @classmethod
    def _name_format(cls, value: str) -> str:
        return _format_with(value, {"customer_name", "customer_code"}, "receivables.contact_name_format")

    @model_validator(mode="after")
    def _payable(self) -> "ReceivablesSettings":
        if self.pay_tenders and self.status != "AUTHORISED":
            raise ValueError(f"receivables.pay_tenders is true but receivables.status is {self.status}: Xero pays and "
                             "allocates only AUTHORISED documents; set receivables.status: AUTHORISED or "
                             "receivables.pay_tenders: false")
        return self


class PayablesSettings(_ProcessSection):
    """Inwards goods (processes.md §3): one supplier bill per FINAL goods receipt, awaiting approval."""

    schedule_time: str = "03:00"
    status: Literal["DRAFT", "SUBMITTED", "AUTHORISED"] = "SUBMITTED"
    # analysis code → purchases account, for a site without cost of goods sold journals (cogs.enabled false)
    purchases_accounts: dict[str, str] = Field(default_factory=dict)
    tax_types: dict[str, str] = Field(default_factory=lambda: {"S": "INPUT2", "Z": "ZERORATED", "E": "NONE"})
    due_days: int = Field(default=20, ge=0, le=365)
    contact_name_format: str = "{supplier_name}"
    # the supplier's ContactNumber in Xero: {supplier_code} alone, or e.g. "SUP-{supplier_code}" where CI's
    # supplier codes and account customer codes can be the same text (one ContactNumber is one contact)
    contact_number_format: str = "{supplier_code}"

    @field_validator("contact_number_format")
    @classmethod
    def _number_format(cls, value: str) -> str:
        return _format_with(value, {"supplier_code"}, "payables.contact_number_format")

    @field_validator("purchases_accounts")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        return _account_codes(value, "payables.purchases_accounts")

    @field_validator("contact_name_format")
    @classmethod
    def _name_format(cls, value: str) -> str:
        return _format_with(value, {"supplier_name", "supplier_code"}, "payables.contact_name_format")


class CogsSettings(_ProcessSection):
    """Cost of goods sold (processes.md §4): one POSTED manual journal per branch per trading day."""

    schedule_time: str = "03:30"
    # analysis code → cost of goods sold account (debited with Σ quantity × unit cost)
    cogs_accounts: dict[str, str] = Field(default_factory=dict)
    # the stock account credited (a CURRENT asset: Xero's INVENTORY type is for its own tracked items)
    inventory_account: str | None = None
    # a stock line CI holds without a cost: quarantine its branch-day, or post it at zero with a warning
    missing_cost: Literal["quarantine", "zero"] = "quarantine"

    @field_validator("cogs_accounts")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        return _account_codes(value, "cogs.cogs_accounts")

    @field_validator("inventory_account")
    @classmethod
    def _inventory(cls, value: str | None) -> str | None:
        return _account_code(value, "cogs.inventory_account")

    @model_validator(mode="after")
    def _complete(self) -> "CogsSettings":
        if self.enabled and not (self.inventory_account and self.cogs_accounts):
            raise ValueError("cogs.enabled is true but cogs.inventory_account or cogs.cogs_accounts is not set: name "
                             "the stock account (a CURRENT asset) and the cost of goods sold account of each analysis code")
        return self


class XeroSettings(_Strict):
    client_id: str = Field(min_length=1)
    # The client secret is never stored here: it comes from this environment variable (through
    # Dagster's EnvVar). Leave the variable unset for a PKCE public client.
    client_secret_env_var: str = "XERO_CLIENT_SECRET"
    authorize_url: str = "https://login.xero.com/identity/connect/authorize"
    token_url: str = "https://identity.xero.com/connect/token"
    revoke_url: str = "https://identity.xero.com/connect/revocation"
    connections_url: str = "https://api.xero.com/connections"
    api_url: str = "https://api.xero.com/api.xro/2.0"
    redirect_uri: str = "http://localhost:8765/callback"
    scopes: list[str] = Field(
        default_factory=lambda: [
            "offline_access",
            "accounting.invoices",
            "accounting.contacts",
            "accounting.settings",
        ]
    )
    tenant_name: str | None = None
    tenant_id: str | None = None
    # authorization_code: `ci-xero connect` in a browser; custom: Xero's custom connection
    # (client-credentials grant, one organisation, needs the client secret)
    connection: Literal["authorization_code", "custom"] = "authorization_code"
    # file: one encrypted file (token_file); sql: an encrypted row in token_database_url
    token_store: Literal["file", "sql"] = "file"
    token_file: str = "data/xero_token.json"
    token_database_url: str | None = None
    # The Fernet key that encrypts the stored connection comes from this environment variable. Unset on
    # a single machine: a key file beside token_file (mode 0600) is made once.
    token_key_env_var: str = "CI_XERO_TOKEN_KEY"
    # Warn this many days before the refresh token's 60-day expiry when nothing has refreshed it.
    refresh_warning_days: int = Field(default=14, ge=1, le=59)
    # Optional daily refresh that keeps an idle connection alive (HH:MM NZ time); null: off.
    keep_alive_time: str | None = None
    batch_size: int = Field(default=50, ge=1, le=100)
    timeout_seconds: float = Field(default=30, gt=0)
    # Pacing under Xero's limits, per organisation (Xero: 60 calls a minute, 5 in flight).
    calls_per_minute: int = Field(default=60, ge=1, le=60)
    max_in_flight: int = Field(default=5, ge=1, le=5)
    # Calls kept back when X-DayLimit-Remaining runs low: the run stops cleanly and the next resumes.
    day_call_reserve: int = Field(default=20, ge=0)
    # Xero's minute is 60 s; shorter only against a sandbox that compresses time.
    rate_window_seconds: float = Field(default=60, gt=0, le=60)
    # Where each document in posted_eretailer links to (its `xero_link`): Xero's deep link by the
    # organisation's ShortCode, so the link opens the right organisation for an adviser who has several.
    # {short_code}: the organisation's ShortCode; {page}: Xero's page of the document
    # (/AccountsReceivable/View.aspx?InvoiceID=… or /AccountsReceivable/ViewCreditNote.aspx?creditNoteID=…);
    # {id}: the document's Xero id; {endpoint}: Invoices or CreditNotes. null: no links.
    document_link: str | None = DEFAULT_DOCUMENT_LINK

    @field_validator("document_link")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        names = set(re.findall(r"{([^{}]*)}", value))
        unknown = sorted(names - DOCUMENT_LINK_FIELDS)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {unknown}; use {sorted(DOCUMENT_LINK_FIELDS)}")
        if not names & {"page", "id"}:
            raise ValueError("the link must name the document: use {page} or {id}")
        if not re.match(r"^https?://", value):
            raise ValueError("must be an http(s) address, e.g. " + DEFAULT_DOCUMENT_LINK)
        return value

    @field_validator("keep_alive_time")
    @classmethod
    def _keep_alive(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_OF_DAY.match(value):
            raise ValueError(f"'{value}' is not a time of day as HH:MM (24-hour, NZ time), e.g. '03:30'")
        return value

    @model_validator(mode="after")
    def _sql_store_needs_url(self) -> "XeroSettings":
        if self.token_store == "sql" and not self.token_database_url:
            raise ValueError("token_store 'sql' needs token_database_url (a SQLAlchemy URL)")
        return self

    @field_validator("scopes")
    @classmethod
    def _offline(cls, value: list[str]) -> list[str]:
        if "offline_access" not in value:
            raise ValueError("scopes must include 'offline_access', or Xero gives no refresh token")
        return value


class CINamesSettings(_Strict):
    """How the site's views and columns are named where they differ from the CI source contract
    (docs/design/ci-source-contract.md); anything not listed keeps its contract name.

        ci_names:
          views: {ci_sales_invoices: dbo.v_ci_invoices}        # 'schema.view' or 'view'
          columns: {ci_sales_invoices: {total_incl: grand_total}}
    """

    views: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _contract_names(self) -> "CINamesSettings":
        self.names()  # unknown views or columns, empty or repeated site names: a ValueError naming them
        return self

    def names(self):
        """The names as ci.tables.CINames, for extraction (extract_sales_documents(..., names=...))."""
        from .ci.tables import CINames

        return CINames(views=dict(self.views), columns={view: dict(columns) for view, columns in self.columns.items()})


_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_var_name(value: str | None) -> str | None:
    # the value itself is never echoed: a secret pasted here by mistake must not reach an error message
    if value is not None and not _ENV_VAR_NAME.match(value):
        raise ValueError("must be the NAME of an environment variable (letters, digits, _), never the secret itself")
    return value


class EmailAlertSettings(_Strict):
    """E-mail over SMTP, sent with Dagster's own e-mail helpers. The password is never stored here: it is
    read from the environment variable `password_env_var` when a message is sent."""

    smtp_host: str = Field(min_length=1)
    # starttls (port 587), ssl (465) or plain (25: a relay on the local network, no TLS)
    security: Literal["starttls", "ssl", "plain"] = "starttls"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_user: str | None = None  # unset: the from address
    password_env_var: str | None = "CI_XERO_SMTP_PASSWORD"
    from_address: str = Field(min_length=3)
    to: list[str] = Field(min_length=1)

    @field_validator("password_env_var")
    @classmethod
    def _password_variable(cls, value: str | None) -> str | None:
        return _env_var_name(value)

    @model_validator(mode="after")
    def _password_for_tls(self) -> "EmailAlertSettings":
        if self.security != "plain" and not self.password_env_var:
            raise ValueError(f"security {self.security!r} logs in to the SMTP server: set password_env_var")
        return self

    @property
    def port(self) -> int:
        return self.smtp_port or {"ssl": 465, "starttls": 587, "plain": 25}[self.security]


class WebhookAlertSettings(_Strict):
    """A JSON POST to a URL (Slack-style {"text": ...} plus the details). The URL usually carries a
    token, so it is never stored here: it is read from the environment variable `url_env_var`."""

    url_env_var: str = "CI_XERO_ALERT_WEBHOOK_URL"
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("url_env_var")
    @classmethod
    def _url_variable(cls, value: str) -> str:
        return _env_var_name(value)


class AlertSettings(_Strict):
    """Who is told when a run fails, money is left in quarantine, Xero's daily call limit stops a run or
    the Xero connection is about to expire or must be reconnected (through Dagster sensors)."""

    enabled: bool = False
    email: EmailAlertSettings | None = None
    webhook: WebhookAlertSettings | None = None
    # the Dagster UI's address, for links to the failed run (e.g. http://dagster.example:3000)
    webserver_base_url: str | None = None

    @model_validator(mode="after")
    def _a_channel(self) -> "AlertSettings":
        if self.enabled and self.email is None and self.webhook is None:
            raise ValueError("alerts are enabled but no channel is set: add email, webhook or both")
        return self


class SiteSettings(_Strict):
    site_name: str = Field(min_length=1)
    data_dir: str = "data"
    ci_database_url: str | None = None
    # The pipeline's own state (the posting ledger): SQLite in data_dir unless set (PostgreSQL for hosting).
    state_database_url: str | None = None
    first_trading_day: date
    eretailer: EretailerSettings = Field(default_factory=EretailerSettings)
    takings: TakingsSettings = Field(default_factory=TakingsSettings)
    receivables: ReceivablesSettings = Field(default_factory=ReceivablesSettings)
    payables: PayablesSettings = Field(default_factory=PayablesSettings)
    cogs: CogsSettings = Field(default_factory=CogsSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    mapping: MappingSettings
    xero: XeroSettings
    # CI view and column names where the site's differ from the contract's
    ci_names: CINamesSettings = Field(default_factory=CINamesSettings)
    # The Dagster UI's address (`dagster dev`, dagster-webserver). Each Xero invoice carries in its Url
    # ("Go to …" in Xero) the address of the day that produced it; null: no Url is sent.
    dagster_ui_url: str | None = "http://localhost:3000"
    # who is told when something needs a person (off unless alerts.enabled)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    # where relative paths start: the folder of the settings file (set by load_settings)
    base_dir: str = Field(default=".", exclude=True)

    @field_validator("dagster_ui_url")
    @classmethod
    def _ui_address(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(f"'{value}' is not the address of a web server, e.g. http://localhost:3000")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _sensible_dates(self) -> "SiteSettings":
        if self.first_trading_day.year < 2000:
            raise ValueError("first_trading_day must be a real trading day (YYYY-MM-DD)")
        return self

    @model_validator(mode="after")
    def _processes_fit_the_mapping(self) -> "SiteSettings":
        """The checks that read two sections; each message names the settings (they have no one place)."""
        mapping, takings = self.mapping, self.takings
        if self.eretailer.pay_tenders and not mapping.tender_accounts:
            raise ValueError("eretailer.pay_tenders is true but mapping.tender_accounts is empty: map each tender "
                             "type of web orders (ONLINE, cards, PAYPAL, AFTERPAY, …) to its Xero account, or set "
                             "eretailer.pay_tenders: false")
        if self.eretailer.pay_tenders and self.eretailer.status != "AUTHORISED":
            raise ValueError(f"eretailer.pay_tenders is true but eretailer.status is {self.eretailer.status}: Xero pays "
                             "only AUTHORISED documents, so set eretailer.status: AUTHORISED, or eretailer.pay_tenders: false")
        if takings.enabled:
            missing = [name for name, value in (("mapping.tender_accounts", mapping.tender_accounts),
                                                ("mapping.voucher_liability_account", mapping.voucher_liability_account))
                       if not value]
            if missing:
                raise ValueError(f"takings.enabled is true but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                                 "not set: takings pays every tender into its account and takes gift vouchers to the "
                                 "liability; set them (site.yaml's comments say how) or set takings.enabled: false")
        both = sorted(set(takings.rounding_analysis_codes) & set(mapping.voucher_analysis_codes))
        if both:
            raise ValueError(f"analysis code(s) {both} are in both mapping.voucher_analysis_codes and "
                             "takings.rounding_analysis_codes: a line is a gift voucher sold or cash rounding, not both")
        rounding_sales = sorted(set(takings.rounding_analysis_codes) & set(mapping.sales_accounts))
        if rounding_sales:
            raise ValueError(f"takings.rounding_analysis_codes {rounding_sales} are also in mapping.sales_accounts: "
                             "cash rounding is not a sale; take them out of mapping.sales_accounts")
        voucher_tender = {"GIFT_VOUCHER"} if mapping.voucher_liability_account else set()
        unpaid = sorted(set(takings.over_short_accounts) - set(mapping.tender_accounts) - voucher_tender)
        if unpaid:
            raise ValueError(f"takings.over_short_accounts names tender type(s) {unpaid} that mapping.tender_accounts "
                             "does not map: check the spelling (tender types as CI writes them, e.g. CASH)")
        receivables = self.receivables
        if receivables.enabled and receivables.pay_tenders and not mapping.tender_accounts:
            raise ValueError("receivables.pay_tenders is true but mapping.tender_accounts is empty: map the tender types "
                             "paid on account customers' documents, or set receivables.pay_tenders: false")
        if self.payables.enabled and not self.cogs.enabled and not self.payables.purchases_accounts:
            raise ValueError("payables.enabled is true and cogs.enabled is false, but payables.purchases_accounts is empty: "
                             "map each CI analysis code to the Xero purchases account its goods go to (with cogs "
                             "enabled, bills go to cogs.inventory_account instead)")
        er_prefix = self.eretailer.number_prefix
        clash = [name for name, value in (("takings.number_prefix", takings.number_prefix),
                                          ("takings.credit_note_prefix", takings.credit_note_prefix)) if value == er_prefix]
        if clash:
            raise ValueError(f"{' and '.join(clash)} equal{'s' if len(clash) == 1 else ''} eretailer.number_prefix "
                             f"'{er_prefix}': each process's documents need numbers of their own")
        return self

    def path(self, value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else (Path(self.base_dir) / candidate).resolve()

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @model_validator(mode="after")
    def _no_password_in_the_file(self) -> "SiteSettings":
        for name, url in (("ci_database_url", self.ci_database_url), ("state_database_url", self.state_database_url),
                          ("xero.token_database_url", self.xero.token_database_url)):
            if url and literal_password(url):
                raise ValueError(
                    f"{name} holds a password: write it as an environment variable reference instead, e.g. "
                    "postgresql://user:${CI_DB_PASSWORD}@host/db, and set the variable where the pipeline runs"
                )
        return self

    @property
    def ci_database_url_template(self) -> str:
        """The CI database URL as written, ${VAR} references unexpanded (safe to show)."""
        return self.ci_database_url or f"sqlite:///{self.data_path / 'ci_demo.sqlite'}"

    @property
    def state_database_url_template(self) -> str:
        return self.state_database_url or f"sqlite:///{self.data_path / 'state.sqlite'}"

    @property
    def resolved_ci_database_url(self) -> str:
        return os.path.expandvars(self.ci_database_url_template)

    @property
    def resolved_state_database_url(self) -> str:
        return os.path.expandvars(self.state_database_url_template)

    @property
    def token_path(self) -> Path:
        return self.path(self.xero.token_file)

    @property
    def token_key_path(self) -> Path:
        return self.token_path.with_suffix(".key")


def literal_password(url: str) -> bool:
    """Whether a database URL spells out a password (rather than naming an environment variable)."""
    match = re.match(r"^[^:/]+://[^:@/]*:([^@/]*)@", url)
    return bool(match and match.group(1) and "${" not in match.group(1))


def settings_file() -> Path:
    return Path(os.environ.get(SETTINGS_ENV_VAR) or DEFAULT_SETTINGS_FILE).resolve()


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "is not a known setting (check the spelling against site.yaml's comments)"
        elif problem["type"] == "missing":
            message = "is required"
        # a check across sections has no one place: its message names the settings itself
        named = not where or message.startswith(f"{where}.") or message.startswith(f"{where} ")
        lines.append(f"  - {message}" if named else f"  - {where}: {message}")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None) -> SiteSettings:
    """Read and validate the site settings; raise SettingsError naming each setting to fix."""
    file = Path(path).resolve() if path else settings_file()
    if not file.is_file():
        raise SettingsError(
            f"No site settings at {file}. Copy site.yaml from the project and set {SETTINGS_ENV_VAR} "
            "to its path."
        )
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{file} must hold a mapping of settings, not {type(raw).__name__}")
    raw["base_dir"] = str(file.parent)
    try:
        return SiteSettings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(f"Site settings in {file} need fixing:\n{_describe(exc)}") from None
