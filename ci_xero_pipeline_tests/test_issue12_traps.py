"""Traps of the new document kinds, each once a bug a review reproduced against the sandbox: a bill is found
(and never sent twice, never left live when CI voids it) whatever its receipt number holds or CI corrected;
a credit is allocated only when the credit note is ours, and to the live revision of its invoice; the
allocation sensor keys a pair as the books do."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa

from ci_xero_pipeline.assets.process import allocations_after
from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.books.payables import NO_UI_URL
from ci_xero_pipeline.books.receivables import document_key
from ci_xero_pipeline.sensors import allocations_to_retry
from ci_xero_pipeline.xero.allocations import allocation_ledger, allocation_ledger_key
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.contacts import contact_ids, contact_ledger, ensure_contacts, with_contact_ids
from ci_xero_pipeline.xero.kinds import url_identity
from ci_xero_pipeline.xero.ledger import Intent, PostingLedger, content_hash
from ci_xero_pipeline.xero.posting import SourceEvidence, post_documents

from .test_allocations_exactly_once import AROHA, NEXT, pair, refund, sale
from .test_sandbox_accounting import FixedToken, _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
DAY = "2026-10-01"
SUPPLIER = {"ContactNumber": "SUP1", "Name": "Kiwi Wholesale"}


@pytest.fixture
def books(make_api, tmp_path: Path):
    api = make_api()
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{api.server.base_url}/api.xro/2.0")
    return api, client, sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=DOCUMENT_COLUMNS + ["source_keys"]).drop(columns=["ci_invoice_nos"])


def bill_row(receipt: str, supplier_no: str, cents: int = 10000, url: str | None = None) -> dict:
    tax = cents * 15 // 100
    payload = {"Type": "ACCPAY", "InvoiceNumber": supplier_no, "Reference": receipt, "Contact": dict(SUPPLIER), "Date": DAY,
               "DueDate": "2026-10-21", "Status": "SUBMITTED", "LineAmountTypes": "Exclusive", "CurrencyCode": "NZD",
               "Url": url or NO_UI_URL.format(receipt_no=quote(receipt, safe="")),
               "LineItems": [{"Description": "Stock", "Quantity": D(1), "UnitAmount": D(cents) / 100, "LineAmount": D(cents) / 100,
                              "TaxAmount": D(tax) / 100, "AccountCode": "300", "TaxType": "INPUT2"}]}
    return {"document_key": f"payables/{receipt}", "business_date": DAY, "branch_code": "AKL01", "endpoint": "Bills",
            "document_type": "ACCPAY", "number": receipt, "reference": receipt, "contact_name": SUPPLIER["Name"],
            "status": "SUBMITTED", "total_cents": cents + tax, "tax_cents": tax, "line_count": 1, "ci_invoice_nos": (receipt,),
            "payload": payload, "source_keys": (receipt,)}


def with_supplier(client, engine, tenant: str, rows: list[dict]) -> pd.DataFrame:
    ledger = contact_ledger(PostingLedger(engine, tenant, "run", process="payables"), "payables")
    found = ensure_contacts(client, ledger, pd.DataFrame([{"contact_number": "SUP1", "name": SUPPLIER["Name"], "email": None,
                                                           "role": "supplier", "source_keys": ("x",), "business_date": DAY}]))
    ready, missing = with_contact_ids(frame(rows), contact_ids(found))
    assert missing.empty
    return ready


def bills_in_xero(api, receipt: str) -> list[tuple[str, str]]:
    found = api.get("Invoices", where='Type=="ACCPAY"', page=1)["Invoices"]
    return [(b["InvoiceNumber"], b["Status"]) for b in found if url_identity(b.get("Url") or "") == receipt]


def sent_before_a_crash(ledger: PostingLedger, api, row) -> None:
    """The run recorded its intent and sent the bill, then died before the answer was recorded."""
    ledger.intend([Intent(row.document_key, "Bills", row.number, 0, content_hash(row.payload), int(row.total_cents),
                          int(row.tax_cents), DAY, (row.number,))])
    api.create("Invoices", row.payload)


def test_a_receipt_number_with_reserved_characters_is_the_bills_identity():
    assert url_identity(NO_UI_URL.format(receipt_no=quote("GR/400 001", safe=""))) == "GR/400 001"


def test_a_bill_ci_voids_leaves_xero_even_when_its_receipt_number_holds_a_space(books):
    api, client, engine = books
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables")
    documents = with_supplier(client, engine, api.tenant_id, [bill_row("GR 400", "INV-77")])
    assert list(post_documents(client, ledger, documents, [DAY])["outcome"]) == ["posted"]
    voided = SourceEvidence({DAY: frozenset({"GR 400"})}, frozenset({"GR 400"}))
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided)
    assert list(taken["outcome"]) == ["withdrawn"] and list(taken["action"]) == ["delete"]
    assert bills_in_xero(api, "GR 400") == [("INV-77", "DELETED")] or bills_in_xero(api, "GR 400") == []


@pytest.mark.parametrize("corrected", [None, "INV-97"], ids=["as sent", "supplier number corrected in CI"])
def test_a_bill_sent_before_a_crash_is_found_not_sent_again(books, corrected):
    api, client, engine = books
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables")
    documents = with_supplier(client, engine, api.tenant_id, [bill_row("GR 401", "INV-78")])
    sent_before_a_crash(ledger, api, documents.iloc[0])
    if corrected:  # the receiving clerk fixed a typo in the supplier's number before the re-run
        documents = documents.assign(payload=[{**documents.iloc[0].payload, "InvoiceNumber": corrected}])
    again = post_documents(client, ledger, documents, [DAY])
    assert len(bills_in_xero(api, "GR 401")) == 1, again[["action", "outcome", "message"]].to_dict("records")
    # ours, confirmed by the lookup (a supplier's number is no accounting content: nothing to report or change)
    assert list(again["outcome"]) == ["posted"] and list(again["action"]) == ["adopt"]


def test_a_receipt_ci_voided_after_its_answer_was_lost_is_settled(books):
    api, client, engine = books
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables")
    documents = with_supplier(client, engine, api.tenant_id, [bill_row("GR500", "INV-500")])
    sent_before_a_crash(ledger, api, documents.iloc[0])
    voided = SourceEvidence({DAY: frozenset({"GR500"})}, frozenset({"GR500"}))
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided)
    assert list(taken["outcome"]) == ["withdrawn"], taken["message"].tolist()
    assert [status for _number, status in bills_in_xero(api, "GR500")] in ([], ["DELETED"])
    assert post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided).empty  # and it stays settled


def credit_row(number: str, cents: int, tax: int) -> dict:
    return {"document_key": f"receivables/{number}", "business_date": NEXT, "branch_code": "AKL01", "endpoint": "CreditNotes",
            "document_type": "ACCRECCREDIT", "number": number, "reference": "", "contact_name": AROHA["Name"],
            "status": "AUTHORISED", "total_cents": cents, "tax_cents": tax, "line_count": 1, "ci_invoice_nos": ("CI-" + number,),
            "payload": refund(number, cents), "source_keys": ("CI-" + number,)}


def wanted(credit: str, invoice: str, invoice_key: str | None = None) -> pd.DataFrame:
    row = {k: v for k, v in pair(credit, invoice, None).items() if k != "credit_id"}
    return pd.DataFrame([{**row, "credit_document_key": f"receivables/{credit}", "invoice_document_key": invoice_key}])


def test_a_credit_note_under_our_number_that_is_not_ours_is_never_allocated(books):
    api, client, engine = books
    documents = PostingLedger(engine, api.tenant_id, "run", process="receivables")
    api.create("Invoices", sale("A-9", 11500))
    api.create("CreditNotes", refund("CR-9", 2300))  # keyed by hand in Xero under CI's number, another amount
    results = post_documents(client, documents, frame([credit_row("CR-9", 4600, 600)]), [NEXT])
    assert list(results["outcome"]) == ["differs"]
    allocated = allocations_after(client, allocation_ledger(documents, "receivables"), documents, wanted("CR-9", "A-9"), results, None)
    assert list(allocated["outcome"]) == ["waiting"]  # no credit of ours in Xero: nothing sent
    assert not api.get("CreditNotes", where='CreditNoteNumber=="CR-9"')["CreditNotes"][0].get("Allocations")


def test_a_credit_is_allocated_to_the_live_revision_of_the_invoice_it_reverses(books):
    api, client, engine = books
    documents = PostingLedger(engine, api.tenant_id, "run", process="receivables")
    # the invoice was posted, CI changed it, the posting layer voided it and posted A-1-R1 (void_and_repost)
    first = api.create("Invoices", sale("A-1", 11500))[0]
    api.post(f"Invoices/{first['InvoiceID']}", {"Invoices": [{"InvoiceID": first["InvoiceID"], "Status": "VOIDED"}]})
    live = api.create("Invoices", sale("A-1-R1", 12000))[0]
    documents.record_posted(Intent("receivables/CI-A-1", "Invoices", "A-1-R1", 1, "c:x", 12000, 1565, "2026-10-01", ("CI-A-1",)),
                            live["InvoiceID"], "AUTHORISED")
    results = post_documents(client, documents, frame([credit_row("CR-1", 4600, 600)]), [NEXT])
    assert list(results["outcome"]) == ["posted"]
    allocated = allocations_after(client, allocation_ledger(documents, "receivables"), documents,
                                  wanted("CR-1", "A-1", "receivables/CI-A-1"), results, None)
    assert list(allocated["outcome"]) == ["allocated"], allocated["message"].tolist()
    assert list(allocated["invoice_number"]) == ["A-1-R1"] and list(allocated["amount_cents"]) == [4600]


def test_the_allocation_sensor_keys_a_pair_as_the_books_do_and_stops_once_it_is_made(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    documents = PostingLedger(engine, "t", "run", process="receivables")
    allocations = PostingLedger(engine, "t", "run", process="receivables-allocation")
    for ci, number, revision, day in (("CR1", "CR1-R1", 1, "2026-10-01"), ("INV1", "INV1", 0, "2026-10-02")):
        documents.record_posted(Intent(document_key(ci), "CreditNotes" if ci.startswith("CR") else "Invoices", number, revision,
                                       "c:x", 100, 13, day, (ci,)), f"id-{ci}", "AUTHORISED")
    credits = pd.DataFrame([{"invoice_no": "CR1", "business_date": "2026-10-01", "original_invoice_no": "INV1"}])

    def due():
        return allocations_to_retry(credits, documents, allocations, document_key, lambda k: allocation_ledger_key("receivables", k))

    assert [(day, key) for day, key, _why in due()] == [("2026-10-01", "allocation:CR1:id-INV1")]
    allocations.record_posted(Intent(allocation_ledger_key("receivables", "CR1>INV1"), "Allocations", "CR1>INV1", 0, "c:y",
                                     100, 0, "2026-10-01", (document_key("CR1"),)), "a1", "AUTHORISED")
    assert due() == []


def test_goods_receipts_stored_day_by_day_read_back_with_every_days_lines(tmp_path):
    """Days of raw_payables stored by different runs read back as one value with all their lines (a lines frame
    without the day was kept whole with each day, so a read of two days held only the last run's lines)."""
    from datetime import date

    from ci_xero_pipeline.ci.demo import create_demo_database
    from ci_xero_pipeline.ci.extract import engine_for, extract_goods_received
    from ci_xero_pipeline.io_manager import combine_days, split_by_day

    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    create_demo_database(url, days=5, end_day=date(2026, 10, 5))
    engine = engine_for(url)
    days = ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05"]
    whole = extract_goods_received(engine, date(2026, 10, 1), date(2026, 10, 5))
    stored = [split_by_day(extract_goods_received(engine, date.fromisoformat(day), date.fromisoformat(day)), [day])[day]
              for day in days]  # each day by a run of its own
    together = combine_days(stored)
    assert len(whole.lines) > 0 and len(together.lines) == len(whole.lines)
    assert sorted(map(tuple, together.lines[["receipt_no", "line_no"]].values.tolist())) == sorted(
        map(tuple, whole.lines[["receipt_no", "line_no"]].values.tolist()))


def test_of_two_bills_carrying_our_url_the_one_the_ledger_holds_is_the_one_ci_voids(books):
    api, client, engine = books
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables")
    documents = with_supplier(client, engine, api.tenant_id, [bill_row("GR700", "INV-700")])
    row = documents.iloc[0]
    other = api.create("Invoices", {**row.payload, "InvoiceNumber": "COPY-1"})[0]  # a copy made in Xero, listed first
    ours = api.create("Invoices", row.payload)[0]
    ledger.record_posted(Intent(row.document_key, "Bills", row.number, 0, content_hash(row.payload), int(row.total_cents),
                                int(row.tax_cents), DAY, (row.number,)), ours["InvoiceID"], "SUBMITTED")
    voided = SourceEvidence({DAY: frozenset({"GR700"})}, frozenset({"GR700"}))
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided)
    assert list(taken["xero_id"]) == [ours["InvoiceID"]]
    status = {b["InvoiceID"]: b["Status"] for b in api.get("Invoices", where='Type=="ACCPAY"', page=1)["Invoices"]}
    assert (status[ours["InvoiceID"]], status[other["InvoiceID"]]) == ("DELETED", "SUBMITTED")


