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
    """The official SDK's AccountingApi against the sandbox (xero-python is a test dependency: missing, the tests fail)."""
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


# -- manual journals ----------------------------------------------------------------------------------------

def journal(narration: str = "CI COGS AKL01 2026-10-01", amount: str = "60.00", **changes: Any) -> dict:
    """A cost of goods sold journal as the cogs process sends it: debit 310, credit 631, branch tracking."""
    tracking = [{"Name": "Stores", "Option": "Online"}]
    body = {
        "Narration": narration,
        "Date": "2026-10-01",
        "Status": "POSTED",
        "LineAmountTypes": "NoTax",
        "Url": "https://ci-xero.invalid/cogs?day=2026-10-01",
        "JournalLines": [
            {"LineAmount": D(amount), "AccountCode": "310", "Description": "COGS APPAREL", "Tracking": tracking},
            {"LineAmount": -D(amount), "AccountCode": "631", "Description": "Stock on hand", "Tracking": tracking},
        ],
    }
    body.update(changes)
    return body


def journal_lines(*pairs: tuple[str, str], **line_changes: Any) -> list[dict]:
    return [{"LineAmount": D(amount), "AccountCode": code, **line_changes} for code, amount in pairs]


def journals_written(api: Api, *journals: dict, method: str = "PUT", path: str = "ManualJournals") -> list[dict]:
    answer = api.call(method, path, {"ManualJournals": list(journals)}, params={"summarizeErrors": "false"})
    assert answer.status_code == 200, answer.text
    return api.json(answer)["ManualJournals"]


def posted(api: Api, *journals: dict) -> list[dict]:
    elements = journals_written(api, *journals)
    assert [e["StatusAttributeString"] for e in elements] == ["OK"] * len(journals), elements
    return elements


def journal_refusals(api: Api, *journals: dict) -> list[list[str]]:
    return [messages_of(e) for e in journals_written(api, *journals)]


def update(api: Api, journal_id: str, changes: dict) -> requests.Response:
    return api.post(f"ManualJournals/{journal_id}", {"ManualJournals": [changes]})


def test_a_posted_journal_and_how_it_reads_back(api, contract):
    answer = api.call("PUT", "ManualJournals", {"ManualJournals": [journal()]}, params={"summarizeErrors": "false"})
    assert answer.status_code == 200, answer.text
    conforms(contract, "ManualJournals", answer.json())
    made = api.json(answer)["ManualJournals"][0]
    assert (made["StatusAttributeString"], made["Status"], made["LineAmountTypes"], made["Narration"]) == (
        "OK", "POSTED", "NoTax", "CI COGS AKL01 2026-10-01")
    assert made["Date"] == "/Date(1790812800000+0000)/" and made["Url"] == "https://ci-xero.invalid/cogs?day=2026-10-01"
    assert made["ShowOnCashBasisReports"] is True and made["HasAttachments"] is False and made["UpdatedDateUTC"].startswith("/Date(")
    accounts = {a["Code"]: a["AccountID"] for a in api.get("Accounts")["Accounts"]}
    stores = api.get("TrackingCategories")["TrackingCategories"][0]
    online = next(o for o in stores["Options"] if o["Name"] == "Online")
    assert made["JournalLines"] == [
        {"LineAmount": D("60.00"), "AccountCode": "310", "AccountID": accounts["310"], "Description": "COGS APPAREL",
         "TaxType": "NONE", "TaxAmount": D("0.00"), "IsBlank": False,
         "Tracking": [{"TrackingCategoryID": stores["TrackingCategoryID"], "TrackingOptionID": online["TrackingOptionID"],
                       "Name": "Stores", "Option": "Online"}]},
        {"LineAmount": D("-60.00"), "AccountCode": "631", "AccountID": accounts["631"], "Description": "Stock on hand",
         "TaxType": "NONE", "TaxAmount": D("0.00"), "IsBlank": False, "Tracking": made["JournalLines"][0]["Tracking"]},
    ]
    by_id = api.get(f"ManualJournals/{made['ManualJournalID']}")["ManualJournals"]
    assert [{k: v for k, v in j.items() if k != "UpdatedDateUTC"} for j in by_id] == [
        {k: v for k, v in made.items() if k not in ("UpdatedDateUTC", "StatusAttributeString")}]
    conforms(contract, "ManualJournals", api.call("GET", f"ManualJournals/{made['ManualJournalID']}").json())

    posted(api, journal("CI COGS AKL01 2026-10-02", "12.34", Date="2026-10-02"), journal("Something else", Date="2026-10-05"))
    found = api.get("ManualJournals", where='Narration=="ci cogs akl01 2026-10-01"')["ManualJournals"]
    assert [j["ManualJournalID"] for j in found] == [made["ManualJournalID"]]  # strings compare case-insensitively
    # an unpaged list shows no lines (the spec's example); a paged one and a read by id do
    assert found[0]["JournalLines"] == []
    paged = api.get("ManualJournals", where='Narration=="CI COGS AKL01 2026-10-01"', page=1)
    assert paged["pagination"]["itemCount"] == 1 and len(paged["ManualJournals"][0]["JournalLines"]) == 2
    either = api.get("ManualJournals", where='(Narration=="CI COGS AKL01 2026-10-01") OR (Narration=="CI COGS AKL01 2026-10-02")',
                     order="Date DESC")["ManualJournals"]
    assert [j["Narration"] for j in either] == ["CI COGS AKL01 2026-10-02", "CI COGS AKL01 2026-10-01"]
    in_days = api.get("ManualJournals", where='Date>=DateTime(2026,10,02) AND Date<DateTime(2026,10,05)')["ManualJournals"]
    assert [j["Narration"] for j in in_days] == ["CI COGS AKL01 2026-10-02"]
    starts = api.get("ManualJournals", where='Narration.StartsWith("CI COGS") AND Status=="POSTED"', page=1, pageSize=1)
    assert starts["pagination"] == {"page": 1, "pageSize": 1, "pageCount": 2, "itemCount": 2}
    unreadable = api.call("GET", "ManualJournals", params={"where": 'Narration=="x" AND'}, validate=False)  # no 400 in the spec
    assert unreadable.status_code == 400 and unreadable.json()["Type"] == "QueryParseException"
    assert api.call("GET", "ManualJournals/6f0c1d1e-0000-4000-8000-000000000003").status_code == 404


