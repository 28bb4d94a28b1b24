"""The sandbox's chart of accounts written as Xero's Accounting API writes it, over real HTTP:
`PUT /Accounts` (create one), `POST /Accounts/{AccountID}` (update one; archive and restore),
`DELETE /Accounts/{AccountID}` (delete one never used), with Xero's rules and refusals; what an
archived account does to new documents and payments; and the sandbox's page per document (its
stand-in for go.xero.com). Every 200 and 400 answer is checked against Xero's OpenAPI spec
(test_sandbox_accounting.Api), refusals against its Error schema."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
import requests

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .test_client_conformance import contract, exchanges  # noqa: F401  (fixtures)
from .test_sandbox_accounting import (  # noqa: F401  (fixtures)
    STORES,
    Api,
    _loopback_http,
    accounting_spec,
    api,
    credit_note,
    error_validator,
    invoice,
    make_api,
    with_line,
)
from .test_sandbox_payments import delete as delete_payment
from .test_sandbox_payments import pay, payment, refusals

D = Decimal
ARCHIVED_202 = "Account code '202' has been archived, or is not a valid code for this document."  # Xero's words
DETAILS_AND_STATUS = "Cannot update account details and STATUS on the same request"  # Xero's words


def account(api: Api, code: str) -> dict:
    found = api.get("Accounts", where=f'Code=="{code}"')["Accounts"]
    assert len(found) == 1, found
    return found[0]


def codes(api: Api) -> set[str]:
    return {a["Code"] for a in api.get("Accounts")["Accounts"]}


def messages(answer: requests.Response) -> list[str]:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["Type"] == "ValidationException" and body["ErrorNumber"] == 10, body
    return [error["Message"] for element in body["Elements"] for error in element["ValidationErrors"]]


def create(api: Api, **fields: Any) -> dict:
    answer = api.put("Accounts", fields)
    assert answer.status_code == 200, answer.text
    [created] = api.json(answer)["Accounts"]
    return created


def update(api: Api, account_id: str, **fields: Any) -> requests.Response:
    """Xero's own call: POST /Accounts/{AccountID} with {"Accounts": [{"AccountID": …, …}]}."""
    return api.post(f"Accounts/{account_id}", {"Accounts": [{"AccountID": account_id, **fields}]})


def updated(api: Api, account_id: str, **fields: Any) -> dict:
    answer = update(api, account_id, **fields)
    assert answer.status_code == 200, answer.text
    [element] = api.json(answer)["Accounts"]
    return element


def set_status(api: Api, code: str, status: str) -> dict:
    """What the browser test does to account 202: archive it, or restore it."""
    return updated(api, account(api, code)["AccountID"], Status=status)


def delete(api: Api, account_id: str) -> requests.Response:
    return api.call("DELETE", f"Accounts/{account_id}")


def plain_invoice(number: str, account_code: str = "201", **changes: Any) -> dict:
    return {**with_line(invoice(number), AccountCode=account_code, Tracking=[]), **changes}


def saved_or_refused(api: Api, document: dict, method: str = "PUT") -> list[str]:
    """[] when the invoice was saved (PUT creates, POST updates), else Xero's messages for it."""
    answer = api.call(method, "Invoices", {"Invoices": [document]}, params={"summarizeErrors": "false"})
    assert answer.status_code == 200, answer.text
    return [e["Message"] for e in api.json(answer)["Invoices"][0].get("ValidationErrors", [])]


def voided(api: Api, document: dict) -> list[str]:
    return saved_or_refused(api, {"InvoiceID": document["InvoiceID"], "Status": "VOIDED"}, "POST")


# -- creating ---------------------------------------------------------------------------------------

def test_a_clearing_and_a_liability_account_with_payments_enabled_are_created_and_take_payments(api):
    liability = create(api, Code="836", Name="Layby deposits held", Type="CURRLIAB", TaxType="NONE",
                       EnablePaymentsToAccount=True, Description="Deposits on laybys not yet collected")
    clearing = create(api, Code="618", Name="Gift card clearing", Type="CURRENT", EnablePaymentsToAccount=True)
    assert (liability["Status"], liability["Class"], liability["EnablePaymentsToAccount"], liability["TaxType"]) == (
        "ACTIVE", "LIABILITY", True, "NONE")
    assert (clearing["Class"], clearing["TaxType"], clearing["ReportingCode"]) == ("ASSET", "NONE", "ASS")
    # read back as the pipeline reads the chart: the whole list, one by id, and a where filter
    listed = {a["Code"]: a for a in api.get("Accounts")["Accounts"]}
    assert listed["836"] == api.get(f"Accounts/{liability['AccountID']}")["Accounts"][0]
    assert listed["836"]["Name"] == "Layby deposits held" and listed["836"]["Description"] == "Deposits on laybys not yet collected"
    assert {"618", "836"} <= {a["Code"] for a in api.get("Accounts", where="EnablePaymentsToAccount==true")["Accounts"]}
    # and they do what they were made for: an invoice is paid into each
    sale = api.create("Invoices", plain_invoice("ER-LAYBY"))[0]
    paid = pay(api, payment(sale, "15.00", "836"), payment(sale, "100.00", "618"))
    assert [p["Account"]["Code"] for p in paid] == ["836", "618"]
    assert api.get(f"Invoices/{sale['InvoiceID']}")["Invoices"][0]["Status"] == "PAID"


