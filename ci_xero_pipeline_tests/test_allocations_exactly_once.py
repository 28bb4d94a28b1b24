"""Credit notes allocated to the invoices they reverse, exactly once (issue 12), against the sandbox over
HTTP: min(remaining credit, amount due) on the later of the two dates, originals not in Xero yet left waiting
and allocated by a later call, lost answers settled by reading the credit note, lock dates, documents
someone else settled, and the reconciliation of each credit's allocations + refunds + remaining = total."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from ci_xero_pipeline.money import cents_to_decimal, gst_inclusive_cents
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.xero.allocations import (
    ALLOCATION_RESULT_COLUMNS, CREDIT_DIFFERENCE_COLUMNS, WANTED_ALLOCATION_COLUMNS, allocate_credits,
    allocation_differences, allocation_ledger, allocation_ledger_key, credit_note_differences,
)
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.ledger import INTENDED, POSTED, Intent, PostingLedger

from .test_client_conformance import conformance_of, contract, exchanges  # noqa: F401  (fixtures)
from .test_sandbox_accounting import (  # noqa: F401  (fixtures)
    Api, FixedToken, _loopback_http, accounting_spec, error_validator, make_api,
)

DAY, NEXT = "2026-10-01", "2026-10-02"
D = Decimal
AROHA = {"ContactNumber": "C100", "Name": "Aroha Ngata"}
BEN = {"ContactNumber": "C200", "Name": "Ben Carter"}


def lines(cents: int) -> list[dict[str, Any]]:
    return [{"Description": "Goods", "Quantity": D(1), "UnitAmount": cents_to_decimal(cents), "LineAmount": cents_to_decimal(cents),
             "TaxAmount": cents_to_decimal(gst_inclusive_cents(cents)), "AccountCode": "200", "TaxType": "OUTPUT2"}]


def sale(number: str, cents: int, day: str = DAY, contact: dict = AROHA, status: str = "AUTHORISED") -> dict[str, Any]:
    return {"Type": "ACCREC", "InvoiceNumber": number, "Contact": contact, "Date": day, "DueDate": "2026-10-20",
            "Status": status, "LineAmountTypes": "Inclusive", "CurrencyCode": "NZD", "LineItems": lines(cents)}


def refund(number: str, cents: int, day: str = NEXT, contact: dict = AROHA, status: str = "AUTHORISED") -> dict[str, Any]:
    return {"Type": "ACCRECCREDIT", "CreditNoteNumber": number, "Contact": contact, "Date": day, "Status": status,
            "LineAmountTypes": "Inclusive", "CurrencyCode": "NZD", "LineItems": lines(cents)}


@dataclass
class Books:
    """One organisation in the sandbox, the project's client and the receivables process's allocation ledger."""

    api: Api
    client: XeroClient
    ledger: PostingLedger

    def post(self, *documents: dict[str, Any]) -> dict[str, str]:
        """Put documents into Xero as the posting step would have; number → Xero id."""
        ids = {}
        for document in documents:
            collection = "Invoices" if "InvoiceNumber" in document else "CreditNotes"
            saved = self.api.create(collection, document)[0]
            ids[saved.get("InvoiceNumber") or saved["CreditNoteNumber"]] = saved.get("InvoiceID") or saved["CreditNoteID"]
        return ids

    def allocate(self, *pairs: dict[str, Any], locked_until: date | None = None, **kwargs: Any) -> pd.DataFrame:
        results = allocate_credits(self.client, self.ledger, pd.DataFrame(list(pairs), columns=WANTED_ALLOCATION_COLUMNS),
                                   locked_until, **kwargs)
        return results.set_index("allocation_key", drop=False)

    def credit(self, credit_id: str) -> dict[str, Any]:
        return self.api.get(f"CreditNotes/{credit_id}")["CreditNotes"][0]

    def invoice(self, number: str) -> dict[str, Any]:
        return self.api.get("Invoices", InvoiceNumbers=number)["Invoices"][0]

    def puts(self) -> int:
        return self.client.calls.by_kind[("PUT", "CreditNotes")]

    def states(self) -> dict[str, str]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT document_key, state FROM xero_posting_ledger WHERE endpoint = 'Allocations'"))
            return dict(rows.all())


@pytest.fixture
def books(make_api, tmp_path: Path) -> Books:
    api = make_api()
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{api.server.base_url}/api.xro/2.0")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    documents = PostingLedger(engine, api.tenant_id, "test-run", process="receivables")
    return Books(api, client, allocation_ledger(documents, "receivables"))


def pair(credit: str, invoice: str, credit_id: str | None, day: str = NEXT) -> dict[str, Any]:
    return {"allocation_key": f"{credit}>{invoice}", "business_date": day, "credit_document_key": f"receivables/{day}/{credit}",
            "credit_number": credit, "credit_id": credit_id, "invoice_number": invoice, "ci_credit_no": f"CI-{credit}",
            "ci_invoice_no": f"CI-{invoice}"}


def amounts(credit: dict[str, Any]) -> list[tuple[Decimal, str]]:
    return [(a["Amount"], a["Invoice"]["InvoiceNumber"]) for a in credit["Allocations"]]


# -- allocating ---------------------------------------------------------------------------------------------

def test_a_credit_is_allocated_to_its_invoice_and_a_rerun_sends_nothing(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 4600))

    results = books.allocate(pair("CR-1", "A-1", ids["CR-1"]))

    assert list(results.columns) == ALLOCATION_RESULT_COLUMNS
    row = results.loc["CR-1>A-1"]
    assert (row["outcome"], row["amount_cents"], row["credit_remaining_cents_after"], row["invoice_due_cents_after"]) == (
        "allocated", 4600, 0, 6900)
    assert row["allocation_date"] == NEXT and row["invoice_id"] == ids["A-1"].lower() and row["message"] == ""
    credit = books.credit(ids["CR-1"])
    assert amounts(credit) == [(D("46.00"), "A-1")] and credit["Status"] == "PAID" and credit["RemainingCredit"] == D("0.00")
    assert row["xero_id"] == credit["Allocations"][0]["AllocationID"]
    assert books.invoice("A-1")["AmountDue"] == D("69.00")
    key = allocation_ledger_key("receivables", "CR-1>A-1")
    entry = books.ledger.entries([key])[key]
    assert (entry.state, entry.total_cents, entry.partition_key, entry.source_keys) == (POSTED, 4600, NEXT, ("receivables/2026-10-02/CR-1",))

    calls = books.client.calls.total
    again = books.allocate(pair("CR-1", "A-1", ids["CR-1"]))
    assert again.loc["CR-1>A-1", "outcome"] == "already_allocated" and books.client.calls.total == calls  # not even a read
    assert len(books.credit(ids["CR-1"])["Allocations"]) == 1


def test_a_credit_larger_than_the_amount_due_allocates_the_due_and_reports_the_rest(books):
    ids = books.post(sale("A-1", 10000), refund("CR-1", 15000))

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert (row["outcome"], row["amount_cents"], row["credit_remaining_cents_after"], row["invoice_due_cents_after"]) == (
        "allocated", 10000, 5000, 0)
    assert "keeps 50.00 of credit" in row["message"] and "refund the customer or allocate it elsewhere" in row["message"]
    credit = books.credit(ids["CR-1"])
    assert (credit["Status"], credit["RemainingCredit"], amounts(credit)) == ("AUTHORISED", D("50.00"), [(D("100.00"), "A-1")])
    assert books.invoice("A-1")["Status"] == "PAID"


def test_two_credits_on_one_invoice_share_what_it_has_due(books):
    ids = books.post(sale("A-1", 10000), refund("CR-1", 6000), refund("CR-2", 6000))

    results = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), pair("CR-2", "A-1", ids["CR-2"]))

    assert list(results["amount_cents"]) == [6000, 4000]
    assert list(results["credit_remaining_cents_after"]) == [0, 2000] and list(results["invoice_due_cents_after"]) == [4000, 0]
    assert books.credit(ids["CR-2"])["RemainingCredit"] == D("20.00") and books.invoice("A-1")["Status"] == "PAID"


def test_the_allocation_is_dated_the_later_of_the_two_documents(books):
    # a credit dated before the invoice it reverses (CI allows it; Xero applies it on the invoice's day)
    ids = books.post(sale("A-1", 11500, day="2026-10-05"), refund("CR-1", 2300, day=DAY))

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"], day=DAY)).loc["CR-1>A-1"]

    assert (row["outcome"], row["allocation_date"]) == ("allocated", "2026-10-05")
    assert books.credit(ids["CR-1"])["Allocations"][0]["Date"] == "/Date(1791158400000+0000)/"  # 2026-10-05


# -- nothing forced -------------------------------------------------------------------------------------------

def test_an_original_not_in_xero_waits_and_the_next_call_allocates_it(books):
    ids = books.post(refund("CR-1", 4600))

    first = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert first["outcome"] == "waiting" and "invoice A-1 is not in Xero yet" in first["message"]
    assert books.puts() == 0 and books.states() == {} and books.credit(ids["CR-1"])["Allocations"] == []

    books.post(sale("A-1", 11500, day=NEXT))  # its day is posted later
    second = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]
    assert (second["outcome"], second["amount_cents"]) == ("allocated", 4600)
    assert amounts(books.credit(ids["CR-1"])) == [(D("46.00"), "A-1")]


def test_drafts_and_credits_not_in_xero_wait_with_why(books):
    ids = books.post(sale("A-1", 11500, status="DRAFT"), refund("CR-1", 2300), sale("A-2", 11500),
                     refund("CR-2", 2300, status="DRAFT"))

    results = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), pair("CR-2", "A-2", ids["CR-2"]), pair("CR-3", "A-2", None))

    assert set(results["outcome"]) == {"waiting"} and books.puts() == 0
    assert "invoice A-1 is DRAFT" in results.loc["CR-1>A-1", "message"]
    assert "credit note CR-2 is DRAFT" in results.loc["CR-2>A-2", "message"]
    assert "credit note CR-3 is not in Xero" in results.loc["CR-3>A-2", "message"]


def test_an_invoice_paid_in_full_before_the_credit_has_nothing_to_allocate(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 2300))
    paid = books.api.put("Payments", {"Payments": [{"Invoice": {"InvoiceID": ids["A-1"]}, "Account": {"Code": "090"},
                                                    "Date": DAY, "Amount": D("115.00")}]})
    assert paid.status_code == 200 and books.invoice("A-1")["Status"] == "PAID"

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert row["outcome"] == "nothing_to_allocate" and books.puts() == 0
    assert "paid in full before the credit" in row["message"] and "refund the customer or allocate it elsewhere" in row["message"]
    assert row["credit_remaining_cents_after"] == 2300 and row["invoice_due_cents_after"] == 0


def test_an_allocation_dated_on_or_before_the_lock_date_is_locked_and_not_sent(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 2300))

    # the accountant locked the period after the documents were posted
    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), locked_until=date(2026, 10, 2)).loc["CR-1>A-1"]

    assert row["outcome"] == "locked" and "on or before Xero's lock date 2026-10-02" in row["message"]
    assert row["amount_cents"] == 2300 and books.puts() == 0 and books.states() == {}
    assert books.allocate(pair("CR-1", "A-1", ids["CR-1"]), locked_until=date(2026, 10, 1)).loc["CR-1>A-1", "outcome"] == "allocated"


def test_documents_of_two_contacts_are_not_allocated(books):
    ids = books.post(sale("A-1", 11500, contact=BEN), refund("CR-1", 2300))

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert row["outcome"] == "failed" and "different contacts" in row["message"] and books.puts() == 0


def test_an_allocation_someone_made_in_xero_is_not_made_again(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 2300))
    made = books.api.put(f"CreditNotes/{ids['CR-1']}/Allocations",
                         {"Allocations": [{"Amount": D("10.00"), "Invoice": {"InvoiceID": ids["A-1"]}, "Date": NEXT}]})
    assert made.status_code == 200, made.text

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert row["outcome"] == "already_allocated" and "that this pipeline did not make" in row["message"]
    assert row["amount_cents"] == 1000 and books.puts() == 0 and books.states() == {}  # not taken for ours
    assert amounts(books.credit(ids["CR-1"])) == [(D("10.00"), "A-1")]


# -- lost answers, earlier attempts --------------------------------------------------------------------------

@pytest.mark.parametrize("fault, puts", [("drop", 1), ("500", 1), ("503", 2)])
def test_a_lost_answer_on_the_allocation_is_settled_by_reading_the_credit_and_nothing_is_allocated_twice(books, fault, puts):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 4600))
    # drop and 500: Xero saved the allocation and the answer never came; 503: refused before acting
    books.api.server.faults.set(FaultPlan(script=(fault,), methods=("PUT",), collections=("CreditNotes",)))

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert (row["outcome"], row["amount_cents"]) == ("allocated", 4600), row["message"]
    if puts == 1:
        assert "confirmed by reading the credit note" in row["message"]
    assert books.puts() == puts
    assert amounts(books.credit(ids["CR-1"])) == [(D("46.00"), "A-1")]  # one allocation, whatever happened
    assert books.invoice("A-1")["AmountDue"] == D("69.00")
    assert set(books.states().values()) == {POSTED}


def test_answers_lost_every_time_end_unknown_and_the_next_run_reads_before_sending(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 4600))
    books.api.server.faults.set(FaultPlan(script=("503",) * 2, methods=("PUT",), collections=("CreditNotes",)))

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), rounds=2).loc["CR-1>A-1"]

    assert row["outcome"] == "unknown" and "after 2 attempts" in row["message"]
    assert books.states() == {allocation_ledger_key("receivables", "CR-1>A-1"): INTENDED}
    again = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]
    assert again["outcome"] == "allocated" and amounts(books.credit(ids["CR-1"])) == [(D("46.00"), "A-1")]


def test_an_earlier_attempt_whose_answer_was_lost_is_confirmed_and_not_sent_again(books):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 4600))
    key = allocation_ledger_key("receivables", "CR-1>A-1")
    # an earlier run recorded its intent, sent, and died before the answer; Xero had saved the allocation
    books.ledger.intend([Intent(key, "Allocations", "CR-1>A-1", 0, "c1:x", 4600, 0, NEXT, ("receivables/2026-10-02/CR-1",))])
    books.api.put(f"CreditNotes/{ids['CR-1']}/Allocations",
                  {"Allocations": [{"Amount": D("46.00"), "Invoice": {"InvoiceID": ids["A-1"]}, "Date": NEXT}]})

    row = books.allocate(pair("CR-1", "A-1", ids["CR-1"])).loc["CR-1>A-1"]

    assert row["outcome"] == "already_allocated" and "confirmed by reading the credit note" in row["message"]
    assert books.puts() == 0 and books.states() == {key: POSTED}
    assert books.ledger.entries([key])[key].xero_id == books.credit(ids["CR-1"])["Allocations"][0]["AllocationID"]


# -- the reconciliation ---------------------------------------------------------------------------------------

def test_every_credit_adds_up_after_allocations_and_refunds(books):
    ids = books.post(sale("A-1", 10000), refund("CR-1", 15000), sale("A-2", 11500), refund("CR-2", 2300))
    refunded = books.api.put("Payments", {"Payments": [{"CreditNote": {"CreditNoteID": ids["CR-1"]}, "Account": {"Code": "090"},
                                                        "Date": NEXT, "Amount": D("20.00")}]})
    assert refunded.status_code == 200, refunded.text
    results = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), pair("CR-2", "A-2", ids["CR-2"]), pair("CR-3", "A-9", None))

    assert list(results["outcome"]) == ["allocated", "allocated", "waiting"]
    assert results["amount_cents"].iloc[:2].tolist() == [10000, 2300] and pd.isna(results["amount_cents"].iloc[2])
    differences = allocation_differences(books.client, results)
    assert list(differences.columns) == CREDIT_DIFFERENCE_COLUMNS and differences.empty
    assert books.credit(ids["CR-1"])["RemainingCredit"] == D("30.00")  # 150 = 100 allocated + 20 refunded + 30


def test_a_credit_that_does_not_add_up_is_reported():
    held = {"CreditNoteID": "A1B2", "CreditNoteNumber": "CR-9", "Status": "AUTHORISED", "Total": D("150.00"),
            "RemainingCredit": D("40.00"), "Allocations": [{"Amount": D("100.00")}, {"Amount": D("5.00"), "IsDeleted": True}],
            "Payments": [{"Amount": D("20.00")}]}
    fine = {**held, "CreditNoteNumber": "CR-8", "RemainingCredit": D("30.00")}
    draft = {**held, "CreditNoteNumber": "CR-7", "Status": "DRAFT"}

    differences = credit_note_differences([held, fine, draft])

    assert list(differences["credit_number"]) == ["CR-9"]
    row = differences.iloc[0]
    assert (row["allocated_cents"], row["refunded_cents"], row["remaining_cents"], row["difference_cents"]) == (10000, 2000, 4000, -1000)
    assert "out by -10.00" in row["message"]
    assert row["total_cents"] == 15000 and row["credit_id"] == "a1b2"


def test_every_request_of_an_allocation_run_conforms_to_the_spec(books, contract, exchanges):
    ids = books.post(sale("A-1", 11500), refund("CR-1", 4600), sale("A-3", 11500), refund("CR-3", 2300), refund("CR-2", 2300))
    books.api.server.faults.set(FaultPlan(script=("ok", "drop"), methods=("PUT",), collections=("CreditNotes",)))
    results = books.allocate(pair("CR-1", "A-1", ids["CR-1"]), pair("CR-2", "A-2", ids["CR-2"]), pair("CR-3", "A-3", ids["CR-3"]))
    allocation_differences(books.client, results)

    problems, called = conformance_of(contract, exchanges, books.api.server)

    assert problems == [] and list(results["outcome"]) == ["allocated", "waiting", "allocated"]
    assert called[("PUT", "/CreditNotes/{CreditNoteID}/Allocations")] == 1  # (a dropped answer is not recorded)
    assert called[("GET", "/CreditNotes/{CreditNoteID}")] == 3 + 1 + 3  # read, read after the drop, reconciliation
    assert called[("GET", "/Invoices")] == 1
