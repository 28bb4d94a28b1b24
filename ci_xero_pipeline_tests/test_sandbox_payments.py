"""The sandbox's Payments endpoint over real HTTP (the spec's createPayments, getPayments, getPayment,
deletePayment; rules from xero-facts.md, Payments): paying invoices and credit notes, Xero's refusals,
reading payments back, removing them, and what a payment does to its document. Every answer is checked
against Xero's OpenAPI spec (see test_sandbox_accounting.Api)."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .conftest import CLIENT_ID
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

D = Decimal
PAYMENTS_ENABLED = {"611", "612", "613", "614", "615", "616", "617", "835"}


def payment(document: dict, amount: str, account: str = "611", day: str = "2026-10-01", **changes: Any) -> dict:
    """A payment of `document` (by its id) into `account` (by code)."""
    key, id_field = ("Invoice", "InvoiceID") if "InvoiceID" in document else ("CreditNote", "CreditNoteID")
    body = {key: {id_field: document[id_field]}, "Account": {"Code": account}, "Date": day, "Amount": D(amount)}
    body.update(changes)
    return body


def pay(api: Api, *payments: dict) -> list[dict]:
    """PUT /Payments with summarizeErrors=false; every element must be saved."""
    answer = api.put("Payments", {"Payments": list(payments)}, summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    elements = api.json(answer)["Payments"]
    assert [e["StatusAttributeString"] for e in elements] == ["OK"] * len(payments), elements
    return elements


def refusals(api: Api, *payments: dict) -> list[list[str]]:
    """Each payment's messages, from one summarizeErrors=false batch."""
    answer = api.put("Payments", {"Payments": list(payments)}, summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    return [[error["Message"] for error in element.get("ValidationErrors", [])] for element in api.json(answer)["Payments"]]


def fetched(api: Api, document: dict) -> dict:
    if "InvoiceID" in document:
        return api.get(f"Invoices/{document['InvoiceID']}")["Invoices"][0]
    return api.get(f"CreditNotes/{document['CreditNoteID']}")["CreditNotes"][0]


def delete(api: Api, payment_id: str, body: Any = None):
    return api.post(f"Payments/{payment_id}", {"Status": "DELETED"} if body is None else body)


# -- the chart ------------------------------------------------------------------------------------

def test_accounts_say_which_take_payments(api):
    accounts = {a["Code"]: a for a in api.get("Accounts")["Accounts"]}
    enabled = {code for code, a in accounts.items() if a["EnablePaymentsToAccount"]}
    assert enabled == PAYMENTS_ENABLED
    assert {a["Code"] for a in api.get("Accounts", where="EnablePaymentsToAccount==true")["Accounts"]} == PAYMENTS_ENABLED
    assert all(accounts[code]["Type"] == "CURRENT" and accounts[code]["Class"] == "ASSET" for code in PAYMENTS_ENABLED - {"835"})
    assert accounts["090"]["Type"] == "BANK" and accounts["620"]["EnablePaymentsToAccount"] is False


# -- paying ----------------------------------------------------------------------------------------

def test_an_invoice_paid_in_part_then_in_full(api):
    saved = api.create("Invoices", invoice("ER-P1"))[0]
    first = pay(api, payment(saved, "100.00", "611", Reference="ER-P1/CASH"))[0]
    assert (first["Status"], first["PaymentType"], first["Amount"], first["BankAmount"]) == ("AUTHORISED", "ACCRECPAYMENT", D("100.00"), D("100.00"))
    assert first["Reference"] == "ER-P1/CASH" and first["Date"] == "/Date(1790812800000+0000)/"
    assert first["Account"]["Code"] == "611" and first["Account"]["Name"] == "Cash clearing"
    assert first["Invoice"]["InvoiceID"] == saved["InvoiceID"] and first["Invoice"]["AmountDue"] == D("15.00")
    assert first["PaymentID"] and first["HasValidationErrors"] is False

    part_paid = fetched(api, saved)
    assert (part_paid["Status"], part_paid["AmountDue"], part_paid["AmountPaid"]) == ("AUTHORISED", D("15.00"), D("100.00"))
    assert part_paid["Payments"] == [{
        "PaymentID": first["PaymentID"], "Date": "/Date(1790812800000+0000)/", "Amount": D("100.00"),
        "Reference": "ER-P1/CASH", "CurrencyRate": D("1.000000"), "HasAccount": False, "HasValidationErrors": False,
    }]
    assert "FullyPaidOnDate" not in part_paid

    # by number, into a bank account, a day later
    second = pay(api, {"Invoice": {"InvoiceNumber": "er-p1"}, "Account": {"Code": "090"}, "Date": "2026-10-02",
                       "Amount": D("15.00"), "Reference": "ER-P1/EFTPOS"})[0]
    assert second["Invoice"]["Status"] == "PAID"
    paid = fetched(api, saved)
    assert (paid["Status"], paid["AmountDue"], paid["AmountPaid"]) == ("PAID", D("0.00"), D("115.00"))
    assert [p["Reference"] for p in paid["Payments"]] == ["ER-P1/CASH", "ER-P1/EFTPOS"]
    assert paid["FullyPaidOnDate"] == "/Date(1790899200000+0000)/"
    assert api.get("Invoices", where='Status=="PAID"')["Invoices"][0]["InvoiceNumber"] == "ER-P1"
    assert refusals(api, payment(saved, "0.01")) == [["Payments can only be made against Authorised documents"]]


def test_several_payments_of_one_invoice_in_one_batch(api):
    saved = api.create("Invoices", invoice("ER-P2"))[0]
    messages = refusals(api, payment(saved, "60.00"), payment(saved, "55.00", "612"), payment(saved, "0.01", "613"))
    assert messages == [[], [], ["Payments can only be made against Authorised documents"]]
    assert fetched(api, saved)["Status"] == "PAID"


def test_payments_refused_with_xeros_messages(api):
    saved = api.create("Invoices", invoice("ER-R1"))[0]
    draft = api.create("Invoices", invoice("ER-R2", Status="DRAFT"))[0]
    voided = api.create("Invoices", invoice("ER-R3"))[0]
    api.post("Invoices", {"InvoiceID": voided["InvoiceID"], "Status": "VOIDED"})
    cases = [
        (payment(saved, "115.01"), "Payment amount exceeds the amount outstanding on this document"),
        (payment(saved, "0.00"), "The payment Amount must be greater than zero."),
        (payment(saved, "-5.00"), "The payment Amount must be greater than zero."),
        (payment(saved, "1.005"), "The payment Amount can have at most 2 decimal places."),
        ({k: v for k, v in payment(saved, "1.00").items() if k != "Amount"}, "A payment Amount must be specified."),
        (payment(draft, "1.00"), "Payments can only be made against Authorised documents"),
        (payment(voided, "1.00"), "Payments can only be made against Authorised documents"),
        (payment({"InvoiceID": "6f0e4b4e-0000-4000-8000-000000000000"}, "1.00"), "Invoice could not be found"),
        ({**payment(saved, "1.00"), "Invoice": {"InvoiceNumber": "NOPE-1"}}, "Invoice could not be found"),
        ({**payment(saved, "1.00"), "Account": {}}, "You must specify an Account code or Account ID for the payment"),
        (payment(saved, "1.00", "999"), "The account 999 could not be found."),
        (payment(saved, "1.00", "200"), "Account type is invalid for making a payment to/from account 200: it must be a "
                                        "BANK account or have payments enabled (EnablePaymentsToAccount)."),
        (payment(saved, "1.00", "620"), "Account type is invalid for making a payment to/from account 620: it must be a "
                                        "BANK account or have payments enabled (EnablePaymentsToAccount)."),
        ({k: v for k, v in payment(saved, "1.00").items() if k != "Date"}, "A payment Date must be specified."),
        (payment(saved, "1.00", day="01/10/2026"), "'01/10/2026' is not a valid date."),
        ({**payment(saved, "1.00"), "CreditNote": {"CreditNoteNumber": "CN-1"}}, "A payment must name exactly one Invoice or CreditNote."),
        ({k: v for k, v in payment(saved, "1.00").items() if k != "Invoice"}, "A payment must name exactly one Invoice or CreditNote."),
        (payment(saved, "1.00", Status="DELETED"), "Payments can only be created with a status of AUTHORISED, not DELETED."),
        (payment(saved, "1.00", Reference="x" * 256), "Reference must be 255 characters or fewer."),
    ]
    messages = refusals(api, *[case for case, _ in cases], payment(saved, "10.00"))
    for (_, expected), got in zip(cases, messages):
        assert got == [expected]
    assert messages[-1] == []  # the good one in the batch is saved
    assert fetched(api, saved)["AmountDue"] == D("105.00")
    assert [p["Amount"] for p in api.get("Payments")["Payments"]] == [D("10.00")]


def test_without_summarize_errors_a_bad_payment_saves_nothing(api):
    saved = api.create("Invoices", invoice("ER-S1"))[0]
    answer = api.put("Payments", {"Payments": [payment(saved, "10.00"), payment(saved, "1.00", "200")]})
    assert answer.status_code == 400
    body = answer.json()
    assert body["Type"] == "ValidationException" and len(body["Elements"]) == 1
    assert api.get("Payments")["Payments"] == [] and fetched(api, saved)["AmountDue"] == D("115.00")


def test_the_body_must_be_a_payments_list(api):
    saved = api.create("Invoices", invoice("ER-S2"))[0]
    bare = api.put("Payments", payment(saved, "10.00"))
    assert bare.status_code == 400
    assert bare.json()["Elements"][0]["ValidationErrors"][0]["Message"] == (
        'The request body must be {"Payments": [...]}, a list of Payment objects.'
    )
    assert api.get("Payments")["Payments"] == []


def test_a_gift_voucher_tender_pays_into_the_liability_account(api):
    saved = api.create("Invoices", invoice("ER-V1"))[0]
    voucher = pay(api, payment(saved, "15.00", "835", Reference="ER-V1/GIFT_VOUCHER"))[0]
    assert voucher["Account"]["Code"] == "835"


def test_a_credit_note_is_refunded(api):
    saved = api.create("CreditNotes", credit_note("ER-CN1"))[0]
    made = pay(api, payment(saved, "115.00", "090", day="2026-10-02", Reference="ER-CN1/VISA"))[0]
    assert made["PaymentType"] == "ARCREDITPAYMENT"
    assert made["CreditNote"]["CreditNoteID"] == saved["CreditNoteID"] and "Invoice" not in made  # the PUT answer
    note = fetched(api, saved)
    assert (note["Status"], note["RemainingCredit"]) == ("PAID", D("0.00"))
    assert [p["PaymentID"] for p in note["Payments"]] == [made["PaymentID"]]
    # read back, Xero names a credit note's payment under "Invoice" (its Type says what it is)
    read = api.get(f"Payments/{made['PaymentID']}")["Payments"][0]
    assert read["Invoice"]["Type"] == "ACCRECCREDIT" and read["Invoice"]["InvoiceID"] == saved["CreditNoteID"]
    assert read["Invoice"]["InvoiceNumber"] == "ER-CN1" and "CreditNote" not in read
    by_number = {"CreditNote": {"CreditNoteNumber": "ER-CN1"}, "Account": {"Code": "090"}, "Date": "2026-10-02", "Amount": D("1.00")}
    assert refusals(api, by_number) == [["Payments can only be made against Authorised documents"]]


def test_a_bill_is_paid_and_shared_numbers_must_be_named_by_id(api):
    bill = with_line(invoice("SUP-7", Type="ACCPAY", Contact={"Name": "Supplier"}), AccountCode="429", TaxType="INPUT2", TaxAmount=None)
    first, second = api.create("Invoices", bill, bill)
    assert refusals(api, {"Invoice": {"InvoiceNumber": "SUP-7"}, "Account": {"Code": "090"}, "Date": "2026-10-05",
                          "Amount": D("10.00")}) == [["More than one invoice has the number SUP-7; name it by its InvoiceID."]]
    made = pay(api, payment(second, "10.00", "090", day="2026-10-05"))[0]
    assert made["PaymentType"] == "ACCPAYPAYMENT" and made["Invoice"]["InvoiceID"] == second["InvoiceID"]


def test_account_named_by_id(api):
    saved = api.create("Invoices", invoice("ER-A1"))[0]
    bank = api.get("Accounts", where='Code=="090"')["Accounts"][0]
    made = pay(api, {**payment(saved, "5.00"), "Account": {"AccountID": bank["AccountID"]}})[0]
    assert made["Account"] == {"AccountID": bank["AccountID"], "Code": "090", "Name": "Business Bank Account"}
    mismatch = {**payment(saved, "5.00"), "Account": {"AccountID": bank["AccountID"], "Code": "611"}}
    assert refusals(api, mismatch) == [[f"The Account Code '611' and AccountID {bank['AccountID']} name different accounts."]]


# -- reading ---------------------------------------------------------------------------------------

def test_payments_are_found_by_reference_and_paged(api):
    documents = api.create("Invoices", *[invoice(f"ER-L{n}") for n in range(3)])
    made = pay(api, *[payment(d, "15.00", account, Reference=f"{d['InvoiceNumber']}/{tender}")
                      for d in documents for account, tender in (("611", "CASH"), ("612", "EFTPOS"))])
    assert len(made) == 6
    found = api.get("Payments", where='Reference=="ER-L1/EFTPOS"')["Payments"]
    assert [(p["PaymentID"], p["Amount"], p["Account"]["Code"]) for p in found] == [(made[3]["PaymentID"], D("15.00"), "612")]
    assert api.get("Payments", where='Reference=="er-l1/eftpos"')["Payments"][0]["PaymentID"] == made[3]["PaymentID"]
    assert api.get("Payments", where='Reference=="nothing"')["Payments"] == []
    either = api.get("Payments", where='Reference=="ER-L0/CASH" OR Reference=="ER-L2/CASH"')["Payments"]
    assert [p["Reference"] for p in either] == ["ER-L0/CASH", "ER-L2/CASH"]
    by_invoice = api.get("Payments", where=f'Invoice.InvoiceID==Guid("{documents[2]["InvoiceID"]}")')["Payments"]
    assert {p["Reference"] for p in by_invoice} == {"ER-L2/CASH", "ER-L2/EFTPOS"}
    assert len(api.get("Payments", where='Status=="AUTHORISED" AND Date>=DateTime(2026,10,01)')["Payments"]) == 6

    page = api.get("Payments", page=2, pageSize=4)
    assert page["pagination"] == {"page": 2, "pageSize": 4, "pageCount": 2, "itemCount": 6}
    assert [p["PaymentID"] for p in page["Payments"]] == [m["PaymentID"] for m in made[4:]]
    assert [p["Reference"] for p in api.get("Payments", order="Reference DESC")["Payments"]][:2] == ["ER-L2/EFTPOS", "ER-L2/CASH"]

    one = api.get(f"Payments/{made[0]['PaymentID']}")["Payments"]
    assert [p["Reference"] for p in one] == ["ER-L0/CASH"]
    assert one[0]["Invoice"]["InvoiceNumber"] == "ER-L0" and one[0]["Invoice"]["LineItems"] == []
    assert api.call("GET", "Payments/6f0e4b4e-0000-4000-8000-000000000000", validate=False).status_code == 404


def test_xero_python_sdk_reads_payments(api):
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    saved = api.create("Invoices", invoice("ER-SDK"))[0]
    made = pay(api, payment(saved, "115.00", "613", Reference="ER-SDK/VISA"))[0]
    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    stored: dict = {}
    client.oauth2_token_getter(lambda: stored)
    client.oauth2_token_saver(stored.update)
    client.set_oauth2_token({**api.token, "expires_at": time.time() + 1500})
    accounting = AccountingApi(client, base_url=f"{api.server.base_url}/api.xro/2.0")
    payments = accounting.get_payments(api.tenant_id, where='Reference=="ER-SDK/VISA"').payments
    assert [(p.payment_id, str(p.amount), p.status, p.date) for p in payments] == [(made["PaymentID"], "115.00", "AUTHORISED", date(2026, 10, 1))]
    assert payments[0].account.code == "613" and payments[0].invoice.invoice_number == "ER-SDK"
    paid = accounting.get_invoice(api.tenant_id, saved["InvoiceID"]).invoices[0]
    assert (paid.status, str(paid.amount_due), str(paid.amount_paid)) == ("PAID", "0.00", "115.00")
    assert [p.payment_id for p in paid.payments] == [made["PaymentID"]]


# -- removing a payment ------------------------------------------------------------------------------

def test_deleting_a_payment_reopens_the_document(api):
    saved = api.create("Invoices", invoice("ER-D1"))[0]
    made = pay(api, payment(saved, "115.00"))[0]
    assert fetched(api, saved)["Status"] == "PAID"
    answer = delete(api, made["PaymentID"])
    assert answer.status_code == 200, answer.text
    removed = api.json(answer)["Payments"][0]
    assert (removed["PaymentID"], removed["Status"]) == (made["PaymentID"], "DELETED")
    reopened = fetched(api, saved)
    assert (reopened["Status"], reopened["AmountDue"], reopened["AmountPaid"], reopened["Payments"]) == ("AUTHORISED", D("115.00"), D("0.00"), [])
    assert api.get(f"Payments/{made['PaymentID']}")["Payments"][0]["Status"] == "DELETED"

    again = delete(api, made["PaymentID"])
    assert again.status_code == 400
    assert again.json()["Elements"][0]["ValidationErrors"] == [{"Message": "Payment not of valid status for modification"}]
    assert api.call("POST", "Payments/6f0e4b4e-0000-4000-8000-000000000000", {"Status": "DELETED"}, validate=False).status_code == 404
    # and the invoice can be paid (and voided) again
    pay(api, payment(saved, "15.00"))


def test_a_payment_takes_no_change_but_deletion(api):
    saved = api.create("Invoices", invoice("ER-D2"))[0]
    made = pay(api, payment(saved, "15.00"))[0]
    only_delete = 'A payment cannot be changed, only deleted: send {"Status": "DELETED"}.'
    for body, message in [
        ({"Amount": D("1.00")}, only_delete),
        ({"Status": "DELETED", "Amount": D("1.00")}, only_delete),
        ({"Payments": [{"Status": "DELETED"}]}, only_delete),  # the spec's example wraps it; its schema does not
        ({"Status": "AUTHORISED"}, "A payment's Status can only be changed to DELETED, not AUTHORISED."),
    ]:
        answer = delete(api, made["PaymentID"], body)
        assert answer.status_code == 400
        assert answer.json()["Elements"][0]["ValidationErrors"] == [{"Message": message}]
    assert fetched(api, saved)["AmountPaid"] == D("15.00")


def test_a_reconciled_payment_cannot_be_deleted(api):
    saved = api.create("Invoices", invoice("ER-D3"))[0]
    made = pay(api, payment(saved, "15.00", "090", IsReconciled=True))[0]
    assert made["IsReconciled"] is True
    answer = delete(api, made["PaymentID"])
    assert answer.status_code == 400
    assert answer.json()["Elements"][0]["ValidationErrors"] == [{"Message": "A reconciled payment cannot be deleted."}]


# -- a document with payments ---------------------------------------------------------------------------

@pytest.mark.parametrize("collection", ["Invoices", "CreditNotes"])
def test_a_document_with_payments_cannot_be_edited_voided_or_deleted(api, collection):
    saved = api.create(collection, invoice("ER-E1") if collection == "Invoices" else credit_note("ER-E1"))[0]
    id_field = "InvoiceID" if collection == "Invoices" else "CreditNoteID"
    made = pay(api, payment(saved, "15.00"))[0]

    def change(**fields: Any) -> list[dict]:
        answer = api.post(collection, {collection: [{id_field: saved[id_field], **fields}]}, summarizeErrors="false")
        return api.json(answer)[collection][0]["ValidationErrors"]

    held = "This document cannot be {} as it has a payment or credit note allocated to it."
    assert change(Reference="changed") == [{"Message": held.format("edited")}]
    assert change(Status="VOIDED") == [{"Message": held.format("voided")}]
    assert change(Status="DELETED") == [{"Message": held.format("deleted")}]
    assert fetched(api, saved)["Reference"] == "CI E-Retailer 2026-10-01"
    assert delete(api, made["PaymentID"]).status_code == 200
    voided = api.post(collection, {collection: [{id_field: saved[id_field], "Status": "VOIDED"}]})
    assert voided.status_code == 200 and api.json(voided)[collection][0]["Status"] == "VOIDED"


def test_a_fully_paid_invoice_cannot_be_edited(api):
    saved = api.create("Invoices", invoice("ER-E2"))[0]
    pay(api, payment(saved, "115.00"))
    answer = api.post("Invoices", {"InvoiceID": saved["InvoiceID"], "Reference": "x"}, summarizeErrors="false")
    assert api.json(answer)["Invoices"][0]["ValidationErrors"] == [
        {"Message": "This document cannot be edited as it has a payment or credit note allocated to it."}
    ]


# -- lock dates ------------------------------------------------------------------------------------

def test_payments_and_their_removal_respect_the_lock_date(make_api):
    api = make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 9, 30)))
    plain = with_line(invoice("L-P1"), Tracking=[])
    saved = api.create("Invoices", plain)[0]
    assert refusals(api, payment(saved, "15.00", day="2026-09-30")) == [[
        "The payment date cannot be on or before the period lock date (30 Sep 2026); an adviser must change the lock date first."
    ]]
    made = pay(api, payment(saved, "15.00", day="2026-10-01"))[0]
    api.server.store.execute("UPDATE organisations SET period_lock_date = '2026-10-31'")  # an adviser locks October
    answer = delete(api, made["PaymentID"])
    assert answer.status_code == 400
    assert answer.json()["Elements"][0]["ValidationErrors"] == [{"Message": (
        "The payment is dated on or before the period lock date (31 Oct 2026) and cannot be deleted; "
        "an adviser must change the lock date first.")}]
    assert api.get(f"Payments/{made['PaymentID']}")["Payments"][0]["Status"] == "AUTHORISED"


