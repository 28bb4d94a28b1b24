"""The sandbox's stricter-than-unsure rules over real HTTP: a line's TaxAmount within 0.01 of Xero's
own figure, lock dates on every change, numbers held by voided and deleted documents, zero and
negative totals, and the TrackingOption body exactly as the spec gives it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .test_sandbox_accounting import (  # noqa: F401  (fixtures)
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


def line(description: str, amount: str, account: str = "201", tax_type: str = "OUTPUT2", **extra: Any) -> dict:
    return {"Description": description, "Quantity": D("1"), "UnitAmount": D(amount), "AccountCode": account, "TaxType": tax_type, **extra}


def post(api: Api, collection: str, **fields: Any) -> list[str]:
    """Xero's messages for one update (summarizeErrors=false); [] when it was saved."""
    answer = api.post(collection, {collection: [fields]}, summarizeErrors="false")
    assert answer.status_code == 200, answer.text
    return [error["Message"] for error in api.json(answer)[collection][0].get("ValidationErrors", [])]


# -- TaxAmount -------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, saved", [("13.04", "13.04"), ("13.05", "13.05"), ("13.03", "13.03")])
def test_tax_amount_within_a_cent_of_xeros_figure_is_kept(api, given, saved):
    # 100.00 inclusive at 15 %: Xero's per-line tax 13.04 (13.0434…)
    document = invoice("ER-TX", LineItems=[line("Shirt", "100.00", TaxAmount=D(given))])
    assert api.create("Invoices", document)[0]["LineItems"][0]["TaxAmount"] == D(saved)


@pytest.mark.parametrize("given", ["13.06", "13.02", "0.00", "13.045"])
def test_tax_amount_further_off_is_refused(api, given):
    document = invoice("ER-TX", LineItems=[line("Shirt", "100.00", TaxAmount=D(given))])
    assert api.refused("Invoices", document) == [
        f"The TaxAmount {given} on line item 1 differs from the calculated tax 13.04 by more than 0.01."
    ]


def test_exclusive_lines_are_held_to_a_cent_too(api):
    ok = invoice("ER-TX1", LineAmountTypes="Exclusive", LineItems=[line("Jacket", "8.70", TaxAmount=D("1.30"))])  # 1.305 → 1.31
    assert api.create("Invoices", ok)[0]["Total"] == D("10.00")
    off = invoice("ER-TX2", LineAmountTypes="Exclusive", LineItems=[line("Jacket", "8.70", TaxAmount=D("1.33"))])
    assert api.refused("Invoices", off) == ["The TaxAmount 1.33 on line item 1 differs from the calculated tax 1.31 by more than 0.01."]


def test_zero_rate_and_no_tax_lines_carry_no_tax(api):
    zero = invoice("ER-Z1", LineItems=[line("Export", "10.00", "205", "ZERORATED", TaxAmount=D("0.01"))])
    assert api.refused("Invoices", zero) == ["The TaxAmount 0.01 on line item 1 differs from the calculated tax 0.00 by more than 0.00."]
    exempt = invoice("ER-Z2", LineItems=[line("Voucher", "50.00", "835", "NONE", TaxAmount=D("-0.01"))])
    assert api.refused("Invoices", exempt) == ["The TaxAmount -0.01 on line item 1 differs from the calculated tax 0.00 by more than 0.00."]
    no_tax = invoice("ER-Z3", LineAmountTypes="NoTax", LineItems=[line("Voucher", "50.00", "835", TaxAmount=D("6.52"))])
    assert api.refused("Invoices", no_tax) == ["The TaxAmount 6.52 on line item 1 differs from the calculated tax 0.00 by more than 0.00."]
    fine = invoice("ER-Z4", LineAmountTypes="NoTax", LineItems=[line("Voucher", "50.00", "835", TaxAmount=D("0.00"))])
    assert api.create("Invoices", fine)[0]["TotalTax"] == D("0.00")


# -- lock dates ------------------------------------------------------------------------------------

LOCKED = "an adviser must change the lock date first."


@pytest.fixture
def locked(make_api) -> Api:
    return make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 9, 30)))


def plain(number: str, **changes: Any) -> dict:
    return {**with_line(invoice(), Tracking=[]), "InvoiceNumber": number, **changes}


def test_a_draft_in_a_locked_period_is_accepted_but_not_changed(locked):
    draft = locked.create("Invoices", plain("L-D1", Date="2026-09-15", Status="DRAFT"))[0]
    locked.create("Invoices", plain("L-D2", Date="2026-09-30", Status="SUBMITTED"))
    frozen = "This invoice is dated on or before the period lock date (30 Sep 2026) and cannot be {}; " + LOCKED
    assert post(locked, "Invoices", InvoiceID=draft["InvoiceID"], Reference="x") == [frozen.format("edited")]
    assert post(locked, "Invoices", InvoiceID=draft["InvoiceID"], Status="AUTHORISED") == [frozen.format("edited")]
    assert post(locked, "Invoices", InvoiceID=draft["InvoiceID"], Date="2026-10-05") == [frozen.format("edited")]
    assert post(locked, "Invoices", InvoiceID=draft["InvoiceID"], Status="DELETED") == [frozen.format("deleted")]
    assert post(locked, "Invoices", InvoiceNumber="L-D1", Reference="x") == [frozen.format("edited")]  # found by number
    assert locked.get(f"Invoices/{draft['InvoiceID']}")["Invoices"][0]["Status"] == "DRAFT"
    # created AUTHORISED in the locked period: refused, as before
    assert locked.refused("Invoices", plain("L-A1", Date="2026-09-30")) == [
        "The document date cannot be on or before the period lock date (30 Sep 2026); " + LOCKED
    ]