def test_an_expense_and_a_revenue_account_take_the_default_tax_type(api):
    assert create(api, Code="450", Name="Card terminal rental", Type="OVERHEADS")["TaxType"] == "INPUT2"
    assert create(api, Code="206", Name="Repairs income", Type="SALES")["TaxType"] == "OUTPUT2"


def test_a_bank_account_needs_its_number_and_a_code_of_its_own(api):
    bank = create(api, Code="092", Name="Till float account", Type="BANK", BankAccountNumber="02-1234-0123456-02")
    assert (bank["BankAccountType"], bank["CurrencyCode"], bank["BankAccountNumber"], bank["Class"]) == (
        "BANK", "NZD", "02-1234-0123456-02", "ASSET")
    assert messages(api.put("Accounts", {"Code": "090", "Name": "Second account", "Type": "BANK",
                                         "BankAccountNumber": "0212340123456703"})) == ["Please enter a unique Code."]
    assert messages(api.put("Accounts", {"Code": "093", "Name": "Second account", "Type": "BANK"})) == [
        "Please enter a Bank Account Number for the bank account."]
    assert messages(api.put("Accounts", {"Code": "093", "Name": "Second account", "Type": "BANK", "BankAccountNumber": "1234"})) == [
        "The Bank Account Number must be a New Zealand account number: bank (2), branch (4), account (7) and suffix (2 or 3) digits."]
    assert "093" not in codes(api)


def test_creating_is_refused_with_xeros_reasons_and_saves_nothing(api):
    create(api, Code="GIFTCARD", Name="Gift card clearing", Type="CURRENT")
    before = codes(api)
    cases: dict[str, Any] = {
        "no code": {"Name": "Layby", "Type": "CURRLIAB"},
        "long code": {"Code": "LAYBY-DEPOSITS", "Name": "Layby", "Type": "CURRLIAB"},
        "odd code": {"Code": "83.6", "Name": "Layby", "Type": "CURRLIAB"},
        "taken code": {"Code": "835", "Name": "Layby", "Type": "CURRLIAB"},
        "taken code, other case": {"Code": "giftCard", "Name": "Layby", "Type": "CURRLIAB"},
        "no name": {"Code": "836", "Type": "CURRLIAB"},
        "long name": {"Code": "836", "Name": "L" * 151, "Type": "CURRLIAB"},
        "taken name": {"Code": "836", "Name": "gift voucher LIABILITY", "Type": "CURRLIAB"},
        "no type": {"Code": "836", "Name": "Layby"},
        "unknown type": {"Code": "836", "Name": "Layby", "Type": "CLEARING"},
        "Australian type": {"Code": "836", "Name": "Layby", "Type": "PAYG"},
        "unknown tax type": {"Code": "836", "Name": "Layby", "Type": "CURRLIAB", "TaxType": "GST15"},
        "archived tax type": {"Code": "206", "Name": "Old range", "Type": "REVENUE", "TaxType": "OUTPUT"},
        "tax type of the other side": {"Code": "206", "Name": "Repairs income", "Type": "REVENUE", "TaxType": "INPUT2"},
        "payments on revenue": {"Code": "206", "Name": "Repairs income", "Type": "REVENUE", "EnablePaymentsToAccount": True},
        "payments on a fixed asset": {"Code": "711", "Name": "Shop fittings", "Type": "FIXED", "EnablePaymentsToAccount": True},
        "bank number on a liability": {"Code": "836", "Name": "Layby", "Type": "CURRLIAB", "BankAccountNumber": "0212340123456703"},
        "credit card": {"Code": "093", "Name": "Visa", "Type": "BANK", "BankAccountType": "CREDITCARD", "BankAccountNumber": "0212340123456703"},
        "bank in dollars US": {"Code": "093", "Name": "USD", "Type": "BANK", "CurrencyCode": "USD", "BankAccountNumber": "0212340123456703"},
        "archived at birth": {"Code": "836", "Name": "Layby", "Type": "CURRLIAB", "Status": "ARCHIVED"},
        "unknown field": {"Code": "836", "Name": "Layby", "Type": "CURRLIAB", "Colour": "red"},
        "as a list": {"Accounts": [{"Code": "836", "Name": "Layby", "Type": "CURRLIAB"}]},
        "not an object": [{"Code": "836", "Name": "Layby", "Type": "CURRLIAB"}],
    }
    expected = {
        "no code": ["Please enter a Code for the account."],
        "long code": ["Account Code is too long. Maximum of 10 characters allowed"],
        "odd code": ["The account Code '83.6' can only contain letters and digits."],
        "taken code": ["Please enter a unique Code."],
        "taken code, other case": ["Please enter a unique Code."],
        "no name": ["Please enter a Name for the account."],
        "long name": ["The account Name must be 150 characters or fewer."],
        "taken name": ["Please enter a unique Name."],
        "no type": ["Please select an account Type."],
        "unknown type": ["'CLEARING' is not a valid account Type; use one of BANK, CURRENT, CURRLIAB, DEPRECIATN, DIRECTCOSTS, "
                         "EQUITY, EXPENSE, FIXED, INVENTORY, LIABILITY, NONCURRENT, OTHERINCOME, OVERHEADS, PAYG, PREPAYMENT, "
                         "REVENUE, SALES, TERMLIAB."],
        "Australian type": ["The account Type PAYG is not available in a New Zealand organisation."],
        "unknown tax type": ["The TaxType code 'GST15' does not exist or has been archived."],
        "archived tax type": ["The TaxType code 'OUTPUT' does not exist or has been archived."],
        "tax type of the other side": ["The TaxType code 'INPUT2' cannot be used with an account of class REVENUE."],
        "payments on revenue": ["Payments cannot be enabled on an account of Type REVENUE; EnablePaymentsToAccount is available "
                                "on CURRENT, CURRLIAB, EQUITY, LIABILITY, NONCURRENT, TERMLIAB accounts."],
        "payments on a fixed asset": ["Payments cannot be enabled on an account of Type FIXED; EnablePaymentsToAccount is available "
                                      "on CURRENT, CURRLIAB, EQUITY, LIABILITY, NONCURRENT, TERMLIAB accounts."],
        "bank number on a liability": ["BankAccountNumber is for bank accounts only (Account Type BANK)."],
        "credit card": ["A CREDITCARD account cannot be created or changed through the API; use BankAccountType BANK."],
        "bank in dollars US": ["Organisation is not subscribed to currency USD"],
        "archived at birth": ["A new account must be ACTIVE, not ARCHIVED."],
        "unknown field": ["Colour is not a field of an Account."],
        "as a list": ["Accounts cannot be created as a list: the body must be one Account object, one request per account."],
        "not an object": ['The request body must be one Account object, e.g. {"Code": "836", "Name": "…", "Type": "CURRLIAB"}.'],
    }
    assert {name: messages(api.put("Accounts", body)) for name, body in cases.items()} == expected
    assert codes(api) == before