def test_journal_defaults_and_a_tax_exclusive_journal(api):
    draft = posted(api, {"Narration": "Defaults", "Date": "2026-10-01",
                         "JournalLines": journal_lines(("429", "10.00"), ("631", "-10.00"), ("400", "0.00"))})[0]
    # DRAFT and NoTax by default; ShowOnCashBasisReports true; a 0.00 line is kept (no source refuses it)
    assert (draft["Status"], draft["LineAmountTypes"], draft["ShowOnCashBasisReports"]) == ("DRAFT", "NoTax", True)
    assert [line["LineAmount"] for line in draft["JournalLines"]] == [D("10.00"), D("-10.00"), D("0.00")]
    assert "Url" not in draft
    # Exclusive: the tax is posted beside its line, so 100.00 + 15.00 GST balances a 115.00 credit
    taxed = posted(api, {"Narration": "Exclusive", "Date": "2026-10-01", "LineAmountTypes": "Exclusive",
                         "JournalLines": [{"LineAmount": D("100.00"), "AccountCode": "429", "TaxType": "INPUT2"},
                                          {"LineAmount": D("-115.00"), "AccountCode": "631", "TaxType": "NONE"}]})[0]
    assert [(line["TaxType"], line["TaxAmount"]) for line in taxed["JournalLines"]] == [("INPUT2", D("15.00")), ("NONE", D("0.00"))]
    assert journal_refusals(api, {"Narration": "Exclusive, unbalanced", "Date": "2026-10-01", "LineAmountTypes": "Exclusive",
                                  "JournalLines": journal_lines(("429", "100.00"), ("631", "-100.00"))}) == [
        ["The total debits (115.00) must equal total credits (-100.00)"]]
    inclusive = posted(api, {"Narration": "Inclusive", "Date": "2026-10-01", "LineAmountTypes": "Inclusive",
                             "JournalLines": journal_lines(("429", "115.00"), ("631", "-115.00"))})[0]
    assert [line["TaxAmount"] for line in inclusive["JournalLines"]] == [D("15.00"), D("0.00")]  # 429's own INPUT2