def test_an_approved_document_in_a_period_locked_later_is_frozen(locked):
    saved = locked.create("Invoices", plain("L-A2", Date="2026-10-10"))[0]
    note = locked.create("CreditNotes", {**with_line(credit_note("L-C1"), Tracking=[]), "Date": "2026-10-10"})[0]
    locked.server.store.execute("UPDATE organisations SET period_lock_date = '2026-10-31'")
    frozen = "This {} is dated on or before the period lock date (31 Oct 2026) and cannot be {}; " + LOCKED
    assert post(locked, "Invoices", InvoiceID=saved["InvoiceID"], Status="VOIDED") == [frozen.format("invoice", "voided")]
    assert post(locked, "Invoices", InvoiceID=saved["InvoiceID"], Reference="x") == [frozen.format("invoice", "edited")]
    assert post(locked, "CreditNotes", CreditNoteID=note["CreditNoteID"], Status="VOIDED") == [frozen.format("credit note", "voided")]
    assert locked.get(f"Invoices/{saved['InvoiceID']}")["Invoices"][0]["Status"] == "AUTHORISED"


def test_an_open_document_cannot_be_moved_into_the_locked_period_approved(locked):
    saved = locked.create("Invoices", plain("L-A3", Date="2026-10-10"))[0]
    assert post(locked, "Invoices", InvoiceID=saved["InvoiceID"], Date="2026-09-29") == [
        "The document date cannot be on or before the period lock date (30 Sep 2026); " + LOCKED
    ]


def test_end_of_year_lock_date(make_api):
    api = make_api(SandboxOrganisation("Year End Ltd", "YEAR1", end_of_year_lock_date=date(2026, 3, 31)))
    organisation = api.get("Organisation")["Organisations"][0]
    assert organisation["EndOfYearLockDate"] == "/Date(1774915200000+0000)/" and "PeriodLockDate" not in organisation
    assert api.refused("Invoices", plain("Y-1", Date="2026-03-31", DueDate="2026-04-20")) == [
        "The document date cannot be on or before the end of year lock date (31 Mar 2026); " + LOCKED
    ]
    api.create("Invoices", plain("Y-2", Date="2026-04-01", DueDate="2026-04-20"))


def test_the_later_lock_date_applies(make_api):
    api = make_api(SandboxOrganisation("Both Ltd", "BOTH1", period_lock_date=date(2026, 6, 30), end_of_year_lock_date=date(2026, 3, 31)))
    assert api.refused("Invoices", plain("B-1", Date="2026-05-01")) == [
        "The document date cannot be on or before the period lock date (30 Jun 2026); " + LOCKED
    ]


# -- zero and negative totals -------------------------------------------------------------------------

def zero_invoice(number: str, **changes: Any) -> dict:
    """Tenders as negative lines to their accounts: a total of 0.00 (processes.md, a DRAFT site)."""
    lines = [line("Sales", "115.00", TaxAmount=D("15.00")), line("EFTPOS", "-115.00", "612", "NONE")]
    return invoice(number, LineItems=lines, **changes)


def test_an_approved_zero_invoice_is_paid_at_once(api):
    saved = api.create("Invoices", zero_invoice("ER-0"))[0]
    assert (saved["Status"], saved["Total"], saved["AmountDue"], saved["AmountPaid"]) == ("PAID", D("0.00"), D("0.00"), D("0.00"))
    assert saved["FullyPaidOnDate"] == saved["Date"] and saved["Payments"] == []
    assert post(api, "Invoices", InvoiceID=saved["InvoiceID"], Status="VOIDED") == ["Invoice not of valid status for modification"]


def test_a_zero_draft_stays_draft_until_approved(api):
    draft = api.create("Invoices", zero_invoice("ER-0D", Status="DRAFT"))[0]
    assert (draft["Status"], draft["AmountDue"]) == ("DRAFT", D("0.00"))
    assert post(api, "Invoices", InvoiceID=draft["InvoiceID"], Status="AUTHORISED") == []
    assert api.get(f"Invoices/{draft['InvoiceID']}")["Invoices"][0]["Status"] == "PAID"


def test_a_zero_credit_note_is_paid_at_once(api):
    lines = [line("Returns", "20.00", TaxAmount=D("2.61")), line("Store credit", "-20.00", "835", "NONE")]
    assert api.create("CreditNotes", credit_note("ER-0C", LineItems=lines))[0]["Status"] == "PAID"