def test_a_retried_create_with_its_idempotency_key_makes_one_account(api):
    body = {"Code": "836", "Name": "Layby deposits held", "Type": "CURRLIAB", "EnablePaymentsToAccount": True}
    first = api.call("PUT", "Accounts", body, headers={"Idempotency-Key": "create-836"})
    again = api.call("PUT", "Accounts", body, headers={"Idempotency-Key": "create-836"})
    assert first.status_code == again.status_code == 200
    assert api.json(first)["Accounts"][0]["AccountID"] == api.json(again)["Accounts"][0]["AccountID"]
    assert messages(api.put("Accounts", body)) == ["Please enter a unique Code.", "Please enter a unique Name."]
    assert [a["Code"] for a in api.get("Accounts")["Accounts"]].count("836") == 1


def test_account_calls_and_answers_keep_to_the_committed_spec_strictly(api, contract, exchanges):
    """Requests and answers of every account write, against the committed spec subset (the checks of
    test_client_conformance), and each account answered has no property the spec's Account lacks."""
    made = create(api, Code="836", Name="Layby deposits held", Type="CURRLIAB", EnablePaymentsToAccount=True)
    updated(api, made["AccountID"], Name="Layby deposits", Description="Held until collected")
    set_status(api, "836", "ARCHIVED")
    set_status(api, "836", "ACTIVE")
    assert messages(update(api, made["AccountID"], Status="ARCHIVED", Name="x")) == [DETAILS_AND_STATUS]
    assert delete(api, made["AccountID"]).status_code == 200
    accounts = [(request, answer) for request, answer in exchanges if "/Accounts" in request.url]
    assert {(request.method, answer.status_code) for request, answer in accounts} == {
        ("PUT", 200), ("POST", 200), ("POST", 400), ("GET", 200), ("DELETE", 200)}
    problems = []
    for request, answer in accounts:
        path = "/" + request.url.split("/api.xro/2.0/", 1)[1].split("?")[0]
        problems += contract.request_problems("accounting", path, request)
        problems += contract.response_problems("accounting", path, request, answer)
        if answer.status_code == 200:
            for element in answer.json()["Accounts"]:
                problems += contract._problems({"$ref": "#/$defs/Account"}, element, f"{request.method} {path} Account", True)
    assert problems == []


def test_the_official_sdk_creates_updates_archives_and_deletes_accounts(api):
    """xero-python (generated from Xero's spec) sends its own bodies: a bare Account to createAccount,
    {"Accounts": [Account]} to updateAccount; it reads the answers into its models."""
    import time

    from xero_python.accounting import Account, Accounts, AccountingApi, AccountType
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token
    from xero_python.exceptions import AccountingBadRequestException

    from .conftest import CLIENT_ID

    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    stored: dict = {}
    client.oauth2_token_getter(lambda: stored)
    client.oauth2_token_saver(stored.update)
    client.set_oauth2_token({**api.token, "expires_at": time.time() + 1500})
    accounting = AccountingApi(client, base_url=f"{api.server.base_url}/api.xro/2.0")

    made = accounting.create_account(api.tenant_id, Account(
        code="836", name="Layby deposits held", type=AccountType.CURRLIAB, enable_payments_to_account=True)).accounts[0]
    assert (made.code, made.type, made._class, made.enable_payments_to_account, made.status) == (
        "836", AccountType.CURRLIAB, "LIABILITY", True, "ACTIVE")
    renamed = accounting.update_account(api.tenant_id, made.account_id, Accounts(accounts=[
        Account(account_id=made.account_id, name="Layby deposits")])).accounts[0]
    assert renamed.name == "Layby deposits"
    archived = accounting.update_account(api.tenant_id, made.account_id, Accounts(accounts=[
        Account(account_id=made.account_id, status="ARCHIVED")])).accounts[0]
    assert archived.status == "ARCHIVED"
    with pytest.raises(AccountingBadRequestException) as refused:
        accounting.create_account(api.tenant_id, Account(code="836", name="Again", type=AccountType.CURRLIAB))
    assert refused.value.reason == "Please enter a unique Code."  # the SDK reads Xero's validation message
    assert accounting.delete_account(api.tenant_id, made.account_id).accounts[0].status == "DELETED"
    assert "836" not in {a.code for a in accounting.get_accounts(api.tenant_id).accounts}