def test_journals_refused_with_reasons(api):
    def lines(*pairs: tuple[str, str]) -> dict:
        return {"JournalLines": journal_lines(*pairs)}

    cases = [
        (journal(Narration=""), ["A Narration must be given: it describes the manual journal."]),
        (journal(Narration="x" * 4001), ["Narration must be 4000 characters or fewer."]),
        (journal(**{"JournalLines": journal_lines(("310", "0.00"))}),
         ["The JournalLines element must contain at least two individual JournalLine sub-elements"]),
        (journal(**lines(("310", "60.00"), ("631", "-59.99"))), ["The total debits (60.00) must equal total credits (-59.99)"]),
        (journal(**lines(("310", "60.005"), ("631", "-60.005"))), [
            "LineAmount on journal line 1 can have at most 2 decimal places.",
            "LineAmount on journal line 2 can have at most 2 decimal places."]),
        (journal(**lines(("610", "60.00"), ("631", "-60.00"))), [
            "Account 610 (Accounts Receivable) is a system account and cannot be used on a manual journal."]),
        (journal(**lines(("310", "60.00"), ("800", "-60.00"))), [
            "Account 800 (Accounts Payable) is a system account and cannot be used on a manual journal."]),
        (journal(**lines(("820", "60.00"), ("631", "-60.00"))), [
            "Account 820 (GST) is a system account and cannot be used on a manual journal."]),
        (journal(**lines(("310", "60.00"), ("090", "-60.00"))), [
            "Account 090 (Business Bank Account) is a bank account and cannot be used on a manual journal; "
            "record bank movements as bank transactions."]),
        (journal(**lines(("310", "60.00"), ("630", "-60.00"))), [
            "Account 630 (Inventory) is an INVENTORY account, which Xero reserves for its tracked inventory items; "
            "use a CURRENT asset account for stock valued outside Xero."]),
        (journal(**lines(("209", "60.00"), ("631", "-60.00"))), [
            "Account code '209' has been archived, or is not a valid code for this document."]),
        (journal(**lines(("999", "60.00"), ("631", "-60.00"))), ["Account code '999' is not a valid code for this document."]),
        (journal(JournalLines=[{"LineAmount": D("1.00"), "AccountCode": "310", "TaxType": "NOPE"},
                               {"LineAmount": D("-1.00"), "AccountCode": "631"}]), [
            "The TaxType code 'NOPE' does not exist or cannot be used with this type of transaction."]),
        (journal(JournalLines=[{"LineAmount": D("1.00"), "AccountCode": "310", "TaxType": "INPUT2"},
                               {"LineAmount": D("-1.00"), "AccountCode": "631"}]), [
            "Journal line 1 has the TaxType INPUT2 (15%), but the journal's LineAmountTypes is NoTax: give a TaxType "
            "without tax, or make the journal Exclusive or Inclusive."]),
        (journal(JournalLines=[{"LineAmount": D("1.00"), "Description": "no account"},
                               {"LineAmount": D("-1.00"), "AccountCode": "631"}]), [
            "An AccountCode or AccountID must be given on journal line 1."]),
        (journal(JournalLines=[{"AccountCode": "310"}, {"LineAmount": D("-1.00"), "AccountCode": "631"}]), [
            "A LineAmount must be given on journal line 1."]),
        (journal(JournalLines=[{"LineAmount": D("1.00"), "AccountCode": "310", "Tracking": [{"Name": "Stores", "Option": "Mars"}]},
                               {"LineAmount": D("-1.00"), "AccountCode": "631"}]), [
            "The tracking option 'Mars' does not exist or has been archived in the tracking category 'Stores'."]),
        (journal(Status="VOIDED"), ["Manual journals can only be saved with a status of DRAFT or POSTED, not VOIDED."]),
        (journal(Status="ARCHIVED"), ["Manual journals can only be saved with a status of DRAFT or POSTED, not ARCHIVED."]),
        (journal(LineAmountTypes="Gross"), ["'Gross' is not a valid LineAmountTypes; use NoTax, Exclusive or Inclusive."]),
        (journal(Date=None), ["Date is required."]),
        (journal(ManualJournalID="6f0c1d1e-0000-4000-8000-000000000004"), [
            "A ManualJournalID cannot be given to PUT /ManualJournals, which creates journals: update with POST."]),
    ]
    assert journal_refusals(api, *[body for body, _ in cases], journal("Good one")) == [m for _, m in cases] + [[]]
    assert [j["Narration"] for j in api.get("ManualJournals")["ManualJournals"]] == ["Good one"]
    # without summarizeErrors=false one refusal refuses the request: the good journal is not saved either
    answer = api.put("ManualJournals", {"ManualJournals": [journal("Saved?"), journal(Narration="")]})
    assert answer.status_code == 400
    assert [messages_of(e) for e in answer.json()["Elements"]] == [["A Narration must be given: it describes the manual journal."]]
    assert api.get("ManualJournals", where='Narration=="Saved?"')["ManualJournals"] == []
    assert api.put("ManualJournals", journal("bare")).status_code == 400  # the spec's body is {"ManualJournals": [...]}


