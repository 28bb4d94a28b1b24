"""The sandbox Xero grows what issue 12 needs (account customers, bills, cost of goods sold), over real HTTP:
credit note allocations, manual journals, bills and bill credits, contacts keyed by ContactNumber, and the
demo chart's purchase and stock accounts. Each rule is tried accepted and refused. Every answer is validated
against Xero's full OpenAPI spec (test_sandbox_accounting.Api) and, for the new shapes, against the committed
spec subset the conformance tests use; the official xero-python SDK reads back what was written."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .conftest import CLIENT_ID
from .test_client_conformance import XeroContract, contract  # noqa: F401  (fixture)
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


def conforms(contract: XeroContract, schema: str, body: Any) -> None:
    """`body` (JSON as the wire carries it) has the shape of the spec subset's schema `schema`."""
    problems = contract._problems({"$ref": f"#/$defs/{schema}"}, body, schema, False)
    assert problems == [], problems


def messages_of(element: dict) -> list[str]:
    return [error["Message"] for error in element.get("ValidationErrors") or []]


def fetched(api: Api, document: dict) -> dict:
    if "InvoiceID" in document:
        return api.get(f"Invoices/{document['InvoiceID']}")["Invoices"][0]
    return api.get(f"CreditNotes/{document['CreditNoteID']}")["CreditNotes"][0]


def sdk(api: Api):
    """The official SDK's AccountingApi against the sandbox (skipped when the SDK is not installed)."""
    pytest.importorskip("xero_python")
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    stored: dict = {}
    client.oauth2_token_getter(lambda: stored)
    client.oauth2_token_saver(stored.update)
    token = dict(api.token)
    token["expires_at"] = time.time() + 1500
    client.set_oauth2_token(token)
    return AccountingApi(client, base_url=f"{api.server.base_url}/api.xro/2.0")


# -- credit note allocations ----------------------------------------------------------------------------

def allocation(invoice_doc: dict, amount: str, day: str = "2026-10-02", **changes: Any) -> dict:
    body = {"Invoice": {"InvoiceID": invoice_doc["InvoiceID"]}, "Amount": D(amount), "Date": day}
    body.update(changes)
    return body


def allocate(api: Api, credit: dict, *allocations: dict, **params: Any) -> requests.Response:
    return api.put(f"CreditNotes/{credit['CreditNoteID']}/Allocations", {"Allocations": list(allocations)}, **params)