# -- archiving and restoring -------------------------------------------------------------------------

def test_archived_202_refuses_new_documents_keeps_old_ones_and_is_restored(api):
    before = api.create("Invoices", plain_invoice("ER-20261029", "202"), plain_invoice("ER-20261028", "202"))
    footwear = account(api, "202")
    # the browser test's call, exactly
    answer = api.post(f"Accounts/{footwear['AccountID']}", {"Accounts": [{"AccountID": footwear["AccountID"], "Status": "ARCHIVED"}]})
    assert answer.status_code == 200, answer.text
    assert api.json(answer)["Accounts"][0]["Status"] == "ARCHIVED"
    assert account(api, "202")["Status"] == "ARCHIVED"
    assert {a["Code"] for a in api.get("Accounts", where='Status=="ARCHIVED"')["Accounts"]} == {"202", "209"}

    assert api.refused("Invoices", plain_invoice("ER-20261030", "202")) == [ARCHIVED_202]
    assert api.refused("CreditNotes", {**with_line(credit_note("ER-20261030"), AccountCode="202", Tracking=[])}) == [ARCHIVED_202]
    # the documents already in Xero keep the account, and can still be voided
    kept = api.get(f"Invoices/{before[0]['InvoiceID']}")["Invoices"][0]
    assert [line["AccountCode"] for line in kept["LineItems"]] == ["202"] and kept["Status"] == "AUTHORISED"
    assert voided(api, before[1]) == []

    answer = api.post(f"Accounts/{footwear['AccountID']}", {"Accounts": [{"AccountID": footwear["AccountID"], "Status": "ACTIVE"}]})
    assert answer.status_code == 200 and api.json(answer)["Accounts"][0]["Status"] == "ACTIVE"
    assert saved_or_refused(api, plain_invoice("ER-20261030", "202")) == []
    assert api.get("Invoices", InvoiceNumbers="ER-20261030")["Invoices"][0]["LineItems"][0]["AccountCode"] == "202"


def test_an_archived_account_takes_no_payments_until_restored(api):
    sale = api.create("Invoices", plain_invoice("ER-EFT"))[0]
    set_status(api, "612", "ARCHIVED")
    assert refusals(api, payment(sale, "50.00", "612")) == [["The account 612 has been archived and cannot take payments."]]
    assert api.get(f"Invoices/{sale['InvoiceID']}")["Invoices"][0]["AmountPaid"] == D("0.00")
    set_status(api, "612", "ACTIVE")
    assert pay(api, payment(sale, "50.00", "612"))[0]["Account"]["Code"] == "612"


def test_status_changes_alone_and_not_on_system_accounts(api):
    rent = account(api, "469")
    assert messages(update(api, rent["AccountID"], Status="ARCHIVED", Name="Shop rent")) == [DETAILS_AND_STATUS]
    # as Xero does, even when the details sent are the ones it holds
    assert messages(update(api, rent["AccountID"], Status="ACTIVE", Code="469")) == [DETAILS_AND_STATUS]
    assert messages(update(api, rent["AccountID"], Status="DELETED")) == [
        "An account is deleted with DELETE /Accounts/{AccountID}, not by its Status."]
    assert messages(update(api, rent["AccountID"], Status="CLOSED")) == ["'CLOSED' is not a valid account Status; use ACTIVE or ARCHIVED."]
    assert messages(update(api, account(api, "820")["AccountID"], Status="ARCHIVED")) == ["GST is a system account and cannot be archived."]
    assert messages(update(api, account(api, "610")["AccountID"], Status="ARCHIVED")) == [
        "Accounts Receivable is a system account and cannot be archived."]
    set_status(api, "469", "ARCHIVED")
    assert messages(update(api, rent["AccountID"], Name="Shop rent")) == [
        "An archived account cannot be changed; restore it (Status ACTIVE) first."]
    set_status(api, "469", "ACTIVE")
    assert updated(api, rent["AccountID"], Name="Shop rent")["Name"] == "Shop rent"
    assert {a["Code"]: a["Status"] for a in api.get("Accounts")["Accounts"]}["820"] == "ACTIVE"


# -- updating -----------------------------------------------------------------------------------------