def test_a_journal_edited_posted_voided_and_deleted(api):
    draft = posted(api, journal("CI COGS WLG01 2026-10-01", Status="DRAFT"))[0]
    journal_id = draft["ManualJournalID"]
    # POST /ManualJournals with the id updates it: new lines replace the old
    changed = journals_written(api, {"ManualJournalID": journal_id, "JournalLines": journal_lines(("310", "70.00"), ("631", "-70.00"))},
                               method="POST")[0]
    assert changed["StatusAttributeString"] == "OK" and [line["LineAmount"] for line in changed["JournalLines"]] == [D("70.00"), D("-70.00")]
    assert changed["Narration"] == "CI COGS WLG01 2026-10-01" and changed["Status"] == "DRAFT"
    assert len(api.get("ManualJournals")["ManualJournals"]) == 1
    # POST /ManualJournals/{id}: post it, then edit it in place (a POSTED journal can be edited)
    answer = update(api, journal_id, {"Status": "POSTED"})
    assert answer.status_code == 200 and api.json(answer)["ManualJournals"][0]["Status"] == "POSTED"
    answer = update(api, journal_id, {"JournalLines": journal_lines(("310", "71.00"), ("631", "-71.00"))})
    assert answer.status_code == 200 and api.json(answer)["ManualJournals"][0]["JournalLines"][0]["LineAmount"] == D("71.00")
    for changes, message in (({"Status": "DRAFT"}, "A POSTED manual journal cannot be returned to DRAFT."),
                             ({"Status": "DELETED"}, "A POSTED manual journal cannot be deleted; void it instead."),
                             ({"JournalLines": journal_lines(("310", "1.00"), ("631", "-2.00"))},
                              "The total debits (1.00) must equal total credits (-2.00)")):
        refused = update(api, journal_id, changes)
        assert refused.status_code == 400 and [messages_of(e) for e in refused.json()["Elements"]] == [[message]]
    voided = update(api, journal_id, {"Status": "VOIDED"})
    assert voided.status_code == 200 and api.json(voided)["ManualJournals"][0]["Status"] == "VOIDED"
    for changes in ({"Narration": "again"}, {"Status": "POSTED"}, {"Status": "VOIDED"}):
        refused = update(api, journal_id, changes)
        assert [messages_of(e) for e in refused.json()["Elements"]] == [["Manual journal not of valid status for modification"]]
    assert api.get(f"ManualJournals/{journal_id}")["ManualJournals"][0]["JournalLines"][0]["LineAmount"] == D("71.00")

    other = posted(api, journal("To delete", Status="DRAFT"))[0]
    refused = update(api, other["ManualJournalID"], {"Status": "VOIDED"})
    assert [messages_of(e) for e in refused.json()["Elements"]] == [["Only a POSTED manual journal can be voided; delete a DRAFT one."]]
    deleted = update(api, other["ManualJournalID"], {"Status": "DELETED"})
    assert deleted.status_code == 200 and api.json(deleted)["ManualJournals"][0]["Status"] == "DELETED"
    assert update(api, "6f0c1d1e-0000-4000-8000-000000000005", {"Narration": "x"}).status_code == 404
    unknown = journals_written(api, {"ManualJournalID": "6f0c1d1e-0000-4000-8000-000000000005", "Narration": "x"}, method="POST")
    assert messages_of(unknown[0]) == ["Manual journal with ManualJournalID 6f0c1d1e-0000-4000-8000-000000000005 could not be found."]


def test_journals_respect_the_lock_date(make_api):
    api = make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 9, 30),
                                       tracking_categories={"Stores": STORES}))
    assert journal_refusals(api, journal("Locked day", Date="2026-09-30")) == [
        ["The journal date cannot be on or before the period lock date (30 Sep 2026); an adviser must change the lock date first."]]
    draft = posted(api, journal("Draft in a locked day", Date="2026-09-30", Status="DRAFT"))[0]  # drafts are accepted
    refused = update(api, draft["ManualJournalID"], {"Status": "POSTED"})
    assert [messages_of(e) for e in refused.json()["Elements"]] == [[
        "This manual journal is dated on or before the period lock date (30 Sep 2026) and cannot be edited; "
        "an adviser must change the lock date first."]]
    open_day = posted(api, journal("Open day"))[0]
    moved = update(api, open_day["ManualJournalID"], {"Date": "2026-09-29"})
    assert [messages_of(e) for e in moved.json()["Elements"]] == [[
        "The journal date cannot be on or before the period lock date (30 Sep 2026); an adviser must change the lock date first."]]
    api.server.store.execute("UPDATE organisations SET period_lock_date = '2026-10-31'")  # an adviser locks October
    for changes, verb in (({"Narration": "Open day, edited"}, "edited"), ({"Status": "VOIDED"}, "voided")):
        refused = update(api, open_day["ManualJournalID"], changes)
        assert [messages_of(e) for e in refused.json()["Elements"]] == [[
            f"This manual journal is dated on or before the period lock date (31 Oct 2026) and cannot be {verb}; "
            "an adviser must change the lock date first."]]
    assert api.get(f"ManualJournals/{open_day['ManualJournalID']}")["ManualJournals"][0]["Status"] == "POSTED"


def test_a_retried_journal_batch_replays_and_a_dropped_answer_left_one_journal(api):
    from ci_xero_pipeline.sandbox.faults import FaultPlan

    body = {"ManualJournals": [journal("CI COGS CHC01 2026-10-01")]}
    headers = {"Idempotency-Key": "journals-1"}
    first = api.call("PUT", "ManualJournals", body, params={"summarizeErrors": "false"}, headers=headers)
    second = api.call("PUT", "ManualJournals", body, params={"summarizeErrors": "false"}, headers=headers)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    api.server.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("ManualJournals",)))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.call("PUT", "ManualJournals", {"ManualJournals": [journal("CI COGS CHC01 2026-10-02")]},
                 params={"summarizeErrors": "false"}, validate=False)
    narrations = [j["Narration"] for j in api.get("ManualJournals")["ManualJournals"]]
    assert narrations == ["CI COGS CHC01 2026-10-01", "CI COGS CHC01 2026-10-02"]  # saved before the answer was lost