def allocated(api: Api, credit: dict, *allocations: dict) -> list[dict]:
    """Allocations made with summarizeErrors=false; every one must be saved."""
    answer = allocate(api, credit, *allocations, summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    elements = api.json(answer)["Allocations"]
    assert [e["StatusAttributeString"] for e in elements] == ["OK"] * len(allocations), elements
    return elements


def allocation_refusals(api: Api, credit: dict, *allocations: dict) -> list[list[str]]:
    answer = allocate(api, credit, *allocations, summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    return [messages_of(element) for element in api.json(answer)["Allocations"]]


def sale_and_credit(api: Api, number: str, credit_amount: str = "40.00", **credit_changes: Any) -> tuple[dict, dict]:
    """An AUTHORISED invoice of 115.00 and an AUTHORISED credit note of `credit_amount` for its contact."""
    sale = api.create("Invoices", invoice(f"INV-{number}"))[0]
    amount = D(credit_amount)
    credit = api.create("CreditNotes", with_line(
        credit_note(f"CN-{number}", **credit_changes), UnitAmount=amount, LineAmount=amount, TaxAmount=None))[0]
    return sale, credit


def test_a_credit_allocated_in_part_then_the_invoice_paid(api, contract):
    sale, credit = sale_and_credit(api, "A1", "40.00")
    answer = allocate(api, credit, allocation(sale, "40.00"), summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    conforms(contract, "Allocations", answer.json())
    made = api.json(answer)["Allocations"][0]
    assert made["Amount"] == D("40.00") and made["Date"] == "/Date(1790899200000+0000)/"
    assert made["Invoice"]["InvoiceID"] == sale["InvoiceID"] and made["Invoice"]["AmountDue"] == D("75.00")
    assert made["CreditNote"]["CreditNoteID"] == credit["CreditNoteID"] and made["CreditNote"]["Status"] == "PAID"

    invoice_now, credit_now = fetched(api, sale), fetched(api, credit)
    assert (invoice_now["Status"], invoice_now["AmountDue"], invoice_now["AmountCredited"], invoice_now["AmountPaid"]) == (
        "AUTHORISED", D("75.00"), D("40.00"), D("0.00"))
    assert [(c["CreditNoteID"], c["CreditNoteNumber"], c["AppliedAmount"]) for c in invoice_now["CreditNotes"]] == [
        (credit["CreditNoteID"], "CN-A1", D("40.00"))]
    # fully allocated: the credit is PAID with nothing remaining, and lists its allocation
    assert (credit_now["Status"], credit_now["RemainingCredit"], credit_now["AppliedAmount"]) == ("PAID", D("0.00"), D("40.00"))
    assert [(a["AllocationID"], a["Amount"], a["Date"], a["Invoice"]["InvoiceID"], a["Invoice"]["InvoiceNumber"])
            for a in credit_now["Allocations"]] == [
        (made["AllocationID"], D("40.00"), "/Date(1790899200000+0000)/", sale["InvoiceID"], "INV-A1")]
    conforms(contract, "CreditNotes", api.call("GET", f"CreditNotes/{credit['CreditNoteID']}").json())
    conforms(contract, "Invoices", api.call("GET", f"Invoices/{sale['InvoiceID']}").json())
    assert api.server.store.allocation_rows(api.tenant_id, credit["CreditNoteID"])[0]["status"] == "ACTIVE"

    # a payment counts what was credited: 75.01 is more than is due, 75.00 settles it
    pay = {"Invoice": {"InvoiceID": sale["InvoiceID"]}, "Account": {"Code": "611"}, "Date": "2026-10-03"}
    over = api.json(api.put("Payments", {"Payments": [{**pay, "Amount": D("75.01")}]}, summarizeErrors="false"))["Payments"][0]
    assert messages_of(over) == ["Payment amount exceeds the amount outstanding on this document"]
    paid = api.json(api.put("Payments", {"Payments": [{**pay, "Amount": D("75.00")}]}, summarizeErrors="false"))["Payments"][0]
    assert paid["StatusAttributeString"] == "OK"
    settled = fetched(api, sale)
    assert (settled["Status"], settled["AmountDue"], settled["AmountPaid"], settled["AmountCredited"]) == (
        "PAID", D("0.00"), D("75.00"), D("40.00"))
    assert settled["FullyPaidOnDate"] == "/Date(1790985600000+0000)/"


def test_a_credit_larger_than_the_invoice_leaves_credit_remaining(api):
    sale, credit = sale_and_credit(api, "A2", "150.00")
    assert allocation_refusals(api, credit, allocation(sale, "115.01")) == [
        ["The amount allocated (115.01) exceeds the amount due (115.00) on the invoice."]]
    allocated(api, credit, allocation(sale, "100.00"), allocation(sale, "15.00"))  # two allocations, one invoice
    invoice_now, credit_now = fetched(api, sale), fetched(api, credit)
    assert (invoice_now["Status"], invoice_now["AmountDue"], invoice_now["AmountCredited"]) == ("PAID", D("0.00"), D("115.00"))
    assert (credit_now["Status"], credit_now["RemainingCredit"]) == ("AUTHORISED", D("35.00"))
    assert [a["Amount"] for a in credit_now["Allocations"]] == [D("100.00"), D("15.00")]
    assert [c["AppliedAmount"] for c in invoice_now["CreditNotes"]] == [D("100.00"), D("15.00")]
    # the invoice paid in full has nothing due
    other = api.create("Invoices", invoice("INV-A2B"))[0]
    assert allocation_refusals(api, credit, allocation(sale, "1.00"), allocation(other, "35.01")) == [
        ["The invoice has been paid in full: there is nothing due to allocate the credit to."],
        ["The amount allocated (35.01) exceeds the remaining credit (35.00) on the credit note."],
    ]


def test_allocations_refused_with_reasons(api):
    sale, credit = sale_and_credit(api, "R1", "40.00")
    draft_sale = api.create("Invoices", invoice("INV-R1D", Status="DRAFT"))[0]
    other_contact = api.create("Invoices", invoice("INV-R1O", Contact={"Name": "Someone Else"}))[0]
    bill = api.create("Invoices", bill_doc("SUP-1", "BILL-R1", Status="AUTHORISED"))[0]
    cases = [
        (allocation(draft_sale, "1.00"), ["Credit notes can only be allocated to AUTHORISED invoices."]),
        (allocation(other_contact, "1.00"), ["The credit note and the invoice must be for the same contact."]),
        (allocation(bill, "1.00"), [
            "A sales credit note (ACCRECCREDIT) can only be allocated to an invoice of Type ACCREC, not ACCPAY.",
            "The credit note and the invoice must be for the same contact."]),
        (allocation(sale, "0.00"), ["The allocation Amount must be greater than zero."]),
        (allocation(sale, "-5.00"), ["The allocation Amount must be greater than zero."]),
        (allocation(sale, "1.005"), ["The allocation Amount can have at most 2 decimal places."]),
        ({"Invoice": {"InvoiceID": sale["InvoiceID"]}, "Date": "2026-10-02"}, ["An allocation Amount must be specified."]),
        ({"Invoice": {"InvoiceID": sale["InvoiceID"]}, "Amount": D("1.00")}, ["An allocation Date must be specified."]),
        (allocation(sale, "1.00", "2026-10-01"), [
            "The allocation date cannot be before the credit note's or the invoice's date (2026-10-02)."]),
        ({"Invoice": {"InvoiceNumber": "INV-R1"}, "Amount": D("1.00"), "Date": "2026-10-02"},
         ["The Invoice must be named by its InvoiceID."]),
        (allocation({"InvoiceID": "6f0c1d1e-0000-4000-8000-000000000001"}, "1.00"), ["Invoice could not be found"]),
    ]
    assert allocation_refusals(api, credit, *[body for body, _ in cases]) == [expected for _, expected in cases]
    # without summarizeErrors=false one refusal refuses the request: the good allocation is not saved either
    answer = allocate(api, credit, allocation(sale, "10.00"), allocation(sale, "0.00"))
    assert answer.status_code == 400
    body = answer.json()
    assert body["Type"] == "ValidationException" and [messages_of(e) for e in body["Elements"]] == [
        ["The allocation Amount must be greater than zero."]]
    assert fetched(api, credit)["Allocations"] == [] and fetched(api, sale)["AmountDue"] == D("115.00")

    draft_credit = api.create("CreditNotes", credit_note("CN-R1D", Status="DRAFT"))[0]
    assert allocation_refusals(api, draft_credit, allocation(sale, "1.00")) == [
        ["Credit notes can only be allocated once they are AUTHORISED."]]
    missing = api.call("PUT", "CreditNotes/6f0c1d1e-0000-4000-8000-000000000002/Allocations",
                       {"Allocations": [allocation(sale, "1.00")]})
    assert missing.status_code == 404
    shapeless = api.call("PUT", f"CreditNotes/{credit['CreditNoteID']}/Allocations", allocation(sale, "1.00"))
    assert shapeless.status_code == 400 and "Allocations" in messages_of(shapeless.json()["Elements"][0])[0]


def test_a_purchase_credit_goes_to_a_bill_of_its_supplier(api):
    bill = api.create("Invoices", bill_doc("SUP-9", "B-77", Status="AUTHORISED"))[0]
    credit = api.create("CreditNotes", bill_credit_doc("SUP-9", "SC-77", "30.00"))[0]
    sale = api.create("Invoices", invoice("INV-P1"))[0]
    assert allocation_refusals(api, credit, allocation(sale, "1.00", "2026-10-05")) == [[
        "A purchase credit note (ACCPAYCREDIT) can only be allocated to an invoice of Type ACCPAY, not ACCREC.",
        "The credit note and the invoice must be for the same contact."]]
    allocated(api, credit, allocation(bill, "30.00", "2026-10-05"))
    assert (fetched(api, bill)["AmountDue"], fetched(api, credit)["Status"]) == (D("85.00"), "PAID")


def test_an_allocated_document_cannot_be_edited_or_voided_until_the_allocation_is_deleted(api, contract):
    sale, credit = sale_and_credit(api, "E1", "40.00")
    made = allocated(api, credit, allocation(sale, "25.00"))[0]
    blocked = "This document cannot be {} as it has a payment or credit note allocated to it."
    for collection, document, id_field in (("Invoices", sale, "InvoiceID"), ("CreditNotes", credit, "CreditNoteID")):
        edit = api.post(collection, {collection: [{id_field: document[id_field], "Reference": "changed"}]}, summarizeErrors="false")
        assert messages_of(api.json(edit)[collection][0]) == [blocked.format("edited")]
        void = api.post(f"{collection}/{document[id_field]}", {collection: [{"Status": "VOIDED"}]}, summarizeErrors="false")
        assert messages_of(api.json(void)[collection][0]) == [blocked.format("voided")]

    path = f"CreditNotes/{credit['CreditNoteID']}/Allocations/{made['AllocationID']}"
    removed = api.call("DELETE", path)
    assert removed.status_code == 200, removed.text
    conforms(contract, "Allocation", removed.json())
    assert api.json(removed)["IsDeleted"] is True and api.json(removed)["Amount"] == D("25.00")
    assert api.call("DELETE", path).status_code == 404  # once
    assert (fetched(api, sale)["AmountDue"], fetched(api, sale)["CreditNotes"]) == (D("115.00"), [])
    assert (fetched(api, credit)["RemainingCredit"], fetched(api, credit)["Allocations"]) == (D("40.00"), [])
    assert api.server.store.allocation_rows(api.tenant_id, credit["CreditNoteID"])[0]["status"] == "DELETED"
    void = api.post(f"CreditNotes/{credit['CreditNoteID']}", {"CreditNotes": [{"Status": "VOIDED"}]}, summarizeErrors="false")
    assert api.json(void)["CreditNotes"][0]["Status"] == "VOIDED"
    # a VOIDED credit has nothing to allocate
    assert allocation_refusals(api, credit, allocation(sale, "1.00")) == [["Credit notes can only be allocated once they are AUTHORISED."]]


def test_a_fully_allocated_credit_returns_to_authorised_when_its_allocation_is_deleted(api):
    sale, credit = sale_and_credit(api, "E2", "115.00")
    made = allocated(api, credit, allocation(sale, "115.00"))[0]
    assert (fetched(api, sale)["Status"], fetched(api, credit)["Status"]) == ("PAID", "PAID")
    assert api.call("DELETE", f"CreditNotes/{credit['CreditNoteID']}/Allocations/{made['AllocationID']}").status_code == 200
    assert (fetched(api, sale)["Status"], fetched(api, credit)["Status"]) == ("AUTHORISED", "AUTHORISED")
    assert "FullyPaidOnDate" not in fetched(api, sale)


def test_allocations_respect_the_lock_date(make_api, contract):
    api = make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 9, 30),
                                       tracking_categories={"Stores": STORES}))
    sale, credit = sale_and_credit(api, "L1", "40.00")
    made = allocated(api, credit, allocation(sale, "10.00"))[0]
    api.server.store.execute("UPDATE organisations SET period_lock_date = '2026-10-02'")  # an adviser locks the day
    assert allocation_refusals(api, credit, allocation(sale, "1.00", "2026-10-02")) == [[
        "The allocation date cannot be on or before the period lock date (02 Oct 2026); an adviser must change the lock date first."]]
    # the spec gives this operation no 400 answer; Xero's validation errors take its Error shape
    refused = api.call("DELETE", f"CreditNotes/{credit['CreditNoteID']}/Allocations/{made['AllocationID']}", validate=False)
    assert refused.status_code == 400
    conforms(contract, "Error", refused.json())
    assert messages_of(refused.json()["Elements"][0]) == [
        "The allocation is dated on or before the period lock date (02 Oct 2026) and cannot be deleted; "
        "an adviser must change the lock date first."]
    allocated(api, credit, allocation(sale, "1.00", "2026-10-03"))  # the first open day is fine
    assert fetched(api, credit)["RemainingCredit"] == D("29.00")