def test_name_description_tax_type_and_payments_are_updated(api):
    other = account(api, "260")
    changed = updated(api, other["AccountID"], Name="Other income", Description="Sundry income", TaxType="ZERORATED")
    assert (changed["Name"], changed["Description"], changed["TaxType"], changed["Code"]) == (
        "Other income", "Sundry income", "ZERORATED", "260")
    assert account(api, "260") == api.get(f"Accounts/{other['AccountID']}")["Accounts"][0]
    assert account(api, "260")["Name"] == "Other income"
    # a new line on the account takes its new tax type
    saved = api.create("Invoices", with_line(plain_invoice("ER-OTHER", "260"), TaxType=None, TaxAmount=None))[0]
    assert saved["LineItems"][0]["TaxType"] == "ZERORATED" and saved["TotalTax"] == D("0.00")

    # payments: refused on a current asset until enabled on it, never on revenue
    prepayments = account(api, "620")
    sale = api.create("Invoices", plain_invoice("ER-PREPAID"))[0]
    assert refusals(api, payment(sale, "10.00", "620"))[0][0].startswith("Account type is invalid for making a payment")
    assert updated(api, prepayments["AccountID"], EnablePaymentsToAccount=True)["EnablePaymentsToAccount"] is True
    assert pay(api, payment(sale, "10.00", "620"))[0]["Account"]["Code"] == "620"
    assert messages(update(api, account(api, "200")["AccountID"], EnablePaymentsToAccount=True)) == [
        "Payments cannot be enabled on an account of Type REVENUE; EnablePaymentsToAccount is available "
        "on CURRENT, CURRLIAB, EQUITY, LIABILITY, NONCURRENT, TERMLIAB accounts."]
    assert updated(api, prepayments["AccountID"], EnablePaymentsToAccount=False)["EnablePaymentsToAccount"] is False
    assert refusals(api, payment(sale, "10.00", "620"))[0][0].startswith("Account type is invalid for making a payment")


def test_a_new_code_reaches_the_documents_that_use_the_account(api):
    freight = account(api, "205")
    saved = api.create("Invoices", plain_invoice("ER-FREIGHT", "205"))[0]
    assert updated(api, freight["AccountID"], Code="FREIGHT")["Code"] == "FREIGHT"
    assert api.get(f"Invoices/{saved['InvoiceID']}")["Invoices"][0]["LineItems"][0]["AccountCode"] == "FREIGHT"
    assert saved_or_refused(api, plain_invoice("ER-FREIGHT2", "205")) == ["Account code '205' is not a valid code for this document."]
    assert saved_or_refused(api, plain_invoice("ER-FREIGHT2", "FREIGHT")) == []
    # the old code is free for another account; the document still names the renamed one
    create(api, Code="205", Name="Courier recoveries", Type="REVENUE")
    assert api.get(f"Invoices/{saved['InvoiceID']}")["Invoices"][0]["LineItems"][0]["AccountCode"] == "FREIGHT"


def test_updates_are_refused_with_xeros_reasons_and_change_nothing(api):
    rent, bank, receivable = account(api, "469"), account(api, "090"), account(api, "610")
    path = f"Accounts/{rent['AccountID']}"
    cases = {
        "taken name": update(api, rent["AccountID"], Name="Cleaning"),
        "taken code": update(api, rent["AccountID"], Code="408"),
        "long code": update(api, rent["AccountID"], Code="RENT-PREMISES"),
        "empty name": update(api, rent["AccountID"], Name=""),
        "tax type of the other side": update(api, rent["AccountID"], TaxType="OUTPUT2"),
        "to revenue with its purchases tax": update(api, rent["AccountID"], Type="REVENUE"),
        "to a bank account": update(api, rent["AccountID"], Type="BANK"),
        "a bank account to anything": update(api, bank["AccountID"], Type="CURRENT"),
        "a bank account's description": update(api, bank["AccountID"], Description="Main account"),
        "a system account's type": update(api, receivable["AccountID"], Type="NONCURRENT"),
        "another account's id": api.post(path, {"Accounts": [{"AccountID": bank["AccountID"], "Name": "Shop rent"}]}),
        "two accounts": api.post(path, {"Accounts": [{"Name": "Shop rent"}, {"Name": "Rent"}]}),
        "not a list": api.post(path, {"Name": "Shop rent"}),
        "unknown field": update(api, rent["AccountID"], Colour="red"),
        "a number for a name": update(api, rent["AccountID"], Name=469),
    }
    expected = {
        "taken name": ["Please enter a unique Name."],
        "taken code": ["Please enter a unique Code."],
        "long code": ["Account Code is too long. Maximum of 10 characters allowed"],
        "empty name": ["Please enter a Name for the account."],
        "tax type of the other side": ["The TaxType code 'OUTPUT2' cannot be used with an account of class EXPENSE."],
        "to revenue with its purchases tax": ["The TaxType code 'INPUT2' cannot be used with an account of class REVENUE."],
        "to a bank account": ["An account cannot be changed to or from a bank account (Type BANK)."],
        "a bank account to anything": ["An account cannot be changed to or from a bank account (Type BANK)."],
        "a bank account's description": ["A bank account has no Description."],
        "a system account's type": ["Accounts Receivable is a system account: its Type cannot be changed."],
        "another account's id": ["The AccountID in the body does not match the one in the URL."],
        "two accounts": ["Exactly one account can be updated a call."],
        "not a list": ['The request body must be {"Accounts": [one Account]}, as the spec\'s updateAccount gives it.'],
        "unknown field": ["Colour is not a field of an Account."],
        "a number for a name": ["Name must be text."],
    }
    assert {name: messages(answer) for name, answer in cases.items()} == expected
    assert account(api, "469") == rent and account(api, "090") == bank and account(api, "610") == receivable
    # a type change that fits is taken
    assert updated(api, rent["AccountID"], Type="EXPENSE")["Type"] == "EXPENSE"
    assert updated(api, account(api, "260")["AccountID"], Type="OTHERINCOME")["Class"] == "REVENUE"
    assert api.call("POST", "Accounts/6f0e4b4e-0000-4000-8000-000000000000",
                    {"Accounts": [{"Name": "Nobody"}]}).status_code == 404