def test_an_account_used_by_a_journal_is_used_and_its_new_code_reaches_the_journal(api):
    made = posted(api, journal("Recode", JournalLines=journal_lines(("412", "5.00"), ("631", "-5.00"))))[0]
    account_id = made["JournalLines"][0]["AccountID"]
    answer = api.call("DELETE", f"Accounts/{account_id}")
    assert answer.status_code == 400 and "has been used in transactions" in messages_of(answer.json()["Elements"][0])[0]
    renamed = api.post(f"Accounts/{account_id}", {"Accounts": [{"Code": "413"}]})
    assert renamed.status_code == 200, renamed.text
    assert api.get(f"ManualJournals/{made['ManualJournalID']}")["ManualJournals"][0]["JournalLines"][0]["AccountCode"] == "413"


def test_the_sdk_reads_journals_back(api):
    accounting = sdk(api)
    made = posted(api, journal("CI COGS SDK 2026-10-01"))[0]
    found = accounting.get_manual_journal(api.tenant_id, made["ManualJournalID"]).manual_journals[0]
    assert (found.narration, found.status, found.line_amount_types.value, found.date) == (
        "CI COGS SDK 2026-10-01", "POSTED", "NoTax", date(2026, 10, 1))
    assert [(line.account_code, str(line.line_amount), line.tracking[0].option) for line in found.journal_lines] == [
        ("310", "60.00", "Online"), ("631", "-60.00", "Online")]
    listed = accounting.get_manual_journals(api.tenant_id, where='Narration=="CI COGS SDK 2026-10-01"', page=1).manual_journals
    assert [str(j.manual_journal_id) for j in listed] == [made["ManualJournalID"]]


# -- contacts keyed by ContactNumber --------------------------------------------------------------------------

def contacts_written(api: Api, *contacts: dict, method: str = "PUT") -> list[dict]:
    answer = api.call(method, "Contacts", {"Contacts": list(contacts)}, params={"summarizeErrors": "false"})
    assert answer.status_code == 200, answer.text
    return api.json(answer)["Contacts"]


def test_contact_numbers_are_unique_and_a_batch_answers_per_contact(api):
    answer = api.call("PUT", "Contacts", {"Contacts": [
        {"Name": "Harbour Traders", "ContactNumber": "C100"},
        {"Name": "Harbour Traders (2)", "ContactNumber": "c100"},  # the same number in another case
        {"Name": "  harbour   TRADERS ", "ContactNumber": "C101"},  # the same name, spaced and cased otherwise
        {"Name": "Hill Supplies", "ContactNumber": "S200"},
    ]}, params={"summarizeErrors": "false"})
    assert answer.status_code == 200, answer.text
    elements = api.json(answer)["Contacts"]
    assert [e["StatusAttributeString"] for e in elements] == ["OK", "ERROR", "ERROR", "OK"]
    assert messages_of(elements[1]) == [
        "The ContactNumber c100 is already assigned to another contact (Harbour Traders, ACTIVE). The ContactNumber must be unique."]
    assert messages_of(elements[2]) == [
        "The contact name harbour   TRADERS is already assigned to another contact. "
        "The contact name must be unique across all active contacts."]
    assert elements[1]["ContactID"] == "00000000-0000-0000-0000-000000000000"
    saved = {e["ContactNumber"]: e["ContactID"] for e in elements if e["StatusAttributeString"] == "OK"}
    assert set(saved) == {"C100", "S200"}

    # an archived contact keeps its number: a new contact cannot take it, but its name is free again
    archived = contacts_written(api, {"ContactID": saved["S200"], "ContactStatus": "ARCHIVED"}, method="POST")[0]
    assert archived["ContactStatus"] == "ARCHIVED"
    again = contacts_written(api, {"Name": "Hill Supplies", "ContactNumber": "S200"}, {"Name": "Hill Supplies", "ContactNumber": "S201"})
    assert [e["StatusAttributeString"] for e in again] == ["ERROR", "OK"]
    assert messages_of(again[0]) == [
        "The ContactNumber S200 is already assigned to another contact (Hill Supplies, ARCHIVED). The ContactNumber must be unique."]
    # restoring the archived one now meets the active contact of its name
    restored = contacts_written(api, {"ContactID": saved["S200"], "ContactStatus": "ACTIVE"}, method="POST")[0]
    assert messages_of(restored) == [
        "The contact name Hill Supplies is already assigned to another contact. The contact name must be unique across all active contacts."]
    # renumbering onto a taken number is refused; keeping one's own number is not a clash
    renumbered = contacts_written(api, {"ContactID": saved["C100"], "ContactNumber": "S201"},
                                  {"ContactID": saved["C100"], "ContactNumber": "C100", "EmailAddress": "a@b.nz"}, method="POST")
    assert [e["StatusAttributeString"] for e in renumbered] == ["ERROR", "OK"]
    # without summarizeErrors=false the whole batch is refused
    refused = api.put("Contacts", {"Contacts": [{"Name": "Fresh", "ContactNumber": "F1"}, {"Name": "Dup", "ContactNumber": "C100"}]})
    assert refused.status_code == 400
    assert api.get("Contacts", where='ContactNumber=="F1"')["Contacts"] == []