def test_a_bill_sent_before_a_crash_is_not_adopted_once_ci_moved_it_to_another_supplier(books):
    api, client, engine = books
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables")
    documents = with_supplier(client, engine, api.tenant_id, [bill_row("GR801", "INV-801")])
    sent_before_a_crash(ledger, api, documents.iloc[0])  # in Xero under SUP1
    found = ensure_contacts(client, contact_ledger(PostingLedger(engine, api.tenant_id, "run", process="payables"), "payables"),
                            pd.DataFrame([{"contact_number": "SUP2", "name": "Other Supplier", "email": None, "role": "supplier",
                                           "source_keys": ("x",), "business_date": DAY}]))
    row = bill_row("GR801", "INV-801")
    row["payload"]["Contact"] = {"ContactNumber": "SUP2", "Name": "Other Supplier"}  # the clerk corrected the supplier in CI
    corrected, _missing = with_contact_ids(frame([row]), contact_ids(found))
    again = post_documents(client, ledger, corrected, [DAY])
    # ours from before (its amounts are the ledger's): CI changed a bill that went for approval, reported, not adopted
    assert list(again["outcome"]) == ["changed_in_xero"], again["message"].tolist()
    assert [number for number, _status in bills_in_xero(api, "GR801")] == ["INV-801"]  # one bill, never a second