def test_the_specs_update_example_is_taken(api):
    """The spec's updateAccount request example sends read-only fields back (Class, ReportingCodeName,
    UpdatedDateUTC): they are ignored, as Xero does."""
    created = create(api, Code="123456", Name="FooBar", Type="EXPENSE", Description="Hello World")
    body = {"Accounts": [{
        "Code": "123456", "Name": "BarFoo", "AccountID": created["AccountID"], "Type": "EXPENSE",
        "Description": "GoodBye World", "TaxType": "INPUT2", "EnablePaymentsToAccount": False, "ShowInExpenseClaims": False,
        "Class": "EXPENSE", "ReportingCode": "EXP", "ReportingCodeName": "Expense", "UpdatedDateUTC": "2019-02-21T16:29:47.96-08:00",
    }]}
    answer = api.post(f"Accounts/{created['AccountID']}", body)
    assert answer.status_code == 200, answer.text
    changed = api.json(answer)["Accounts"][0]
    assert (changed["Name"], changed["Description"], changed["ShowInExpenseClaims"]) == ("BarFoo", "GoodBye World", False)


# -- deleting -----------------------------------------------------------------------------------------

def test_an_account_never_used_is_deleted_and_its_code_is_free(api):
    made = create(api, Code="836", Name="Layby deposits held", Type="CURRLIAB")
    answer = delete(api, made["AccountID"])
    assert answer.status_code == 200, answer.text
    [gone] = api.json(answer)["Accounts"]
    assert (gone["AccountID"], gone["Code"], gone["Status"]) == (made["AccountID"], "836", "DELETED")
    assert api.call("GET", f"Accounts/{made['AccountID']}").status_code == 404
    assert "836" not in codes(api)
    assert delete(api, made["AccountID"]).status_code == 404
    assert create(api, Code="836", Name="Layby deposits held", Type="CURRLIAB")["AccountID"] != made["AccountID"]


def test_a_deleted_seeded_account_is_not_seeded_back(api):
    assert delete(api, account(api, "270")["AccountID"]).status_code == 200
    # what a restart does: the organisation is brought up to date with the configuration and the seed
    api.server.store.ensure_organisation(SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"Stores": STORES}))
    assert "270" not in codes(api)


def test_a_used_account_and_a_system_account_are_not_deleted(api):
    footwear, eftpos = account(api, "202"), account(api, "612")
    sale = api.create("Invoices", plain_invoice("ER-USED", "202"))[0]
    draft = api.create("Invoices", plain_invoice("ER-DRAFT", "203", Status="DRAFT"))[0]
    paid = pay(api, payment(sale, "20.00", "612"))[0]
    # removing the transaction does not free the account (help.xero.com)
    assert delete_payment(api, paid["PaymentID"]).status_code == 200
    assert voided(api, sale) == []
    assert saved_or_refused(api, {"InvoiceID": draft["InvoiceID"], "Status": "DELETED"}, "POST") == []
    assert messages(delete(api, footwear["AccountID"])) == [
        "The account 202 has been used in transactions and cannot be deleted; archive it instead (Status ARCHIVED)."]
    assert messages(delete(api, eftpos["AccountID"])) == [
        "The account 612 has been used in transactions and cannot be deleted; archive it instead (Status ARCHIVED)."]
    assert messages(delete(api, account(api, "203")["AccountID"])) == [
        "The account 203 has been used in transactions and cannot be deleted; archive it instead (Status ARCHIVED)."]
    assert messages(delete(api, account(api, "610")["AccountID"])) == ["Accounts Receivable is a system account and cannot be deleted."]
    assert {"202", "203", "612", "610"} <= codes(api)
    assert set_status(api, "202", "ARCHIVED")["Status"] == "ARCHIVED"  # archive instead


def test_an_older_sandbox_file_learns_which_accounts_were_used(tmp_path):
    from ci_xero_pipeline.sandbox.store import SandboxStore, stable_id

    path = str(tmp_path / "old.sqlite")
    store = SandboxStore(path)
    tenant = store.ensure_organisation(SandboxOrganisation("Old Ltd", "OLD1"))
    line = {"LineItemID": "1", "AccountCode": "202", "AccountID": stable_id(tenant, "account", "202"), "LineAmount": D("10.00")}
    store.save_document("Invoices", tenant, {"InvoiceID": "6f0e4b4e-0000-4000-8000-000000000001", "Type": "ACCREC",
                                             "Status": "AUTHORISED", "Date": "2026-10-01", "Total": D("10.00"),
                                             "UpdatedDateUTC": 1, "LineItems": [line]})
    for column in ("used", "show_in_expense_claims", "add_to_watchlist"):
        store.execute(f"ALTER TABLE accounts DROP COLUMN {column}")
    store.close()
    store = SandboxStore(path)
    accounts = {a.code: a for a in store.stored_accounts(tenant)}
    assert accounts["202"].used and not accounts["203"].used
    assert accounts["469"].show_in_expense_claims and not accounts["200"].show_in_expense_claims
    store.close()