def test_contacts_are_found_by_contact_numbers_or_joined(api):
    contacts_written(api, *[{"Name": f"Customer {n}", "ContactNumber": f"A{n}"} for n in range(1, 5)])
    contacts_written(api, {"ContactID": api.get("Contacts", where='ContactNumber=="A4"')["Contacts"][0]["ContactID"],
                           "ContactStatus": "ARCHIVED"}, method="POST")
    found = api.get("Contacts", where='ContactNumber=="A1" OR ContactNumber=="a3" OR ContactNumber=="A4" OR ContactNumber=="Z9"')
    assert sorted(c["ContactNumber"] for c in found["Contacts"]) == ["A1", "A3"]
    with_archived = api.get("Contacts", where='ContactNumber=="A1" OR ContactNumber=="A4"', includeArchived="true")
    assert sorted((c["ContactNumber"], c["ContactStatus"]) for c in with_archived["Contacts"]) == [("A1", "ACTIVE"), ("A4", "ARCHIVED")]


def test_a_document_finds_its_contact_by_number_and_never_makes_a_second(api):
    first = api.create("Invoices", bill_doc("SUP-5", "B-1"))[0]
    second = api.create("Invoices", bill_doc("sup-5", "B-2", Contact={"ContactNumber": "sup-5", "Name": "Another name"}))[0]
    assert first["Contact"]["ContactID"] == second["Contact"]["ContactID"]
    assert [c["Name"] for c in api.get("Contacts", where='ContactNumber=="SUP-5"')["Contacts"]] == ["Supplier SUP-5"]
    supplier = api.get("Contacts", where='ContactNumber=="SUP-5"')["Contacts"][0]
    assert supplier["IsSupplier"] is True
    contacts_written(api, {"ContactID": supplier["ContactID"], "ContactStatus": "ARCHIVED"}, method="POST")
    refused = api.json(api.put("Invoices", {"Invoices": [bill_doc("SUP-5", "B-3")]}, summarizeErrors="false"))["Invoices"][0]
    assert messages_of(refused) == [
        "The ContactNumber SUP-5 is already assigned to another contact (Supplier SUP-5, ARCHIVED). The ContactNumber must be unique."]


# -- bills and bill credits -----------------------------------------------------------------------------------

def test_bills_share_numbers_carry_a_url_and_are_found_by_contact_and_number(api):
    bills = api.create("Invoices", bill_doc("S1", "INV-9"), bill_doc("S1", "INV-9", Url="https://ci-xero.invalid/receipts?ci_receipt=R2"),
                       bill_doc("S2", "INV-9"), bill_doc("S1", "INV-10", Status="DRAFT"))
    assert [b["Status"] for b in bills] == ["SUBMITTED", "SUBMITTED", "SUBMITTED", "DRAFT"]  # SUBMITTED: Awaiting Approval
    assert bills[1]["Url"] == "https://ci-xero.invalid/receipts?ci_receipt=R2"
    assert (bills[0]["Total"], bills[0]["TotalTax"], bills[0]["AmountDue"]) == (D("115.00"), D("15.00"), D("115.00"))
    assert api.get(f"Invoices/{bills[0]['InvoiceID']}")["Invoices"][0]["Url"] == "https://ci-xero.invalid/receipts?ci_receipt=INV-9-S1"

    clause = 'Type=="ACCPAY" AND Contact.ContactNumber=="S1" AND InvoiceNumber=="INV-9"'
    found = api.get("Invoices", where=clause)["Invoices"]
    assert sorted(b["InvoiceID"] for b in found) == sorted(b["InvoiceID"] for b in bills[:2])
    either = api.get("Invoices", where=f'({clause}) OR (Type=="ACCPAY" AND Contact.ContactNumber=="S2" AND InvoiceNumber=="inv-9")'
                     ' OR (Type=="ACCPAY" AND Contact.ContactNumber=="S1" AND InvoiceNumber=="INV-10")')["Invoices"]
    assert sorted(b["InvoiceID"] for b in either) == sorted(b["InvoiceID"] for b in bills)
    assert api.get("Invoices", where='Type=="ACCREC" AND InvoiceNumber=="INV-9"')["Invoices"] == []

    # sales numbers stay unique while bill numbers repeat
    assert api.create("Invoices", invoice("INV-9"))[0]["Type"] == "ACCREC"
    assert "Invoice # must be unique." in api.refused("Invoices", invoice("INV-9"))