# -- idempotency -------------------------------------------------------------------------------------

def test_a_retried_payment_batch_replays(api):
    saved = api.create("Invoices", invoice("ER-I1"))[0]
    body = {"Payments": [payment(saved, "15.00", Reference="ER-I1/CASH")]}
    headers = {"Idempotency-Key": "payments-1"}
    first = api.call("PUT", "Payments", body, params={"summarizeErrors": "false"}, headers=headers)
    second = api.call("PUT", "Payments", body, params={"summarizeErrors": "false"}, headers=headers)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert len(api.get("Payments", where='Reference=="ER-I1/CASH"')["Payments"]) == 1
    assert fetched(api, saved)["AmountDue"] == D("100.00")


# -- fault injection -----------------------------------------------------------------------------------

def test_a_validation_fault_spoils_one_payment_of_a_batch(api):
    from ci_xero_pipeline.sandbox.faults import INJECTED_ACCOUNT_CODE, FaultPlan

    documents = api.create("Invoices", invoice("ER-F1"), invoice("ER-F2"))
    api.server.faults.set(FaultPlan(script=("validation",), collections=("Payments",), seed=1))
    messages = refusals(api, *[payment(d, "15.00") for d in documents])
    assert sorted(map(len, messages)) == [0, 1]
    assert [m for m in messages if m] == [[f"The account {INJECTED_ACCOUNT_CODE} could not be found."]]
    assert len(api.get("Payments")["Payments"]) == 1