# -- the page per document -----------------------------------------------------------------------------

class _ById(HTMLParser):
    """The text inside each element that has an id."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open.append(dict(attrs).get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.found[element_id] = self.found.get(element_id, "") + data


def by_id(page: str) -> dict[str, str]:
    parser = _ById()
    parser.feed(page)
    return parser.found


def test_each_document_has_a_page_a_person_can_read(api):
    lines = [
        {"Description": "Sneakers <limited>", "Quantity": D("2"), "UnitAmount": D("57.50"), "AccountCode": "202", "TaxType": "OUTPUT2",
         "Tracking": [{"Name": "Stores", "Option": "Online"}]},
        {"Description": "Gift voucher", "Quantity": D("1"), "UnitAmount": D("50.00"), "AccountCode": "835", "TaxType": "NONE"},
    ]
    partition = "http://127.0.0.1:3000/assets/posted_eretailer?partition=2026-10-01"
    sale = api.create("Invoices", invoice("ER-20261001", LineItems=lines, Url=partition))[0]
    pay(api, payment(sale, "65.00", "612"))
    answer = requests.get(f"{api.server.base_url}/sandbox/documents/{sale['InvoiceID']}", timeout=10)  # no auth
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    fields = by_id(page)
    assert (fields["number"], fields["contact"], fields["status"], fields["date"], fields["reference"]) == (
        "ER-20261001", "E-Retailer Sales", "Awaiting Payment (AUTHORISED)", "1 Oct 2026", "CI E-Retailer 2026-10-01")
    # 115.00 + 50.00 inclusive; GST 15.00 on the sneakers only
    assert (fields["subtotal"], fields["total-tax"], fields["total"], fields["paid"], fields["amount-due"]) == (
        "150.00", "15.00", "165.00", "65.00", "100.00")
    assert fields["source"] == partition and f'href="{partition}"' in page
    assert "Sneakers &lt;limited&gt;" in page and "<limited>" not in page
    assert "202 Footwear sales" in page and "835 Gift voucher liability" in page and "Stores: Online" in page
    assert "Sales invoice ER-20261001" in page and "Test Retail Ltd" in page

    note = api.create("CreditNotes", with_line(credit_note("ER-20261002"), Tracking=[]))[0]
    page = requests.get(f"{api.server.base_url}/sandbox/documents/{note['CreditNoteID']}", timeout=10).text
    fields = by_id(page)
    assert (fields["number"], fields["total"], fields["remaining-credit"]) == ("ER-20261002", "115.00", "115.00")
    assert "Sales credit note ER-20261002" in page

    unknown = requests.get(f"{api.server.base_url}/sandbox/documents/6f0e4b4e-0000-4000-8000-000000000000", timeout=10)
    assert unknown.status_code == 404 and "No such document" in unknown.text
    assert requests.post(f"{api.server.base_url}/sandbox/documents/{sale['InvoiceID']}", timeout=10).status_code == 405


def test_xeros_deep_links_lead_to_the_documents_page(api):
    sale = api.create("Invoices", plain_invoice("ER-LINK"))[0]
    note = api.create("CreditNotes", with_line(credit_note("ER-LINKC"), Tracking=[]))[0]
    base = api.server.base_url

    def location(path: str, **params: str) -> tuple[int, str]:
        answer = requests.get(base + path, params=params, allow_redirects=False, timeout=10)
        return answer.status_code, answer.headers.get("location", "")

    assert location("/organisationlogin/default.aspx", shortcode="!TEST1",
                    redirecturl=f"/AccountsReceivable/View.aspx?InvoiceID={sale['InvoiceID']}") == (
        302, f"/sandbox/documents/{sale['InvoiceID']}")
    assert location("/AccountsReceivable/ViewCreditNote.aspx", creditNoteID=note["CreditNoteID"]) == (
        302, f"/sandbox/documents/{note['CreditNoteID']}")
    assert location("/organisationlogin/default.aspx", shortcode="!OTHER",
                    redirecturl=f"/AccountsReceivable/View.aspx?InvoiceID={sale['InvoiceID']}")[0] == 404
    followed = requests.get(f"{base}/AccountsReceivable/View.aspx", params={"InvoiceID": sale["InvoiceID"]}, timeout=10)
    assert followed.status_code == 200 and by_id(followed.text)["number"] == "ER-LINK"
    # the link as the pipeline writes it (settings xero.document_link): Xero's form, redirecturl not encoded,
    # the organisation's ShortCode as the Organisation endpoint gives it
    short_code = api.get("Organisation")["Organisations"][0]["ShortCode"]
    link = f"{base}/organisationlogin/default.aspx?shortcode={short_code}&redirecturl=/AccountsReceivable/View.aspx?InvoiceID={sale['InvoiceID']}"
    opened = requests.get(link, timeout=10)
    assert opened.status_code == 200 and opened.url == f"{base}/sandbox/documents/{sale['InvoiceID']}"
    assert by_id(opened.text)["number"] == "ER-LINK"


# -- through a real Dagster run: the browser test's path ---------------------------------------------------

def documents_sent(sandbox, tenant_id: str) -> int:
    """The document writes Xero was asked for (PUT/POST of Invoices and CreditNotes)."""
    return sum(n for (method, path), n in sandbox.store.call_counts(tenant_id).items()
               if method in ("PUT", "POST") and path in ("Invoices", "CreditNotes"))


def test_a_day_run_while_202_is_archived_stops_before_sending_and_posts_once_it_is_restored(sandbox_factory, demo_ci_url, make_site):
    """Account 202 (mapping.sales_accounts.FOOTWEAR in the demo) archived with Xero's own call, through
    the project's client: the mapping is checked against the organisation before anything is sent, so the
    run stops whole, naming the setting and the account, and nothing of the day reaches Xero; restored,
    the re-run posts the day."""
    from dagster import DagsterInstance

    from .conftest import DEMO_END_DAY
    from .pipeline_helpers import ci_final_totals_by_day, connect_site, outcome_counts, run, xero_client, xero_totals_by_day

    sandbox = sandbox_factory()
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "summary", "status": "AUTHORISED"}})
    connect_site(site)
    client = xero_client(site)
    footwear = next(a for a in client.accounts() if a["Code"] == "202")

    def set_202(status: str) -> None:
        answer = client.request("POST", f"Accounts/{footwear['AccountID']}",
                                body={"Accounts": [{"AccountID": footwear["AccountID"], "Status": status}]})
        assert answer["Accounts"][0]["Status"] == status

    set_202("ARCHIVED")
    instance = DagsterInstance.ephemeral()
    failed = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)
    assert not failed.success
    [failure] = [e.dagster_event.step_failure_data.user_failure_data for e in instance.all_logs(failed.run_id)
                 if e.dagster_event and e.dagster_event.is_step_failure]
    assert failure.description.startswith(
        "E-Retailer invoices: nothing was posted, the mapping does not fit the Xero organisation: "
        "mapping.sales_accounts.FOOTWEAR → account 202"), failure.description
    assert "ARCHIVED" in failure.description and "Fix: restore account 202 in Xero" in failure.description
    problems = failure.metadata["mapping_problems"].value
    assert "mapping.sales_accounts.FOOTWEAR" in problems and "202" in problems and "Footwear sales" in problems
    assert "failed_documents" not in failure.metadata  # no document was refused: none was sent
    assert documents_sent(sandbox, client.tenant_id) == 0
    assert DEMO_END_DAY.isoformat() not in xero_totals_by_day(site)

    set_202("ACTIVE")
    fixed = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)
    assert fixed.success, fixed.failed_checks
    assert outcome_counts(fixed.results) == {"posted": 1}
    assert xero_totals_by_day(site) == ci_final_totals_by_day(demo_ci_url, DEMO_END_DAY, DEMO_END_DAY)


def test_a_day_xero_refused_is_answered_anew_by_the_rerun_within_xeros_key_memory(sandbox_factory, demo_ci_url, make_site):
    """Xero refuses the day's one invoice (the sandbox's `validation` fault: the mapping check passed, the
    line is spoiled on its way in). The sandbox keeps each Idempotency-Key's first answer for Xero's few
    minutes (xero-facts): the re-run, at once and with the very same batch, must be answered anew, not
    with the remembered refusal."""
    from dagster import DagsterInstance

    from ci_xero_pipeline.sandbox.faults import INJECTED_ACCOUNT_CODE, FaultPlan

    from .conftest import DEMO_END_DAY
    from .pipeline_helpers import ci_final_totals_by_day, connect_site, outcome_counts, run, xero_client, xero_totals_by_day

    sandbox = sandbox_factory()
    assert sandbox.config.idempotency_seconds >= 300
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "summary", "status": "AUTHORISED"}})
    connect_site(site)
    tenant_id = xero_client(site).tenant_id
    sandbox.faults.set(FaultPlan(script=("validation",), methods=("PUT",), collections=("Invoices",)))
    instance = DagsterInstance.ephemeral()

    failed = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)

    assert not failed.success and sandbox.faults.stats()["injected"] == {"validation": 1}
    [failure] = [e.dagster_event.step_failure_data.user_failure_data for e in instance.all_logs(failed.run_id)
                 if e.dagster_event and e.dagster_event.is_step_failure]
    [row] = [record.data for record in failure.metadata["failed_documents"].value.records]
    assert row["business_date"] == DEMO_END_DAY.isoformat() and row["outcome"] == "failed"
    assert f"Account code '{INJECTED_ACCOUNT_CODE}'" in row["reason"]
    assert DEMO_END_DAY.isoformat() not in xero_totals_by_day(site)
    assert documents_sent(sandbox, tenant_id) == 1

    fixed = run(site, DEMO_END_DAY, DEMO_END_DAY, instance)  # the same one-invoice batch, a moment later
    assert fixed.success, fixed.failed_checks
    assert outcome_counts(fixed.results) == {"posted": 1} and documents_sent(sandbox, tenant_id) == 2
    assert xero_totals_by_day(site) == ci_final_totals_by_day(demo_ci_url, DEMO_END_DAY, DEMO_END_DAY)