def test_bill_lines_take_any_account_but_a_system_or_bank_one(api):
    # Xero allows any non-system account on a bill: a REVENUE account with a rate that fits it is accepted
    accepted = api.create("Invoices", bill_doc("S3", "B-L1", LineItems=[
        {"Description": "Rebate", "Quantity": D("1"), "UnitAmount": D("10.00"), "AccountCode": "200", "TaxType": "NONE"}]))[0]
    assert accepted["LineItems"][0]["AccountCode"] == "200"
    for code in ("800", "610", "820", "090"):
        refused = api.refused("Invoices", with_line(bill_doc("S3", "B-L2"), AccountCode=code))
        assert refused == [f"Account code '{code}' is not a valid code for this document."], (code, refused)
    refused = api.refused("CreditNotes", {**bill_credit_doc("S3", "SC-L", "10.00"),
                                          "LineItems": [{"Description": "x", "UnitAmount": D("10.00"), "AccountCode": "800"}]})
    assert refused == ["Account code '800' is not a valid code for this document."]


def test_a_submitted_or_draft_bill_can_be_edited_and_deleted(api):
    submitted, draft = api.create("Invoices", bill_doc("S4", "B-E1"), bill_doc("S4", "B-E2", Status="DRAFT"))
    edited = api.post("Invoices", {"Invoices": [{"InvoiceID": submitted["InvoiceID"], "InvoiceNumber": "B-E1a",
                                                 "LineItems": [{"Description": "Boots", "Quantity": D("1"), "UnitAmount": D("80.00"),
                                                                "AccountCode": "631", "TaxType": "INPUT2"}]}]}, summarizeErrors="false")
    saved = api.json(edited)["Invoices"][0]
    assert (saved["StatusAttributeString"], saved["InvoiceNumber"], saved["Total"], saved["Status"]) == ("OK", "B-E1a", D("92.00"), "SUBMITTED")
    assert saved["Url"] == submitted["Url"]  # kept: not sent
    approved = api.post(f"Invoices/{submitted['InvoiceID']}", {"Invoices": [{"Status": "AUTHORISED"}]}, summarizeErrors="false")
    assert api.json(approved)["Invoices"][0]["Status"] == "AUTHORISED"
    deleted = api.post(f"Invoices/{draft['InvoiceID']}", {"Invoices": [{"Status": "DELETED"}]}, summarizeErrors="false")
    assert api.json(deleted)["Invoices"][0]["Status"] == "DELETED"
    refused = api.post(f"Invoices/{submitted['InvoiceID']}", {"Invoices": [{"Status": "DELETED"}]}, summarizeErrors="false")
    assert messages_of(api.json(refused)["Invoices"][0]) == ["An AUTHORISED document cannot be deleted; void it instead."]


def test_bills_respect_the_lock_date(make_api):
    api = make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 10, 1)))
    assert api.refused("Invoices", bill_doc("S5", "B-K1", Status="AUTHORISED")) == [
        "The document date cannot be on or before the period lock date (01 Oct 2026); an adviser must change the lock date first."]
    submitted = api.create("Invoices", bill_doc("S5", "B-K2"))[0]  # not yet approved: accepted, as drafts are
    refused = api.post(f"Invoices/{submitted['InvoiceID']}", {"Invoices": [{"Status": "DELETED"}]}, summarizeErrors="false")
    assert messages_of(api.json(refused)["Invoices"][0]) == [
        "This invoice is dated on or before the period lock date (01 Oct 2026) and cannot be deleted; "
        "an adviser must change the lock date first."]


def test_bill_credits_share_numbers_keep_their_reference_and_are_found_alike(api):
    credits = api.create("CreditNotes", bill_credit_doc("S6", "SC-1", "23.00"), bill_credit_doc("S6", "SC-1", "11.50", Reference="GR-77"),
                         bill_credit_doc("S7", "SC-1", "5.75"))
    assert [c["Reference"] for c in credits] == ["GR-SC-1", "GR-77", "GR-SC-1"]
    assert [(c["Total"], c["TotalTax"]) for c in credits] == [(D("23.00"), D("3.00")), (D("11.50"), D("1.50")), (D("5.75"), D("0.75"))]
    clause = 'Type=="ACCPAYCREDIT" AND Contact.ContactNumber=="S6" AND CreditNoteNumber=="SC-1"'
    assert len(api.get("CreditNotes", where=clause)["CreditNotes"]) == 2
    by_reference = api.get("CreditNotes", where=f'({clause} AND Reference=="GR-77") OR (Type=="ACCPAYCREDIT" AND '
                                               'Contact.ContactNumber=="S7" AND CreditNoteNumber=="SC-1")')["CreditNotes"]
    assert sorted(c["CreditNoteID"] for c in by_reference) == sorted([credits[1]["CreditNoteID"], credits[2]["CreditNoteID"]])