def test_a_retried_allocation_replays_and_a_dropped_answer_left_one_allocation(api):
    from ci_xero_pipeline.sandbox.faults import FaultPlan

    sale, credit = sale_and_credit(api, "I1", "40.00")
    path = f"CreditNotes/{credit['CreditNoteID']}/Allocations"
    body = {"Allocations": [allocation(sale, "10.00")]}
    headers = {"Idempotency-Key": "allocation-1"}
    first = api.call("PUT", path, body, params={"summarizeErrors": "false"}, headers=headers)
    second = api.call("PUT", path, body, params={"summarizeErrors": "false"}, headers=headers)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    assert len(fetched(api, credit)["Allocations"]) == 1

    api.server.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("CreditNotes",)))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # carried out, then the answer was lost
        api.call("PUT", path, {"Allocations": [allocation(sale, "5.00")]}, params={"summarizeErrors": "false"}, validate=False)
    assert [a["Amount"] for a in fetched(api, credit)["Allocations"]] == [D("10.00"), D("5.00")]
    assert api.server.faults.stats()["injected"] == {"drop": 1}


def test_the_sdk_reads_allocations_back(api):
    accounting = sdk(api)
    sale, credit = sale_and_credit(api, "S1", "40.00")
    allocated(api, credit, allocation(sale, "40.00"))
    note = accounting.get_credit_note(api.tenant_id, credit["CreditNoteID"]).credit_notes[0]
    assert (note.status, str(note.remaining_credit), len(note.allocations)) == ("PAID", "0.00", 1)
    assert (str(note.allocations[0].amount), str(note.allocations[0].invoice.invoice_id)) == ("40.00", sale["InvoiceID"])
    bought = accounting.get_invoice(api.tenant_id, sale["InvoiceID"]).invoices[0]
    assert (str(bought.amount_due), str(bought.amount_credited)) == ("75.00", "40.00")
    assert [str(c.credit_note_id) for c in bought.credit_notes] == [credit["CreditNoteID"]]


