"""The site's mapping checked against the Xero organisation's chart of accounts and tax rates.

Before anything is posted (processes.md, "Shared by every process"): one `GET /Accounts` and one
`GET /TaxRates`; each mapped account exists, is ACTIVE, has a type that fits its role and has payments
enabled where payments go to it; each tax type exists, is ACTIVE and fits its side (income or
expenses). Every problem names the setting, the code, what Xero has and the fix.

A process declares what it needs (`AccountNeed`, `TaxTypeNeed`); `check_chart` judges those needs
against Xero's JSON lists and touches nothing (the unit-testable part); `read_and_check` does the two
reads; `create_missing` creates the accounts Xero does not have at all (one `PUT /Accounts` each) and
never changes an existing one. Knows nothing of CI: the needs carry the setting names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

from .client import XeroApiError, XeroClient, XeroOutcomeUnknown

Role = Literal["revenue", "clearing", "voucher_liability", "over_short", "rounding", "inventory", "cogs", "purchases"]
Side = Literal["OUTPUT", "INPUT"]


@dataclass(frozen=True)
class RoleRule:
    """What an account must be to play a role, and what `create_missing` makes for it."""

    describe: str  # "a revenue account (Class REVENUE: type REVENUE, SALES or OTHERINCOME)"
    types: frozenset[str]  # Xero account Types that fit
    payments: bool  # payments go to it: BANK, or EnablePaymentsToAccount
    create_type: str
    create_name: str  # "{code}" is filled in; Xero wants names unique
    create_tax_type: str | None  # None: Xero's default for the class

    def fits(self, account: Mapping[str, Any]) -> bool:
        return str(account.get("Type", "")).upper() in self.types

    def payments_ok(self, account: Mapping[str, Any]) -> bool:
        return not self.payments or account.get("Type") == "BANK" or account.get("EnablePaymentsToAccount") is True


REVENUE_TYPES = frozenset({"REVENUE", "SALES", "OTHERINCOME"})
EXPENSE_TYPES = frozenset({"EXPENSE", "OVERHEADS", "DIRECTCOSTS"})
ROLES: dict[str, RoleRule] = {
    "revenue": RoleRule("a revenue account (type REVENUE, SALES or OTHERINCOME)", REVENUE_TYPES, False,
                        "REVENUE", "Sales {code}", None),
    "clearing": RoleRule("a clearing account (CURRENT with payments enabled) or a BANK account",
                         frozenset({"CURRENT", "BANK"}), True, "CURRENT", "Clearing {code}", "NONE"),
    "voucher_liability": RoleRule("a liability account (CURRLIAB or LIABILITY) with payments enabled",
                                  frozenset({"CURRLIAB", "LIABILITY"}), True, "CURRLIAB", "Gift voucher liability {code}", "NONE"),
    # a till's over/short and cash rounding are small gains and losses: an expense or a revenue account
    "over_short": RoleRule("an expense or revenue account", EXPENSE_TYPES | REVENUE_TYPES, False,
                           "EXPENSE", "Till over/short {code}", "NONE"),
    "rounding": RoleRule("an expense or revenue account", EXPENSE_TYPES | REVENUE_TYPES, False,
                         "EXPENSE", "Cash rounding {code}", "NONE"),
    # stock valued outside Xero: a CURRENT asset (Xero's INVENTORY type is for Xero's tracked items)
    "inventory": RoleRule("a CURRENT asset account (not Xero's INVENTORY type, which is for Xero's tracked items)",
                          frozenset({"CURRENT"}), False, "CURRENT", "Stock on hand {code}", "NONE"),
    "cogs": RoleRule("a cost of sales account (type DIRECTCOSTS or EXPENSE)", frozenset({"DIRECTCOSTS", "EXPENSE"}), False,
                     "DIRECTCOSTS", "Cost of goods sold {code}", None),
    # goods bought without perpetual stock (cogs off): a purchases (cost of sales) or expense account
    "purchases": RoleRule("a purchases account (type DIRECTCOSTS, EXPENSE or OVERHEADS)", EXPENSE_TYPES, False,
                          "DIRECTCOSTS", "Purchases {code}", None),
}
SIDES = {"OUTPUT": ("CanApplyToRevenue", "income (revenue accounts)"), "INPUT": ("CanApplyToExpenses", "expenses")}


@dataclass(frozen=True)
class AccountNeed:
    """A setting that names a Xero account code for a role, e.g. mapping.sales_accounts.FOOTWEAR → 202."""

    setting: str
    code: str
    role: Role

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown account role {self.role!r}; use one of {sorted(ROLES)}")


@dataclass(frozen=True)
class TaxTypeNeed:
    """A setting that names a Xero tax type for income (OUTPUT) or expenses (INPUT)."""

    setting: str
    tax_type: str
    side: Side

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"unknown tax side {self.side!r}; use OUTPUT or INPUT")


Need = AccountNeed | TaxTypeNeed

# what Xero has, as a finding's problem (None: all is well)
MISSING = "missing"
ARCHIVED = "archived"
WRONG_TYPE = "wrong type"
SYSTEM_ACCOUNT = "system account"
PAYMENTS_NOT_ENABLED = "payments not enabled"
TAX_TYPE_MISSING = "tax type missing"
TAX_TYPE_ARCHIVED = "tax type archived"
TAX_TYPE_WRONG_SIDE = "tax type not for that side"


@dataclass(frozen=True)
class Finding:
    """One need judged: a row of the verdict's table."""

    setting: str
    code: str  # the account code or the tax type
    wants: str  # the role, or OUTPUT / INPUT
    xero_name: str = ""  # what Xero has ("" when it has nothing by that code)
    xero_type: str = ""
    xero_status: str = ""
    problem: str | None = None
    message: str = ""  # the problem in a sentence naming the setting and the Xero account
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def is_account(self) -> bool:
        return self.wants in ROLES