def test_a_negative_invoice_is_never_accepted(api):
    negative = [line("Refund", "-20.00", TaxAmount=D("-2.61"))]
    # a net-negative document is a credit note (xero-facts.md); the sandbox refuses it even as a DRAFT
    assert api.refused("Invoices", invoice("ER-N1", LineItems=negative)) == ["Invoice total cannot be negative."]
    assert api.refused("Invoices", invoice("ER-N2", LineItems=negative, Status="DRAFT")) == ["Invoice total cannot be negative."]
    draft = api.create("Invoices", invoice("ER-N3", Status="DRAFT"))[0]
    assert post(api, "Invoices", InvoiceID=draft["InvoiceID"], LineItems=negative) == ["Invoice total cannot be negative."]


# -- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["VOIDED", "DELETED"])
def test_numbers_of_voided_and_deleted_documents_stay_taken(api, status):
    start = "AUTHORISED" if status == "VOIDED" else "DRAFT"
    first = api.create("Invoices", invoice("ER-U1", Status=start))[0]
    note = api.create("CreditNotes", credit_note("ER-U1", Status=start))[0]
    assert post(api, "Invoices", InvoiceID=first["InvoiceID"], Status=status) == []
    assert post(api, "CreditNotes", CreditNoteID=note["CreditNoteID"], Status=status) == []
    assert api.refused("Invoices", invoice("ER-U1")) == ["Invoice # must be unique."]
    assert api.refused("CreditNotes", credit_note("ER-U1")) == ["Credit Note # must be unique."]
    # POST by number finds no live document, so it would create one: refused the same way
    assert post(api, "Invoices", **invoice("ER-U1")) == ["Invoice # must be unique."]
    assert {i["Status"] for i in api.get("Invoices", InvoiceNumbers="ER-U1")["Invoices"]} == {status}


# -- tracking options ----------------------------------------------------------------------------------

def test_tracking_option_body_is_one_tracking_option(api):
    category = api.json(api.put("TrackingCategories", {"Name": "CI Branches"}))["TrackingCategories"][0]
    path = f"TrackingCategories/{category['TrackingCategoryID']}/Options"

    created = api.put(path, {"Name": "Hamilton"})
    assert created.status_code == 200
    assert [(o["Name"], o["Status"], o["TrackingCategoryID"]) for o in api.json(created)["Options"]] == [
        ("Hamilton", "ACTIVE", category["TrackingCategoryID"])
    ]
    with_fields = api.put(path, {"Name": "Tauranga", "Status": "ACTIVE", "TrackingCategoryID": category["TrackingCategoryID"]})
    assert with_fields.status_code == 200

    def refused(body: Any) -> list[str]:
        answer = api.put(path, body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["Type"] == "ValidationException"
        return [e["Message"] for element in answer.json()["Elements"] for e in element["ValidationErrors"]]

    as_list = ('Options cannot be sent as a list: the body must be one TrackingOption object, e.g. {"Name": "North"}, '
               "one request per option.")
    assert refused({"Options": [{"Name": "Online"}, {"Name": "Riccarton"}]}) == [as_list]
    assert refused({"Options": [{"Name": "Online"}]}) == [as_list]
    assert refused([{"Name": "Online"}]) == ['The request body must be one TrackingOption object, e.g. {"Name": "North"}.']
    assert refused({"Name": "Online", "Colour": "red"}) == ["Colour is not a field of a TrackingOption."]
    assert refused({"Name": "Online", "Status": "ARCHIVED"}) == ["A new tracking option must be ACTIVE, not ARCHIVED."]
    assert refused({"Name": "Online", "TrackingCategoryID": "6f0e4b4e-0000-4000-8000-000000000000"}) == [
        "The TrackingCategoryID in the body does not match the one in the URL."
    ]
    assert refused({"Name": ""}) == ["Tracking option name is required."]
    one = api.get(f"TrackingCategories/{category['TrackingCategoryID']}")["TrackingCategories"][0]
    assert sorted(o["Name"] for o in one["Options"]) == ["Hamilton", "Tauranga"]


# -- a sandbox file from before payments -------------------------------------------------------------------

def test_an_older_sandbox_file_is_brought_up_to_date(tmp_path):
    from ci_xero_pipeline.sandbox.store import SandboxStore

    path = str(tmp_path / "old.sqlite")
    store = SandboxStore(path)
    tenant = store.ensure_organisation(SandboxOrganisation("Old Ltd", "OLD1"))
    store.execute("ALTER TABLE accounts DROP COLUMN enable_payments")
    store.execute("ALTER TABLE organisations DROP COLUMN end_of_year_lock_date")
    store.close()
    store = SandboxStore(path)
    flags = {row["code"]: row["enable_payments"] for row in store.accounts(tenant)}
    assert flags["835"] == 1 and flags["611"] == 1 and flags["200"] == 0
    assert store.organisation(tenant).end_of_year_lock_date is None
    store.ensure_organisation(SandboxOrganisation("Old Ltd", "OLD1", end_of_year_lock_date=date(2026, 3, 31)))
    assert store.organisation(tenant).end_of_year_lock_date == date(2026, 3, 31)
    store.close()
