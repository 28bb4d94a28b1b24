"""Xero's rules for writing the chart of accounts: what `PUT /Accounts` (create one account) and
`POST /Accounts/{AccountID}` (update one) accept, in Xero's words where they are known.

`check_new_account` and `check_account_update` take the posted element and a `Chart` snapshot (the
organisation's accounts and tax rates) and answer the account as it would be stored plus what is
wrong with it; they touch no database. Where a rule comes from is said beside it:
- "spec": Xero's OpenAPI accounting spec (/work/shared/xero-openapi), the Account schema and the
  /Accounts paths;
- "xero-facts": /work/shared/design/xero-facts.md (Accounts);
- "help.xero.com": Xero's help page "Delete or archive an account in your chart of accounts";
- an issue thread where Xero's own message was reported.
Where Xero's behaviour is not documented the stricter reading is taken, and the comment says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CODE_LIMIT = 10  # spec: Code "max length = 10"; xero-facts: Code (≤ 10)
NAME_LIMIT = 150  # spec: Name maxLength 150
DESCRIPTION_LIMIT = 4000  # spec: Description "max length = 4000"

# spec: AccountType, and the class each type reports under (Xero's "Account Types" table)
TYPE_CLASSES = {
    "BANK": "ASSET", "CURRENT": "ASSET", "FIXED": "ASSET", "INVENTORY": "ASSET", "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY", "LIABILITY": "LIABILITY", "TERMLIAB": "LIABILITY", "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE", "DIRECTCOSTS": "EXPENSE", "EXPENSE": "EXPENSE", "OVERHEADS": "EXPENSE",
    "OTHERINCOME": "REVENUE", "REVENUE": "REVENUE", "SALES": "REVENUE",
}
# PAYG ("PAYG Liability") is Australian payroll: a New Zealand organisation has no such type. Xero's
# docs do not say whether the API refuses it in NZ; the stricter reading refuses it.
NOT_IN_NEW_ZEALAND = frozenset({"PAYG"})
# Types that may carry EnablePaymentsToAccount. xero-facts: it "lets a non-bank account (a clearing or
# liability account) receive payments"; Xero's docs list no types. The stricter reading allows it only
# on balance-sheet accounts a payment can sensibly settle into: current and non-current assets other
# than fixed assets, inventory and prepayments, liabilities and equity (owner's funds, drawings).
PAYMENTS_TYPES = frozenset({"CURRENT", "NONCURRENT", "CURRLIAB", "LIABILITY", "TERMLIAB", "EQUITY"})
# The tax type Xero gives a new account when none is sent (the spec's createAccount example: an
# EXPENSE account sent without TaxType comes back with Xero's purchases rate). Xero's default for a
# balance-sheet account is not documented: "no GST" is taken, and a client that cares sends TaxType.
DEFAULT_TAX_TYPES = {"REVENUE": "OUTPUT2", "EXPENSE": "INPUT2"}
DEFAULT_TAX_TYPE = "NONE"
# NZ bank account numbers: bank (2), branch (4), account (7), suffix (2 or 3) digits. Xero validates
# the number's shape per country (XeroAPI/Xero-OpenAPI#535: "The Bank Account Number must contain a
# 6-digit BSB code and account number" in Australia); the NZ shape is the stricter reading of that.
NZ_BANK_NUMBER = re.compile(r"\d{15,16}")
CODE_PATTERN = re.compile(r"[A-Za-z0-9]+")  # spec: "alpha numeric account code e.g 200 or SALES"

# the spec's Account schema: fields a client may write, and read-only ones it may send back (the
# spec's updateAccount example sends Class, ReportingCodeName and UpdatedDateUTC): those are ignored
WRITABLE = frozenset({
    "Code", "Name", "AccountID", "Type", "BankAccountNumber", "Status", "Description", "BankAccountType",
    "CurrencyCode", "TaxType", "EnablePaymentsToAccount", "ShowInExpenseClaims", "ReportingCode", "AddToWatchlist",
})
READ_ONLY = frozenset({"Class", "SystemAccount", "ReportingCodeName", "HasAttachments", "UpdatedDateUTC", "ValidationErrors"})
# what "account details" means in Xero's "Cannot update account details and STATUS on the same request"
DETAILS = WRITABLE - {"AccountID", "Status"}
DETAILS_AND_STATUS = "Cannot update account details and STATUS on the same request"  # waynerobinson/xeroizer#324


@dataclass(frozen=True)
class StoredAccount:
    """One account as the sandbox holds it (a row of the store's accounts table)."""

    account_id: str
    code: str
    name: str
    type: str
    account_class: str
    tax_type: str
    status: str
    system_account: str = ""
    description: str = ""
    bank_account_number: str = ""
    enable_payments: bool = False
    show_in_expense_claims: bool = False
    add_to_watchlist: bool = False
    used: bool = False  # ever named by a document line or a payment (see Chart.deletion_errors)
    updated_ms: int = 0

    @property
    def reporting_code(self) -> str:
        return self.account_class[:3]


@dataclass(frozen=True)
class TaxRateFit:
    tax_type: str
    status: str
    applies_to: frozenset[str]  # account classes


@dataclass
class Chart:
    base_currency: str
    accounts: list[StoredAccount]
    tax_rates: dict[str, TaxRateFit]

    def others(self, account_id: str | None) -> list[StoredAccount]:
        return [a for a in self.accounts if a.account_id != account_id]

    def deletion_errors(self, account: StoredAccount) -> list[str]:
        """Why `DELETE /Accounts/{AccountID}` is refused. help.xero.com: "You can't delete or archive
        system accounts" and "You can't delete an account you've used in a transaction, even after
        you've removed the transaction ... You can archive an account you've used." The sandbox counts
        any document line (drafts, voided and deleted documents too) and any payment, deleted or
        not, as a use: the stricter reading of "used in a transaction"."""
        if account.system_account:
            return [f"{account.name} is a system account and cannot be deleted."]
        if account.used:
            return [
                f"The account {account.code} has been used in transactions and cannot be deleted; "
                "archive it instead (Status ARCHIVED)."
            ]
        return []


@dataclass
class CheckedAccount:
    account: StoredAccount | None  # what would be stored; None when the element could not be read
    errors: list[str]
    echo: dict[str, Any] = field(default_factory=dict)  # the element as the refusal shows it


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def field_errors(element: dict[str, Any]) -> list[str]:
    """Fields that are not the spec's Account's, and values of the wrong JSON type."""
    errors = []
    unknown = sorted(set(element) - WRITABLE - READ_ONLY)
    if unknown:
        # Xero ignores what it does not know; the sandbox refuses it so a misspelt field is not lost
        errors.append(f"{', '.join(unknown)} {'is not a field' if len(unknown) == 1 else 'are not fields'} of an Account.")
    for name in ("Code", "Name", "Type", "BankAccountNumber", "Status", "Description", "BankAccountType",
                 "CurrencyCode", "TaxType", "ReportingCode", "AccountID"):
        if element.get(name) is not None and not isinstance(element[name], str):
            errors.append(f"{name} must be text.")
    for name in ("EnablePaymentsToAccount", "ShowInExpenseClaims", "AddToWatchlist"):
        if element.get(name) is not None and not isinstance(element[name], bool):
            errors.append(f"{name} must be true or false.")
    return errors


def _code_errors(code: str, chart: Chart, account_id: str | None) -> list[str]:
    if not code:
        # Xero lets a BANK account be created without a Code (its docs' smallest bank account has only
        # Name, Type and BankAccountNumber); the sandbox requires one on every account, as the
        # pipeline finds accounts by code: the stricter reading
        return ["Please enter a Code for the account."]
    if len(code) > CODE_LIMIT:
        return [f"Account Code is too long. Maximum of {CODE_LIMIT} characters allowed"]  # XeroAPI/Xero-Net#285
    if not CODE_PATTERN.fullmatch(code):
        # spec: "alpha numeric"; whether Xero takes other characters is not documented: letters and digits only
        return [f"The account Code '{code}' can only contain letters and digits."]
    if any(other.code.casefold() == code.casefold() for other in chart.others(account_id)):
        # xero-facts: Code unique; archived accounts keep their codes. Compared without case: stricter.
        # The wording follows the spec's message for a repeated Name.
        return ["Please enter a unique Code."]
    return []


def _name_errors(name: str, chart: Chart, account_id: str | None) -> list[str]:
    if not name:
        return ["Please enter a Name for the account."]
    if len(name) > NAME_LIMIT:
        return [f"The account Name must be {NAME_LIMIT} characters or fewer."]  # spec: maxLength 150
    if any(other.name.casefold() == name.casefold() for other in chart.others(account_id)):
        return ["Please enter a unique Name."]  # the spec's own example refusal; xero-facts: Name unique
    return []


def _type_errors(account_type: str) -> list[str]:
    if not account_type:
        return ["Please select an account Type."]
    if account_type not in TYPE_CLASSES:
        return [f"'{account_type}' is not a valid account Type; use one of {', '.join(sorted(TYPE_CLASSES))}."]
    if account_type in NOT_IN_NEW_ZEALAND:
        return [f"The account Type {account_type} is not available in a New Zealand organisation."]
    return []


def _tax_type_errors(tax_type: str, account_class: str, account_type: str, chart: Chart) -> list[str]:
    rate = chart.tax_rates.get(tax_type)
    if rate is None or rate.status != "ACTIVE":
        # spec: TaxType is "the tax type from taxRates": it must be one of the organisation's, and active
        return [f"The TaxType code '{tax_type}' does not exist or has been archived."]
    if account_type == "BANK" and tax_type != "NONE":
        # Xero's bank accounts carry no GST (the spec's examples: TaxType NONE); taking only NONE is the stricter reading
        return [f"A bank account takes the TaxType NONE, not {tax_type}."]
    if account_class not in rate.applies_to:
        # the tax rate's CanApplyTo… flags (spec: TaxRate), as on document lines
        return [f"The TaxType code '{tax_type}' cannot be used with an account of class {account_class}."]
    return []


def _bank_errors(account: StoredAccount, element: dict[str, Any], chart: Chart) -> list[str]:
    errors = []
    bank_type = _text(element.get("BankAccountType")).upper()
    currency = _text(element.get("CurrencyCode")).upper()
    if account.type == "BANK":
        number = re.sub(r"[\s-]", "", account.bank_account_number)
        if not number:
            # spec: BankAccountNumber "For bank accounts only (Account Type BANK)"; Xero's docs give it in
            # the smallest bank account they create: required
            errors.append("Please enter a Bank Account Number for the bank account.")
        elif not NZ_BANK_NUMBER.fullmatch(number):
            errors.append(
                "The Bank Account Number must be a New Zealand account number: bank (2), branch (4), "
                "account (7) and suffix (2 or 3) digits."
            )
        if bank_type not in ("", "BANK"):
            # credit card and PayPal accounts cannot be made through the API (XeroAPI/Xero-OpenAPI#535)
            errors.append(f"A {bank_type} account cannot be created or changed through the API; use BankAccountType BANK.")
        if currency and currency != chart.base_currency:
            errors.append(f"Organisation is not subscribed to currency {currency}")  # as for documents
        if account.description:
            errors.append("A bank account has no Description.")  # spec: Description "Valid for all types ... except bank accounts"
        if account.enable_payments:
            # a bank account takes payments by being one (xero-facts, Payments); the flag is refused on it:
            # whether Xero stores it is not documented, the stricter reading
            errors.append("EnablePaymentsToAccount is for accounts other than bank accounts, which take payments already.")
    else:
        if account.bank_account_number:
            errors.append("BankAccountNumber is for bank accounts only (Account Type BANK).")  # spec
        if bank_type:
            errors.append("BankAccountType is for bank accounts only (Account Type BANK).")  # spec
        if currency:
            errors.append("CurrencyCode is for bank accounts only (Account Type BANK).")  # spec: CurrencyCode on bank accounts
        if account.enable_payments and account.type not in PAYMENTS_TYPES:
            errors.append(
                f"Payments cannot be enabled on an account of Type {account.type}; EnablePaymentsToAccount is "
                f"available on {', '.join(sorted(PAYMENTS_TYPES))} accounts."
            )
    return errors


def _reporting_code_errors(element: dict[str, Any], account: StoredAccount) -> list[str]:
    given = _text(element.get("ReportingCode"))
    if given and given != account.reporting_code:
        # the sandbox keeps Xero's default reporting code of each class and no other
        return [f"The sandbox keeps the ReportingCode {account.reporting_code} for {account.account_class} accounts, not {given}."]
    return []


def _echo(element: dict[str, Any], account_id: str) -> dict[str, Any]:
    """A refused element as Xero shows it (the spec's example: AccountID zero for a new account)."""
    echo: dict[str, Any] = {"AccountID": account_id}
    for name in ("Code", "Name", "Type", "BankAccountNumber", "Status", "Description", "TaxType", "EnablePaymentsToAccount"):
        if element.get(name) is not None:
            echo[name] = element[name]
    return echo


def _flag(element: dict[str, Any], name: str, default: bool) -> bool:
    value = element.get(name)
    return value if isinstance(value, bool) else default


def check_new_account(element: Any, chart: Chart, new_id: str) -> CheckedAccount:
    """PUT /Accounts: one Account object (spec: the request body is the Account schema)."""
    zero = "00000000-0000-0000-0000-000000000000"
    if not isinstance(element, dict):
        return CheckedAccount(None, ['The request body must be one Account object, e.g. {"Code": "836", "Name": "…", "Type": "CURRLIAB"}.'])
    if "Accounts" in element:
        # xero-facts: "PUT /Accounts creates one account a call"; Xero reads only the first of a list
        # (XeroAPI/Xero-Net#285): the sandbox refuses a list rather than drop the rest unseen
        return CheckedAccount(None, ["Accounts cannot be created as a list: the body must be one Account object, one request per account."])
    errors = field_errors(element)
    echo = _echo(element, zero)
    if errors:
        return CheckedAccount(None, errors, echo)
    code, name = _text(element.get("Code")), _text(element.get("Name"))
    account_type = _text(element.get("Type")).upper()
    errors += _code_errors(code, chart, None) + _name_errors(name, chart, None) + _type_errors(account_type)
    status = _text(element.get("Status")).upper() or "ACTIVE"
    if status != "ACTIVE":
        errors.append(f"A new account must be ACTIVE, not {status}.")  # spec: "ACTIVE can be updated to ARCHIVED"
    if _text(element.get("AccountID")) and _text(element.get("AccountID")).lower() != zero:
        errors.append("AccountID cannot be given for a new account: Xero assigns it.")
    if errors and account_type not in TYPE_CLASSES:
        return CheckedAccount(None, errors, echo)
    account_class = TYPE_CLASSES.get(account_type, "ASSET")
    tax_type = _text(element.get("TaxType")).upper() or DEFAULT_TAX_TYPES.get(account_class, DEFAULT_TAX_TYPE)
    description = element.get("Description") if isinstance(element.get("Description"), str) else ""
    if len(description) > DESCRIPTION_LIMIT:
        errors.append(f"The account Description must be {DESCRIPTION_LIMIT} characters or fewer.")
    account = StoredAccount(
        account_id=new_id, code=code, name=name, type=account_type, account_class=account_class, tax_type=tax_type,
        status="ACTIVE", description=description.strip(), bank_account_number=_text(element.get("BankAccountNumber")),
        enable_payments=_flag(element, "EnablePaymentsToAccount", False),
        show_in_expense_claims=_flag(element, "ShowInExpenseClaims", False),
        add_to_watchlist=_flag(element, "AddToWatchlist", False),
    )
    if account_type in TYPE_CLASSES:
        errors += _tax_type_errors(tax_type, account_class, account_type, chart)
        errors += _bank_errors(account, element, chart)
        errors += _reporting_code_errors(element, account)
    return CheckedAccount(account, list(dict.fromkeys(errors)), echo)


def check_account_update(element: Any, current: StoredAccount, chart: Chart) -> CheckedAccount:
    """POST /Accounts/{AccountID}: the fields sent are laid over the stored account. A change of Status
    (ACTIVE ↔ ARCHIVED) is a request of its own: Xero refuses it together with any detail."""
    echo_id = current.account_id
    if not isinstance(element, dict):
        return CheckedAccount(None, ["Each account must be a JSON object."])
    errors = field_errors(element)
    echo = _echo(element, echo_id)
    given_id = _text(element.get("AccountID")).lower()
    if given_id and given_id != current.account_id:
        errors.append("The AccountID in the body does not match the one in the URL.")
    if errors:
        return CheckedAccount(None, errors, echo)
    details = sorted(set(element) & DETAILS)
    if "Status" in element:
        status = _text(element.get("Status")).upper()
        if details:
            return CheckedAccount(None, [DETAILS_AND_STATUS], echo)
        if status == "DELETED":
            return CheckedAccount(None, ["An account is deleted with DELETE /Accounts/{AccountID}, not by its Status."], echo)
        if status not in ("ACTIVE", "ARCHIVED"):
            return CheckedAccount(None, [f"'{element.get('Status')}' is not a valid account Status; use ACTIVE or ARCHIVED."], echo)
        if current.system_account and status != current.status:
            return CheckedAccount(None, [f"{current.name} is a system account and cannot be archived."], echo)  # help.xero.com
        changed = StoredAccount(**{**current.__dict__, "status": status})
        return CheckedAccount(changed, [], echo)

    if current.status != "ACTIVE":
        # Xero's docs do not say whether an archived account's details can change; the stricter reading: restore it first
        return CheckedAccount(None, ["An archived account cannot be changed; restore it (Status ACTIVE) first."], echo)
    values = dict(current.__dict__)
    if "Code" in element:
        values["code"] = _text(element["Code"])
    if "Name" in element:
        values["name"] = _text(element["Name"])
    if "Description" in element:
        values["description"] = _text(element["Description"])
    if "BankAccountNumber" in element:
        values["bank_account_number"] = _text(element["BankAccountNumber"])
    for key, name in (("enable_payments", "EnablePaymentsToAccount"), ("show_in_expense_claims", "ShowInExpenseClaims"),
                      ("add_to_watchlist", "AddToWatchlist")):
        values[key] = _flag(element, name, values[key])
    new_type = _text(element.get("Type")).upper() if "Type" in element else current.type
    if new_type != current.type:
        errors += _type_errors(new_type)
        if current.system_account:
            # help.xero.com: "Limited changes can be made to locked and system accounts": their Type is not one
            errors.append(f"{current.name} is a system account: its Type cannot be changed.")
        elif "BANK" in (new_type, current.type):
            # bank accounts are added and kept as bank accounts in Xero (its own page for adding them)
            errors.append("An account cannot be changed to or from a bank account (Type BANK).")
    if not errors and new_type != current.type:
        values["type"] = new_type
        values["account_class"] = TYPE_CLASSES[new_type]
    if "TaxType" in element:
        values["tax_type"] = _text(element["TaxType"]).upper()
        if current.system_account and values["tax_type"] != current.tax_type:
            errors.append(f"{current.name} is a system account: its TaxType cannot be changed.")
    if current.system_account and values["enable_payments"] != current.enable_payments:
        errors.append(f"{current.name} is a system account: payments cannot be enabled or disabled on it.")
    account = StoredAccount(**values)
    if errors:
        return CheckedAccount(None, list(dict.fromkeys(errors)), echo)
    errors += _code_errors(account.code, chart, current.account_id)
    errors += _name_errors(account.name, chart, current.account_id)
    if len(account.description) > DESCRIPTION_LIMIT:
        errors.append(f"The account Description must be {DESCRIPTION_LIMIT} characters or fewer.")
    errors += _tax_type_errors(account.tax_type, account.account_class, account.type, chart)
    errors += _bank_errors(account, element, chart)
    errors += _reporting_code_errors(element, account)
    return CheckedAccount(account, list(dict.fromkeys(errors)), echo)