# -- bills and bill credits (ACCPAY, ACCPAYCREDIT) ------------------------------------------------------------

def bill_doc(supplier: str, number: str, **changes: Any) -> dict:
    """A supplier's bill of 100.00 + GST to 631 Stock on hand, SUBMITTED (Awaiting Approval)."""
    document = {
        "Type": "ACCPAY",
        "InvoiceNumber": number,
        "Contact": {"ContactNumber": supplier, "Name": f"Supplier {supplier}"},
        "Date": "2026-10-01",
        "DueDate": "2026-10-20",
        "Status": "SUBMITTED",
        "LineAmountTypes": "Exclusive",
        "Url": f"https://ci-xero.invalid/receipts?ci_receipt={number}-{supplier}",
        "LineItems": [{"Description": "Shoes", "Quantity": D("2"), "UnitAmount": D("50.00"), "AccountCode": "631",
                       "TaxType": "INPUT2"}],
    }
    document.update(changes)
    return document


def bill_credit_doc(supplier: str, number: str, amount: str, **changes: Any) -> dict:
    document = {
        "Type": "ACCPAYCREDIT",
        "CreditNoteNumber": number,
        "Reference": f"GR-{number}",
        "Contact": {"ContactNumber": supplier, "Name": f"Supplier {supplier}"},
        "Date": "2026-10-04",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Inclusive",
        "LineItems": [{"Description": "Returned", "Quantity": D("1"), "UnitAmount": D(amount), "AccountCode": "631",
                       "TaxType": "INPUT2"}],
    }
    document.update(changes)
    return document