@dataclass(frozen=True)
class ChartVerdict:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if not finding.ok)

    @property
    def missing_account_codes(self) -> tuple[str, ...]:
        """Account codes Xero has no account for at all (the only ones create_missing may create)."""
        codes = [f.code for f in self.findings if f.is_account and f.problem == MISSING]
        return tuple(dict.fromkeys(codes))

    def problem_for(self, setting: str) -> Finding | None:
        return next((f for f in self.problems if f.setting == setting), None)

    def table(self) -> str:
        """The verdict as a fixed-width table, then one line per problem with its fix."""
        header = ("SETTING", "CODE", "NEEDS", "XERO NAME", "TYPE", "STATUS", "VERDICT")
        rows = [
            (f.setting, f.code, f.wants, f.xero_name or "-", f.xero_type or "-", f.xero_status or "-", "ok" if f.ok else f"PROBLEM: {f.problem}")
            for f in self.findings
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
        if self.problems:
            lines += ["", f"{len(self.problems)} problem(s):"]
            for finding in self.problems:
                lines += [f"- {finding.message}", f"  fix: {finding.fix}"]
        else:
            lines += ["", f"All {len(self.findings)} mapped accounts and tax types fit the Xero organisation."]
        return "\n".join(lines)

    def summary(self) -> str:
        """One line for a run's failure: every problem's sentence."""
        return "; ".join(f.message for f in self.problems) if self.problems else "the mapping fits the Xero organisation"


# -- the needs of each process -------------------------------------------------------------------
PROCESSES = ("eretailer", "takings", "receivables", "payables", "cogs")
VOUCHER_TENDER = "GIFT_VOUCHER"


def needs_for_site(settings: Any) -> list[Need]:
    """Everything the site's processes need from the chart, for `ci-xero mapping check`: E-Retailer's
    (with its tenders' accounts when eretailer.pay_tenders), then takings' when takings.enabled; each
    need once, named by its setting as site.yaml writes it. `settings` is the SiteSettings."""
    needs = needs_for_process(settings, "eretailer")
    for process in ("takings", "receivables", "payables", "cogs"):
        if getattr(settings, process).enabled:
            needs += needs_for_process(settings, process)
    return _once(needs)


def needs_for_process(settings: Any, process: str) -> list[Need]:
    """What one process needs from the chart, for the check at the start of its run.

    eretailer: each sales account a revenue account, each tax type one for income; when
      eretailer.pay_tenders, the account of each mapped tender a web order can carry (clearing or bank;
      GIFT_VOUCHER the voucher liability) and the tax type of the sign rule's tender lines.
    takings: the same sales mapping, every mapped tender's account, the voucher liability (vouchers sold
      and redeemed), the over/short account(s) and the rounding account, and the tax type of those lines."""
    if process == "eretailer":
        needs = needs_for_eretailer(settings)
        if settings.eretailer.pay_tenders:
            mapping = settings.mapping
            # every mapped tender: the source contract lets a web order carry any tender type (pay on collection
            # in cash, say), and a payment into an account Xero refuses would leave its document unpaid
            needs += needs_for_tenders(tender_accounts=dict(mapping.tender_accounts), voucher_liability_account=mapping.voucher_liability_account,
                                       setting_prefix="mapping", voucher_redemptions=True)
            needs += _exempt_tax_type(settings)
    elif process == "takings":
        mapping, takings = settings.mapping, settings.takings
        needs = needs_for_eretailer(settings)
        needs += needs_for_takings(
            tender_accounts=mapping.tender_accounts, voucher_liability_account=mapping.voucher_liability_account,
            over_short_account=takings.over_short_account, over_short_accounts=takings.over_short_accounts,
            rounding_account=takings.rounding_account, setting_prefix="takings", mapping_prefix="mapping",
        )
        needs += _exempt_tax_type(settings)
    elif process == "receivables":
        # account customers' lines use the shared sales mapping; their other tenders pay as takings' do
        needs = needs_for_eretailer(settings)
        if settings.receivables.pay_tenders:
            mapping = settings.mapping
            needs += needs_for_tenders(tender_accounts=dict(mapping.tender_accounts), voucher_liability_account=mapping.voucher_liability_account,
                                       setting_prefix="mapping", voucher_redemptions=True)
        if settings.mapping.voucher_analysis_codes and settings.mapping.voucher_liability_account:
            needs.append(AccountNeed("mapping.voucher_liability_account", str(settings.mapping.voucher_liability_account), "voucher_liability"))
        needs += _exempt_tax_type(settings)
    elif process == "payables":
        payables, cogs = settings.payables, settings.cogs
        if cogs.enabled and cogs.inventory_account:
            needs = [AccountNeed("cogs.inventory_account", str(cogs.inventory_account), "inventory")]
        else:
            needs = [AccountNeed(f"payables.purchases_accounts.{code}", str(account), "purchases")
                     for code, account in sorted(payables.purchases_accounts.items())]
        needs += [TaxTypeNeed(f"payables.tax_types.{code}", str(tax_type), "INPUT")
                  for code, tax_type in sorted(payables.tax_types.items())]
    elif process == "cogs":
        cogs = settings.cogs
        needs = list(needs_for_cogs(inventory_account=str(cogs.inventory_account), cogs_accounts=cogs.cogs_accounts)) \
            if cogs.inventory_account else []
    else:
        raise ValueError(f"unknown process {process!r}; use one of {list(PROCESSES)}")
    return _once(needs)


def _once(needs: Iterable[Need]) -> list[Need]:
    """Each need once (the processes share the sales and tender mapping), in first-seen order."""
    return list(dict.fromkeys(needs))


def _exempt_tax_type(settings: Any) -> list[Need]:
    """Tender, voucher, over/short and rounding lines carry the tax type of gst_code E (NONE when the
    site maps no E): the need is already there when E is mapped."""
    if "E" in settings.mapping.tax_types:
        return []
    return [TaxTypeNeed("mapping.tax_types.E", "NONE", "OUTPUT")]


def needs_for_eretailer(settings: Any) -> list[Need]:
    """E-Retailer invoices (and the sales lines of every process: the mapping is shared): each sales
    account is a revenue account, each tax type one for income. `settings` is the SiteSettings (only
    settings.mapping is read); the tenders' needs are needs_for_process's."""
    mapping = settings.mapping
    needs: list[Need] = [
        AccountNeed(f"mapping.sales_accounts.{code}", str(account), "revenue")
        for code, account in sorted(mapping.sales_accounts.items())
    ]
    needs += [
        TaxTypeNeed(f"mapping.tax_types.{code}", str(tax_type), "OUTPUT")
        for code, tax_type in sorted(mapping.tax_types.items())
    ]
    return needs


def needs_for_tenders(
    *,
    tender_accounts: Mapping[str, str],
    voucher_liability_account: str | None = None,
    setting_prefix: str = "mapping",
    voucher_tender: str = VOUCHER_TENDER,
    voucher_redemptions: bool = False,
) -> list[AccountNeed]:
    """Each tender's account takes payments (clearing: CURRENT with payments enabled, or BANK); the
    voucher tender, mapped itself, pays into a liability. voucher_redemptions: the voucher tender is
    paid even unmapped, into voucher_liability_account (as TenderMapping pays it)."""
    needs: list[AccountNeed] = []
    for tender, account in sorted(tender_accounts.items()):
        role: Role = "voucher_liability" if tender == voucher_tender else "clearing"
        needs.append(AccountNeed(f"{setting_prefix}.tender_accounts.{tender}", str(account), role))
    if voucher_redemptions and voucher_tender not in tender_accounts and voucher_liability_account:
        needs.append(AccountNeed(f"{setting_prefix}.voucher_liability_account", str(voucher_liability_account), "voucher_liability"))
    return needs


def needs_for_takings(
    *,
    tender_accounts: Mapping[str, str],
    voucher_liability_account: str | None = None,
    over_short_account: str | None = None,
    over_short_accounts: Mapping[str, str] | None = None,
    rounding_account: str | None = None,
    setting_prefix: str = "takings",
    voucher_tender: str = VOUCHER_TENDER,
    mapping_prefix: str | None = None,
) -> list[AccountNeed]:
    """End-of-day takings: each tender's account takes payments (the voucher tender pays into the voucher
    liability), the voucher liability takes payments, over/short and rounding are expense or revenue
    accounts. The tender accounts and the voucher liability are named under mapping_prefix (the site's
    `mapping`; default: setting_prefix), the others under setting_prefix. The sales accounts and tax
    types are the shared mapping's: add needs_for_eretailer's for them (needs_for_process does)."""
    shared = mapping_prefix or setting_prefix
    needs = needs_for_tenders(tender_accounts=tender_accounts, setting_prefix=shared, voucher_tender=voucher_tender)
    if voucher_liability_account:
        needs.append(AccountNeed(f"{shared}.voucher_liability_account", str(voucher_liability_account), "voucher_liability"))
    if over_short_account:
        needs.append(AccountNeed(f"{setting_prefix}.over_short_account", str(over_short_account), "over_short"))
    for tender, account in sorted((over_short_accounts or {}).items()):
        needs.append(AccountNeed(f"{setting_prefix}.over_short_accounts.{tender}", str(account), "over_short"))
    if rounding_account:
        needs.append(AccountNeed(f"{setting_prefix}.rounding_account", str(rounding_account), "rounding"))
    return needs


def needs_for_cogs(*, inventory_account: str, cogs_accounts: Mapping[str, str], setting_prefix: str = "cogs") -> list[AccountNeed]:
    """Cost of goods sold journals, from their settings once they exist: a CURRENT inventory account
    and a cost of sales account per analysis code."""
    needs = [AccountNeed(f"{setting_prefix}.inventory_account", str(inventory_account), "inventory")]
    needs += [AccountNeed(f"{setting_prefix}.cogs_accounts.{code}", str(account), "cogs")
              for code, account in sorted(cogs_accounts.items())]
    return needs


# -- the verdict (pure) --------------------------------------------------------------------------
def _judge_account(need: AccountNeed, by_code: Mapping[str, Mapping[str, Any]]) -> Finding:
    rule = ROLES[need.role]
    where = f"{need.setting} → account {need.code}"
    account = by_code.get(need.code)
    if account is None:
        return Finding(
            need.setting, need.code, need.role, problem=MISSING,
            message=f"{where}: the Xero organisation has no account with code {need.code}",
            fix=f"create account {need.code} in Xero as {rule.describe} (or run `ci-xero mapping check --create-missing`), "
                f"or point {need.setting} in site.yaml at an existing one",
        )
    name, account_type = str(account.get("Name", "")), str(account.get("Type", ""))
    status = str(account.get("Status", ""))
    seen = dict(setting=need.setting, code=need.code, wants=need.role, xero_name=name, xero_type=account_type, xero_status=status)
    named = f"{where} ('{name}', {account_type})"
    if status != "ACTIVE":
        return Finding(**seen, problem=ARCHIVED,
                       message=f"{named} is {status or 'not ACTIVE'} in Xero",
                       fix=f"restore account {need.code} in Xero (Chart of accounts → Restore), or point {need.setting} at an active account")
    if account.get("SystemAccount"):
        return Finding(**seen, problem=SYSTEM_ACCOUNT,
                       message=f"{named} is Xero's system account {account['SystemAccount']}, which documents cannot use",
                       fix=f"point {need.setting} in site.yaml at {rule.describe}")
    if not rule.fits(account):
        return Finding(**seen, problem=WRONG_TYPE,
                       message=f"{named} is of type {account_type or '(none)'}; the role {need.role} needs {rule.describe}",
                       fix=f"point {need.setting} in site.yaml at {rule.describe}")
    if not rule.payments_ok(account):
        return Finding(**seen, problem=PAYMENTS_NOT_ENABLED,
                       message=f"{named} does not take payments (EnablePaymentsToAccount is off)",
                       fix=f"tick 'Enable payments to this account' on account {need.code} in Xero, or point {need.setting} at {rule.describe}")
    return Finding(**seen)


def _judge_tax_type(need: TaxTypeNeed, by_type: Mapping[str, Mapping[str, Any]]) -> Finding:
    flag, side_name = SIDES[need.side]
    where = f"{need.setting} → tax type {need.tax_type}"
    rate = by_type.get(need.tax_type)
    if rate is None:
        return Finding(need.setting, need.tax_type, need.side, problem=TAX_TYPE_MISSING,
                       message=f"{where}: the Xero organisation has no tax rate {need.tax_type}",
                       fix=f"point {need.setting} in site.yaml at one of the organisation's tax types "
                           f"(e.g. OUTPUT2, ZERORATED or NONE for income)")
    name, status = str(rate.get("Name", "")), str(rate.get("Status", ""))
    fits = [label for label, key in (("income", "CanApplyToRevenue"), ("expenses", "CanApplyToExpenses")) if rate.get(key) is True]
    seen = dict(setting=need.setting, code=need.tax_type, wants=need.side, xero_name=name,
                xero_type=f"tax rate ({', '.join(fits) or 'neither income nor expenses'})", xero_status=status)
    if status != "ACTIVE":
        return Finding(**seen, problem=TAX_TYPE_ARCHIVED, message=f"{where} ('{name}') is {status or 'not ACTIVE'} in Xero",
                       fix=f"point {need.setting} in site.yaml at an active tax type")
    if rate.get(flag) is not True:
        return Finding(**seen, problem=TAX_TYPE_WRONG_SIDE, message=f"{where} ('{name}') cannot be used on {side_name}",
                       fix=f"point {need.setting} in site.yaml at a tax type for {side_name}")
    return Finding(**seen)


def check_chart(needs: Iterable[Need], accounts: Sequence[Mapping[str, Any]], tax_rates: Sequence[Mapping[str, Any]]) -> ChartVerdict:
    """Judge each need against Xero's GET /Accounts and GET /TaxRates lists (as Xero answers them).
    Codes match exactly, as documents name them."""
    by_code = {str(account.get("Code")): account for account in accounts if account.get("Code") is not None}
    by_type = {str(rate.get("TaxType")): rate for rate in tax_rates if rate.get("TaxType") is not None}
    findings = [
        _judge_account(need, by_code) if isinstance(need, AccountNeed) else _judge_tax_type(need, by_type)
        for need in needs
    ]
    return ChartVerdict(tuple(findings))


# -- the Xero side ---------------------------------------------------------------------------------
def read_and_check(client: XeroClient, needs: Iterable[Need]) -> ChartVerdict:
    """One GET /Accounts and one GET /TaxRates, then the verdict. Writes nothing."""
    return check_chart(list(needs), client.accounts(), client.tax_rates())


@dataclass(frozen=True)
class CreatedAccount:
    code: str
    name: str
    type: str
    enable_payments: bool
    settings: tuple[str, ...]  # the settings that name it
    account_id: str = ""


@dataclass(frozen=True)
class RefusedAccount:
    code: str
    reason: str
    settings: tuple[str, ...]


@dataclass(frozen=True)
class CreationResult:
    created: tuple[CreatedAccount, ...]
    refused: tuple[RefusedAccount, ...]
    verdict: ChartVerdict  # the re-check after the creations

    def lines(self) -> list[str]:
        out = [f"Created account {c.code} '{c.name}' ({c.type}{', payments enabled' if c.enable_payments else ''}) "
               f"for {', '.join(c.settings)}" for c in self.created]
        out += [f"Could not create account {r.code} for {', '.join(r.settings)}: {r.reason}" for r in self.refused]
        return out or ["No account was missing: nothing created."]


def account_to_create(code: str, role: Role, settings: Sequence[str]) -> dict[str, Any]:
    """The PUT /Accounts body (one Account) for a missing account of this role."""
    rule = ROLES[role]
    body: dict[str, Any] = {
        "Code": code,
        "Name": rule.create_name.format(code=code),
        "Type": rule.create_type,
        "Description": f"Created by ci-xero for {', '.join(settings)}"[:4000],
    }
    if rule.create_tax_type:
        body["TaxType"] = rule.create_tax_type
    if rule.payments:
        body["EnablePaymentsToAccount"] = True
    return body


def create_missing(client: XeroClient, verdict: ChartVerdict, needs: Iterable[Need]) -> CreationResult:
    """Create each account the verdict found missing (one PUT /Accounts each, typed for the first role
    that needs it), then re-check with one read of each list. An account Xero already has, archived or
    wrongly typed, is never touched: it stays in the verdict for a person to fix. A refused creation
    (a name already taken, say) is reported and the rest go on; a lost answer is settled by the re-check."""
    needs = list(needs)
    created: list[CreatedAccount] = []
    refused: list[RefusedAccount] = []
    for code in verdict.missing_account_codes:
        wanting = [n for n in needs if isinstance(n, AccountNeed) and n.code == code]
        settings = tuple(n.setting for n in wanting)
        body = account_to_create(code, wanting[0].role, settings)
        # a retried PUT of the same account by this client replays instead of making a second one
        key = "ci-xero-account-" + hashlib.sha256(f"{client.idempotency_scope}\0{code}".encode()).hexdigest()
        try:
            answer = client.request("PUT", "Accounts", body=body, idempotency_key=key)
        except XeroOutcomeUnknown as error:
            refused.append(RefusedAccount(code, f"{error}; the re-check below shows whether Xero made it", settings))
            continue
        except XeroApiError as error:
            refused.append(RefusedAccount(code, str(error), settings))
            continue
        account = (answer.get("Accounts") or [{}])[0]
        created.append(CreatedAccount(code, str(account.get("Name", body["Name"])), str(account.get("Type", body["Type"])),
                                      bool(account.get("EnablePaymentsToAccount", False)), settings,
                                      str(account.get("AccountID", ""))))
    return CreationResult(tuple(created), tuple(refused), read_and_check(client, needs))