def test_the_sdk_reads_bills_back(api):
    accounting = sdk(api)
    bill = api.create("Invoices", bill_doc("S8", "B-SDK"))[0]
    found = accounting.get_invoices(api.tenant_id, where='Type=="ACCPAY" AND Contact.ContactNumber=="S8" AND InvoiceNumber=="B-SDK"').invoices
    assert [(b.type, b.status, b.url, b.contact.contact_number, str(b.total)) for b in found] == [
        ("ACCPAY", "SUBMITTED", bill["Url"], "S8", "115.00")]


# -- the demo chart -------------------------------------------------------------------------------------------

def test_the_demo_chart_has_the_purchase_and_stock_accounts(api):
    accounts = {a["Code"]: a for a in api.get("Accounts")["Accounts"]}
    shape = {code: (a["Name"], a["Type"], a["Class"], a["TaxType"], a["Status"], a.get("SystemAccount", ""))
             for code, a in accounts.items() if code in ("300", "310", "630", "631", "610", "800", "820", "090")}
    assert shape == {
        "300": ("Purchases", "DIRECTCOSTS", "EXPENSE", "INPUT2", "ACTIVE", ""),
        "310": ("Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT2", "ACTIVE", ""),
        "630": ("Inventory", "INVENTORY", "ASSET", "NONE", "ACTIVE", ""),  # the trap: Xero's tracked items only
        "631": ("Stock on hand (CI)", "CURRENT", "ASSET", "NONE", "ACTIVE", ""),
        "610": ("Accounts Receivable", "CURRENT", "ASSET", "NONE", "ACTIVE", "DEBTORS"),
        "800": ("Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", "ACTIVE", "CREDITORS"),
        "820": ("GST", "CURRLIAB", "LIABILITY", "NONE", "ACTIVE", "GST"),
        "090": ("Business Bank Account", "BANK", "ASSET", "NONE", "ACTIVE", ""),
    }
    assert accounts["631"]["EnablePaymentsToAccount"] is False


def test_an_older_sandbox_file_gains_the_new_tables_keys_and_accounts(tmp_path):
    """A file written before issue 12 (no journals or allocations tables, contacts without their keys, no 300
    or 631) opens with them, its contacts findable by the new keys."""
    import sqlite3

    from ci_xero_pipeline.sandbox.store import SandboxStore

    path = str(tmp_path / "old.sqlite")
    store = SandboxStore(path)
    organisation = SandboxOrganisation("Old Ltd", "OLD1")
    tenant = store.ensure_organisation(organisation)
    store.save_contact(tenant, {"ContactID": "c1", "Name": "Old  Customer", "ContactNumber": "OC1", "ContactStatus": "ACTIVE",
                                "UpdatedDateUTC": 1})
    store.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE manual_journals; DROP TABLE allocations; DROP INDEX contacts_name_key; DROP INDEX contacts_number_key;"
                     "ALTER TABLE contacts DROP COLUMN name_key; ALTER TABLE contacts DROP COLUMN number_key;"
                     "DELETE FROM accounts WHERE code IN ('300', '631');")
    db.close()
    store = SandboxStore(path)
    store.ensure_organisation(organisation)
    assert [c["ContactID"] for c in store.contacts_keyed(tenant, "name_key", "old customer", active_only=True)] == ["c1"]
    assert [c["ContactID"] for c in store.contacts_keyed(tenant, "number_key", "oc1", active_only=False)] == ["c1"]
    assert store.journal_rows(tenant) == [] and store.allocation_rows(tenant) == []
    assert {a.code for a in store.stored_accounts(tenant)} >= {"300", "631"}
    store.close()


def test_where_tells_which_numbers_an_index_lookup_may_narrow_to():
    from ci_xero_pipeline.sandbox.where import parse_where, required_values

    def values(text: str) -> set[str] | None:
        return required_values(parse_where(text), "InvoiceNumber")

    assert values('Type=="ACCPAY" AND Contact.ContactNumber=="S1" AND InvoiceNumber=="9"') == {"9"}
    assert values('(Type=="ACCPAY" AND InvoiceNumber=="9") OR (InvoiceNumber=="10" AND Type=="ACCPAY")') == {"9", "10"}
    assert values('InvoiceNumber=="9" OR Type=="ACCPAY"') is None  # the second group may match any number
    assert values('NOT (InvoiceNumber=="9")') is None and values('InvoiceNumber!="9"') is None
    assert values('InvoiceNumber.StartsWith("9")') is None and values('Type=="ACCPAY"') is None
