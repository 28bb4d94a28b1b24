"""Payments of Xero documents exactly once (issue 11, item 5), against the sandbox over HTTP: documents
posted by post_documents, paid by post_payments, their payments removed by release_payments when CI
changes them after posting. Lost answers, crashes, refusals, payments someone else made, lock dates,
and the ledger's process scoping."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from ci_xero_pipeline.assets.process import for_posting
from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.books.tenders import payment_key, payment_payload, payments_frame
from ci_xero_pipeline.money import cents_to_decimal, decimal_to_cents
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.ledger import FAILED, INTENDED, POSTED, WITHDRAWN, Intent, PostingLedger
from ci_xero_pipeline.xero.payments import (
    PAYMENT_RESULT_COLUMNS, payment_content_hash, payment_ledger, payment_ledger_key, post_documents_and_payments,
    post_payments,
)
from ci_xero_pipeline.xero.posting import PostingPolicy, SourceEvidence, lock_date, post_documents

from .test_client_conformance import api_and_path, contract, exchanges  # noqa: F401  (fixtures)
from .test_sandbox_accounting import (  # noqa: F401  (fixtures)
    Api, FixedToken, _loopback_http, accounting_spec, error_validator, make_api,
)

DAY = "2026-10-01"
D = Decimal


# -- documents and payments as a process makes them ------------------------------------------------

def takings_document(branch: str, lines: list[tuple[int, int]], day: str = DAY, status: str = "AUTHORISED") -> dict[str, Any]:
    """A takings invoice of one branch-day (DOCUMENT_COLUMNS), lines of (amount incl. GST, GST) in cents."""
    number = f"EOD-{branch}-{day.replace('-', '')}"
    items = [{
        "Description": f"Sales {n}", "Quantity": D(1), "UnitAmount": cents_to_decimal(amount),
        "LineAmount": cents_to_decimal(amount), "TaxAmount": cents_to_decimal(tax), "AccountCode": "201",
        "TaxType": "OUTPUT2",
    } for n, (amount, tax) in enumerate(lines)]
    payload = {
        "Type": "ACCREC", "InvoiceNumber": number, "Contact": {"Name": f"Takings {branch}"}, "Date": day, "DueDate": day,
        "Status": status, "LineAmountTypes": "Inclusive", "CurrencyCode": "NZD", "Reference": f"CI takings {day} {branch}",
        "LineItems": items,
    }
    return {
        "document_key": f"takings/{day}/{branch}", "business_date": day, "branch_code": branch, "endpoint": "Invoices",
        "document_type": "ACCREC", "number": number, "reference": payload["Reference"], "contact_name": f"Takings {branch}",
        "status": status, "total_cents": sum(a for a, _ in lines), "tax_cents": sum(t for _, t in lines),
        "line_count": len(lines), "ci_invoice_nos": (f"{branch}-{day}-1", f"{branch}-{day}-2"), "payload": payload,
    }


def tender_payments(document: dict[str, Any], tenders: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """The document's payments (PAYMENT_COLUMNS): tender → (account code, cents)."""
    rows = []
    for tender, (account, cents) in tenders.items():
        reference = payment_key(document["number"], tender)
        rows.append({
            "payment_key": reference, "document_key": document["document_key"], "business_date": document["business_date"],
            "branch_code": document["branch_code"], "endpoint": "Payments", "document_endpoint": document["endpoint"],
            "document_number": document["number"], "tender_type": tender, "account_code": account, "amount_cents": cents,
            "ci_invoice_nos": document["ci_invoice_nos"],
            "payload": payment_payload(document["endpoint"], document["number"], account, document["business_date"], cents, reference),
        })
    return rows


def frames(*days: tuple[dict[str, Any], dict[str, tuple[str, int]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    documents = for_posting(pd.DataFrame([document for document, _ in days], columns=DOCUMENT_COLUMNS))
    payments = payments_frame([row for document, tenders in days for row in tender_payments(document, tenders)])
    return documents, payments


@dataclass
class Books:
    """One organisation in the sandbox, the project's client, and the ledgers of the takings process."""

    api: Api
    client: XeroClient
    documents: PostingLedger
    payments: PostingLedger

    def run(self, documents: pd.DataFrame, payments: pd.DataFrame, partitions: list[str] | None = None,
            evidence: SourceEvidence | None = None, policy: PostingPolicy = PostingPolicy()):
        """As a process's posting asset does (post_documents_and_payments): release, post the documents, pay
        them. The payments' rows split into the removals and the rest."""
        days = partitions if partitions is not None else sorted(set(documents["business_date"]))
        results, payment_results = post_documents_and_payments(
            self.client, self.documents, documents, payments, days, policy, evidence, lock_date(self.client.organisation()))
        removal = (payment_results["action"] == "remove").to_numpy(dtype=bool) if len(payment_results) else []
        frame = payment_results.reset_index(drop=True)
        return frame[removal].reset_index(drop=True), results, frame[~removal].reset_index(drop=True) if len(frame) else frame

    def writes(self) -> int:
        return self.client.calls.writes

    def calls(self, method: str, path: str) -> int:
        return self.client.calls.by_kind[(method, path)]

    def invoice(self, number: str) -> dict[str, Any]:
        found = self.api.get("Invoices", InvoiceNumbers=number)["Invoices"]
        assert len(found) == 1, found
        return found[0]

    def payments_under(self, reference: str) -> list[dict[str, Any]]:
        """The AUTHORISED payments Xero holds under a Reference."""
        found = self.api.get("Payments", where=f'Reference=="{reference}"')["Payments"]
        return [p for p in found if p["Status"] == "AUTHORISED"]

    def ledger_states(self) -> dict[str, str]:
        with self.payments.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT document_key, state FROM xero_posting_ledger WHERE endpoint = 'Payments'"))
            return dict(rows.all())


@pytest.fixture
def books(make_api, tmp_path: Path) -> Books:
    api = make_api()
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{api.server.base_url}/api.xro/2.0")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    documents = PostingLedger(engine, api.tenant_id, "test-run", process="takings")
    return Books(api, client, documents, payment_ledger(documents, "takings"))


def outcomes(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["payment_key"], frame["outcome"]))


def paid_cents(invoice: dict[str, Any]) -> int:
    return sum(decimal_to_cents(p["Amount"]) for p in invoice["Payments"])


AKL = {"CASH": ("611", 5000), "EFTPOS": ("612", 5000), "GIFT_VOUCHER": ("835", 1500)}  # 115.00
HAM = {"CASH": ("611", 2300)}  # 23.00


# -- paying -----------------------------------------------------------------------------------------------

def test_a_batch_of_payments_is_posted_and_the_invoices_are_paid(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL), (takings_document("HAM", [(2300, 300)]), HAM))

    released, results, paid = books.run(documents, payments)

    assert released.empty and list(paid.columns) == PAYMENT_RESULT_COLUMNS
    assert set(results["outcome"]) == {"posted"}
    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "posted", "EOD-AKL-20261001/EFTPOS": "posted",
                              "EOD-AKL-20261001/GIFT_VOUCHER": "posted", "EOD-HAM-20261001/CASH": "posted"}
    assert books.calls("PUT", "Payments") == 1  # four payments, one batch
    for number, total in (("EOD-AKL-20261001", 11500), ("EOD-HAM-20261001", 2300)):
        invoice = books.invoice(number)
        assert (invoice["Status"], invoice["AmountDue"], paid_cents(invoice)) == ("PAID", D("0.00"), total)
    voucher = books.payments_under("EOD-AKL-20261001/GIFT_VOUCHER")
    assert [(p["Account"]["Code"], p["Amount"], p["Date"]) for p in voucher] == [("835", D("15.00"), "/Date(1790812800000+0000)/")]
    assert voucher[0]["Invoice"]["InvoiceID"] == results.set_index("number").loc["EOD-AKL-20261001", "xero_id"]
    assert set(paid["xero_id"]) == {p["PaymentID"] for r in payments["payment_key"] for p in books.payments_under(r)}
    assert set(books.ledger_states().values()) == {POSTED}
    assert paid.set_index("payment_key").loc["EOD-AKL-20261001/EFTPOS", "xero_amount_cents"] == 5000


def test_a_rerun_writes_nothing_and_reads_no_payments(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(documents, payments)
    writes, reads = books.writes(), books.calls("GET", "Payments")

    released, results, paid = books.run(documents, payments)

    assert released.empty and set(results["outcome"]) == {"already_posted"}
    assert set(paid["outcome"]) == {"already_posted"} and paid["xero_id"].notna().all()
    assert books.writes() == writes and books.calls("GET", "Payments") == reads
    assert len(books.payments_under("EOD-AKL-20261001/CASH")) == 1


@pytest.mark.parametrize("fault, puts", [("drop", 1), ("500", 1), ("503", 2)])
def test_a_lost_answer_on_the_payment_batch_is_looked_up_and_nothing_is_paid_twice(books, fault, puts):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL), (takings_document("HAM", [(2300, 300)]), HAM))
    results = post_documents(books.client, books.documents, documents, [DAY])
    # drop and 500: Xero saved the batch and the answer never came; 503: refused before acting
    books.api.server.faults.set(FaultPlan(script=(fault,), methods=("PUT",), collections=("Payments",)))

    paid = post_payments(books.client, books.payments, payments, results, None)

    assert set(paid["outcome"]) == {"posted"}, paid[["payment_key", "outcome", "message"]]
    if puts == 1:
        assert paid["message"].str.contains("confirmed by lookup").all()
    assert books.calls("PUT", "Payments") == puts  # only what Xero did not hold was sent again
    assert books.calls("GET", "Payments") == 1  # one lookup by Reference for the lost batch
    for reference in payments["payment_key"]:
        assert len(books.payments_under(reference)) == 1
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID" and books.invoice("EOD-HAM-20261001")["Status"] == "PAID"
    assert set(books.ledger_states().values()) == {POSTED}


def test_a_lost_answer_whose_lookup_fails_stays_unknown_and_the_next_run_settles_it(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    results = post_documents(books.client, books.documents, documents, [DAY])
    patient = XeroClient(FixedToken(books.api.token), books.api.tenant_id, books.client.api_url, max_attempts=2)
    books.api.server.faults.set(FaultPlan(script=("drop", "503", "503"), methods=("PUT", "GET"), collections=("Payments",)))

    paid = post_payments(patient, books.payments, payments, results, None)

    assert set(paid["outcome"]) == {"unknown"} and paid["message"].str.contains("the answer was lost").all()
    assert set(books.ledger_states().values()) == {INTENDED}
    books.api.server.faults.clear()
    again = post_payments(books.client, books.payments, payments, results, None)
    assert set(again["outcome"]) == {"posted"} and books.calls("PUT", "Payments") == 0  # Xero had them: adopted
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def intents(payments: pd.DataFrame) -> list[Intent]:
    return [Intent(payment_ledger_key("takings", p.payment_key), "Payments", p.payment_key, 0,
                   payment_content_hash(p.document_key, p.account_code, p.business_date, int(p.amount_cents), p.payment_key),
                   int(p.amount_cents), 0, p.business_date, (p.document_key,)) for p in payments.itertuples()]


def test_a_crash_after_intend_is_looked_up_then_only_what_xero_lacks_is_sent(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    results = post_documents(books.client, books.documents, documents, [DAY])
    invoice_id = results.iloc[0]["xero_id"]
    # the last run recorded every payment as intended; its batch of CASH went out, then the process died
    books.payments.intend(intents(payments))
    cash = payments[payments["tender_type"] == "CASH"].iloc[0]
    made = books.client.put_payments([("x", {**cash["payload"], "Invoice": {"InvoiceID": invoice_id}})])
    assert made[0].ok
    puts = books.calls("PUT", "Payments")

    paid = post_payments(books.client, books.payments, payments, results, None)

    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "posted", "EOD-AKL-20261001/EFTPOS": "posted",
                              "EOD-AKL-20261001/GIFT_VOUCHER": "posted"}
    by_key = paid.set_index("payment_key")
    assert by_key.loc["EOD-AKL-20261001/CASH", "xero_id"] == made[0].document["PaymentID"]
    assert "found in Xero by its Reference" in by_key.loc["EOD-AKL-20261001/CASH", "message"]
    assert books.calls("GET", "Payments") == 1 and books.calls("PUT", "Payments") - puts == 1
    assert all(len(books.payments_under(r)) == 1 for r in payments["payment_key"])
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_refused_payment_is_that_payments_failure_and_the_others_post(books):
    tenders = {"CASH": ("611", 5000), "EFTPOS": ("620", 5000), "GIFT_VOUCHER": ("835", 1500)}  # 620 takes no payments
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), tenders), (takings_document("HAM", [(2300, 300)]), HAM))

    _released, _results, paid = books.run(documents, payments)

    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "posted", "EOD-AKL-20261001/EFTPOS": "failed",
                              "EOD-AKL-20261001/GIFT_VOUCHER": "posted", "EOD-HAM-20261001/CASH": "posted"}
    message = paid.set_index("payment_key").loc["EOD-AKL-20261001/EFTPOS", "message"]
    assert "Account type is invalid for making a payment to/from account 620" in message
    assert books.ledger_states()["takings-payment/EOD-AKL-20261001/EFTPOS"] == FAILED
    invoice = books.invoice("EOD-AKL-20261001")
    assert (invoice["Status"], invoice["AmountDue"]) == ("AUTHORISED", D("50.00"))

    # the fix: the tender's account changes; the failed one is looked up, then sent; the rest stay
    fixed = payments.copy()
    fixed["account_code"] = ["611", "612", "835", "611"]
    fixed["payload"] = [{**p, "Account": {"Code": code}} for p, code in zip(payments["payload"], fixed["account_code"])]
    _released, _results, again = books.run(documents, fixed)
    assert outcomes(again)["EOD-AKL-20261001/EFTPOS"] == "posted"
    assert {k: v for k, v in outcomes(again).items() if "EFTPOS" not in k} == dict.fromkeys(
        ["EOD-AKL-20261001/CASH", "EOD-AKL-20261001/GIFT_VOUCHER", "EOD-HAM-20261001/CASH"], "already_posted")
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_payment_of_a_document_not_in_xero_is_not_sent(books):
    good, bad = takings_document("AKL", [(11500, 1500)]), takings_document("HAM", [(2300, 300)])
    bad["payload"]["LineItems"][0]["AccountCode"] = "999"  # Xero refuses the document
    documents, payments = frames((good, AKL), (bad, HAM))

    _released, results, paid = books.run(documents, payments)

    assert dict(zip(results["number"], results["outcome"])) == {"EOD-AKL-20261001": "posted", "EOD-HAM-20261001": "failed"}
    assert outcomes(paid)["EOD-HAM-20261001/CASH"] == "not_sent"
    assert "EOD-HAM-20261001 is not in Xero as CI has it (it is failed" in paid.set_index("payment_key").loc["EOD-HAM-20261001/CASH", "message"]
    assert {v for k, v in outcomes(paid).items() if "AKL" in k} == {"posted"}
    assert "takings-payment/EOD-HAM-20261001/CASH" not in books.ledger_states()


def refund_day(branch: str, lines: list[tuple[int, int]]) -> dict[str, Any]:
    """A net-negative takings day: a credit note (lines as positive amounts), refunded by its tenders."""
    document = takings_document(branch, lines)
    number = f"EODCR-{branch}-{DAY.replace('-', '')}"
    payload = {k: v for k, v in document["payload"].items() if k not in ("InvoiceNumber", "DueDate")}
    document.update(number=number, endpoint="CreditNotes", document_type="ACCRECCREDIT",
                    payload={**payload, "Type": "ACCRECCREDIT", "CreditNoteNumber": number})
    return document


def test_a_credit_note_is_refunded_exactly_once_and_repaid_after_a_change(books):
    documents, payments = frames((refund_day("AKL", [(11500, 1500)]), {"CASH": ("611", 11500)}))
    books.api.server.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("Payments",)))

    _released, results, paid = books.run(documents, payments)

    assert list(results["outcome"]) == ["posted"] and outcomes(paid) == {"EODCR-AKL-20261001/CASH": "posted"}
    assert "confirmed by lookup" in paid.iloc[0]["message"]  # Xero reads it back under "Invoice"
    note = books.api.get("CreditNotes", where='CreditNoteNumber=="EODCR-AKL-20261001"')["CreditNotes"][0]
    assert (note["Status"], note["RemainingCredit"], len(note["Payments"])) == ("PAID", D("0.00"), 1)

    changed, new_payments = frames((refund_day("AKL", [(13800, 1800)]), {"CASH": ("611", 13800)}))
    released, results, paid = books.run(changed, new_payments)

    assert outcomes(released) == {"EODCR-AKL-20261001/CASH": "withdrawn"}
    assert list(results["outcome"]) == ["reposted"] and outcomes(paid) == {"EODCR-AKL-20261001/CASH": "posted"}
    held = {n["CreditNoteNumber"]: n for n in books.api.get("CreditNotes")["CreditNotes"]}
    assert held["EODCR-AKL-20261001"]["Status"] == "VOIDED" and held["EODCR-AKL-20261001"]["Payments"] == []
    assert (held["EODCR-AKL-20261001-R1"]["Status"], held["EODCR-AKL-20261001-R1"]["Total"]) == ("PAID", D("138.00"))
    assert [p["Amount"] for p in books.payments_under("EODCR-AKL-20261001/CASH")] == [D("138.00")]


def test_a_payment_dated_in_a_locked_period_is_not_sent(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)], status="AUTHORISED"), AKL))
    results = post_documents(books.client, books.documents, documents, [DAY])

    paid = post_payments(books.client, books.payments, payments, results, date(2026, 10, 1))

    assert set(paid["outcome"]) == {"locked"} and paid["message"].str.contains("lock date").all()
    assert books.calls("PUT", "Payments") == 0 and books.ledger_states() == {}


# -- CI changes after posting ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["void_and_repost", "credit_note"])
def test_a_document_changed_after_posting_loses_our_payments_is_changed_and_paid_again(books, policy):
    posting = PostingPolicy(authorised_changes=policy)
    before = {"CASH": ("611", 10000), "EFTPOS": ("612", 1500)}
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), before), (takings_document("HAM", [(2300, 300)]), HAM))
    books.run(documents, payments, policy=posting)
    old = books.invoice("EOD-AKL-20261001")
    assert old["Status"] == "PAID"
    # CI: one more sale of 23.00 at AKL, paid by EFTPOS; HAM as it was
    after = {"CASH": ("611", 10000), "EFTPOS": ("612", 3800)}
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), after),
                                   (takings_document("HAM", [(2300, 300)]), HAM))

    released, results, paid = books.run(changed, new_payments, policy=posting)

    assert outcomes(released) == {"EOD-AKL-20261001/CASH": "withdrawn", "EOD-AKL-20261001/EFTPOS": "withdrawn"}
    assert books.calls("POST", "Payments") == 2  # one removal a call (POST /Payments/{id})
    assert dict(zip(results["number"], results["outcome"])) == {"EOD-AKL-20261001-R1": "reposted", "EOD-HAM-20261001": "already_posted"}
    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "posted", "EOD-AKL-20261001/EFTPOS": "posted",
                              "EOD-HAM-20261001/CASH": "already_posted"}
    revised = books.invoice("EOD-AKL-20261001-R1")
    assert (revised["Status"], revised["Total"], paid_cents(revised)) == ("PAID", D("138.00"), 13800)
    old = books.invoice("EOD-AKL-20261001")
    assert old["Payments"] == [] and old["AmountPaid"] == D("0.00")
    assert old["Status"] == ("VOIDED" if policy == "void_and_repost" else "AUTHORISED")
    for reference in new_payments["payment_key"]:  # each Reference pays once, and pays the revision
        live = books.payments_under(reference)
        assert len(live) == 1
        if "AKL" in reference:
            assert live[0]["Invoice"]["InvoiceID"] == revised["InvoiceID"]

    writes = books.writes()
    released, results, paid = books.run(changed, new_payments, policy=posting)
    assert released.empty and set(paid["outcome"]) == {"already_posted"} and books.writes() == writes


def test_a_changed_tender_on_an_unchanged_document_removes_only_that_payment(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), {"CASH": ("611", 10000), "EFTPOS": ("612", 1500)}))
    books.run(documents, payments)
    cash_id = books.payments_under("EOD-AKL-20261001/CASH")[0]["PaymentID"]
    _same, moved = frames((takings_document("AKL", [(11500, 1500)]), {"CASH": ("611", 10000), "VISA": ("613", 1500)}))

    released, results, paid = books.run(documents, moved)

    assert outcomes(released) == {"EOD-AKL-20261001/EFTPOS": "withdrawn"}
    assert set(results["outcome"]) == {"already_posted"}
    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "already_posted", "EOD-AKL-20261001/VISA": "posted"}
    assert books.payments_under("EOD-AKL-20261001/CASH")[0]["PaymentID"] == cash_id
    assert books.payments_under("EOD-AKL-20261001/EFTPOS") == []
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_document_ci_withdrew_loses_our_payments_and_is_voided(books):
    akl = takings_document("AKL", [(11500, 1500)])
    documents, payments = frames((akl, AKL), (takings_document("HAM", [(2300, 300)]), HAM))
    books.run(documents, payments)
    remaining, remaining_payments = frames((takings_document("HAM", [(2300, 300)]), HAM))
    evidence = SourceEvidence(returned={DAY: frozenset(akl["ci_invoice_nos"]) | frozenset(("HAM-2026-10-01-1", "HAM-2026-10-01-2"))},
                              withdrawn=frozenset(akl["ci_invoice_nos"]))

    released, results, paid = books.run(remaining, remaining_payments, evidence=evidence)

    assert set(released["outcome"]) == {"withdrawn"} and len(released) == 3
    assert dict(zip(results["number"], results["outcome"]))["EOD-AKL-20261001"] == "withdrawn"
    assert books.invoice("EOD-AKL-20261001")["Status"] == "VOIDED"
    assert outcomes(paid) == {"EOD-HAM-20261001/CASH": "already_posted"}
    assert {k: v for k, v in books.ledger_states().items() if "AKL" in k} == dict.fromkeys(
        [f"takings-payment/EOD-AKL-20261001/{t}" for t in AKL], WITHDRAWN)


def test_payments_of_a_document_ci_did_not_return_are_left_alone(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL), (takings_document("HAM", [(2300, 300)]), HAM))
    books.run(documents, payments)
    writes = books.writes()
    short, short_payments = frames((takings_document("HAM", [(2300, 300)]), HAM))  # AKL absent, not voided

    released, results, paid = books.run(short, short_payments)

    assert released.empty and books.writes() == writes
    assert set(results["outcome"]) == {"stopped"}  # post_documents stops the day
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_document_whose_tenders_ci_holds_back_keeps_our_payments(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(documents, payments)
    writes = books.writes()

    released, _results, paid = books.run(documents, payments.iloc[0:0])

    assert set(released["outcome"]) == {"kept"} and released["message"].str.contains("held back").all()
    assert paid.empty and books.writes() == writes
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_document_someone_else_paid_keeps_every_payment_and_is_reported_paid(books):
    # CI pays 50.00 of it by CASH (the rest is an account sale); the bookkeeper records 20.00 received
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), {"CASH": ("611", 5000)}))
    _released, results, _paid = books.run(documents, payments)
    by_hand = books.api.put("Payments", {"Payments": [{"Invoice": {"InvoiceID": results.iloc[0]["xero_id"]}, "Account": {"Code": "090"},
                                                       "Date": DAY, "Amount": D("20.00"), "Reference": "paid at the counter"}]},
                            summarizeErrors="false")
    assert by_hand.status_code == 200
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), {"CASH": ("611", 7300)}))
    writes = books.writes()

    released, results, paid = books.run(changed, new_payments)

    assert outcomes(released) == {"EOD-AKL-20261001/CASH": "paid_by_others"}
    assert "paid at the counter" in released.iloc[0]["message"]
    assert results.iloc[0]["outcome"] == "paid"
    assert outcomes(paid) == {"EOD-AKL-20261001/CASH": "not_sent"}
    assert books.writes() == writes
    invoice = books.invoice("EOD-AKL-20261001")
    assert (invoice["Status"], paid_cents(invoice)) == ("AUTHORISED", 7000)
    assert sorted(p["Reference"] for p in invoice["Payments"]) == ["EOD-AKL-20261001/CASH", "paid at the counter"]


def test_a_changed_document_in_a_locked_period_keeps_its_payments(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(documents, payments)
    books.api.server.store.execute("UPDATE organisations SET period_lock_date = ? WHERE tenant_id = ?", (DAY, books.api.tenant_id))
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]),
                                    {**AKL, "EFTPOS": ("612", 7300)}))
    writes = books.writes()

    released, results, paid = books.run(changed, new_payments)

    assert set(released["outcome"]) == {"locked"} and len(released) == 3
    assert released["message"].str.contains("lock date 2026-10-01").all()
    assert results.iloc[0]["outcome"] == "locked"
    assert outcomes(paid)["EOD-AKL-20261001/CASH"] == "already_posted"
    assert outcomes(paid)["EOD-AKL-20261001/EFTPOS"] == "not_sent"
    assert books.writes() == writes
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"


def test_a_lost_answer_on_a_removal_is_settled_by_reading_the_payment(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(documents, payments)
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), {**AKL, "EFTPOS": ("612", 7300)}))
    books.api.server.faults.set(FaultPlan(script=("drop",), methods=("POST",), collections=("Payments",)))

    released, results, paid = books.run(changed, new_payments)

    assert set(released["outcome"]) == {"withdrawn"}
    assert released["message"].str.contains("confirmed by lookup").sum() == 1
    assert books.api.server.faults.stats()["injected"] == {"drop": 1}
    assert results.iloc[0]["outcome"] == "reposted" and set(paid["outcome"]) == {"posted"}
    assert paid_cents(books.invoice("EOD-AKL-20261001-R1")) == 13800


def test_a_removal_xero_refuses_stays_with_that_payment(books):
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(documents, payments)
    books.api.server.store.execute("UPDATE payments SET payment = json_set(payment, '$.IsReconciled', json('true')) "
                                   "WHERE reference = 'EOD-AKL-20261001/EFTPOS'")
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), {**AKL, "EFTPOS": ("612", 7300)}))

    released, results, paid = books.run(changed, new_payments)

    assert outcomes(released)["EOD-AKL-20261001/EFTPOS"] == "failed"
    assert "A reconciled payment cannot be deleted." in released.set_index("payment_key").loc["EOD-AKL-20261001/EFTPOS", "message"]
    assert results.iloc[0]["outcome"] == "paid"  # still holds a payment: post_documents leaves it
    assert set(paid["outcome"]) == {"not_sent"}


# -- the ledger's process scoping ----------------------------------------------------------------------

def test_the_ledger_process_scopes_partitions_and_keeps_exact_keys(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    unscoped = PostingLedger(engine, "tenant")

    def intent(key: str, endpoint: str = "Invoices") -> Intent:
        return Intent(key, endpoint, key.rsplit("/", 1)[-1], 0, "c1:x", 100, 0, DAY, ("ci-1",))

    keys = ["eretailer/2026-10-01/W1", "takings/2026-10-01/AKL", "Takings/2026-10-01/OTHER", "take_s/2026-10-01/X"]
    unscoped.intend([intent(k) for k in keys] + [intent("takings-payment/EOD-AKL-20261001/CASH", "Payments")])

    def seen(process: str | None) -> set[str]:
        return set(PostingLedger(engine, "tenant", process=process).entries_for_partitions([DAY]))

    assert seen("eretailer") == {"eretailer/2026-10-01/W1"}
    assert seen("takings") == {"takings/2026-10-01/AKL"}  # neither Takings/ (case) nor takings-payment/
    assert seen("takings-payment") == {"takings-payment/EOD-AKL-20261001/CASH"}
    assert seen("take_s") == {"take_s/2026-10-01/X"}  # "_" is no wildcard
    assert seen(None) == set(keys)  # as before, and never payment rows
    assert PostingLedger(engine, "tenant", process="eretailer").posted_partitions() == [DAY]
    assert PostingLedger(engine, "tenant", process="nothing").posted_partitions() == []
    takings = PostingLedger(engine, "tenant", process="takings")
    assert set(takings.entries(["eretailer/2026-10-01/W1", "takings-payment/EOD-AKL-20261001/CASH"])) == {
        "eretailer/2026-10-01/W1", "takings-payment/EOD-AKL-20261001/CASH"}  # exact keys: not scoped


def test_an_eretailer_day_never_takes_the_takings_documents_for_its_own(books):
    """Both processes post the same day to one organisation through one state database: each plans
    only its own documents (an unscoped E-Retailer ledger would stop the day, or void the takings)."""
    takings, takings_payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    books.run(takings, takings_payments)
    web = copy.deepcopy(takings_document("WEB", [(2300, 300)]))
    web["document_key"], web["number"] = f"eretailer/{DAY}/W1", "W1"
    web["payload"]["InvoiceNumber"] = "W1"
    web_documents = for_posting(pd.DataFrame([web], columns=DOCUMENT_COLUMNS))
    eretailer = PostingLedger(books.documents.engine, books.api.tenant_id, process="eretailer")

    results = post_documents(books.client, eretailer, web_documents, [DAY])

    assert list(results["outcome"]) == ["posted"]
    again = post_documents(books.client, eretailer, web_documents, [DAY])
    assert list(again["outcome"]) == ["already_posted"]  # no takings document is "gone" from its day
    assert books.invoice("EOD-AKL-20261001")["Status"] == "PAID"
    # unscoped, the E-Retailer run sees the takings document as one of its own CI no longer returned
    unscoped = PostingLedger(books.documents.engine, books.api.tenant_id)
    assert set(unscoped.entries_for_partitions([DAY])) == {f"eretailer/{DAY}/W1", f"takings/{DAY}/AKL"}  # no payment rows
    confused = post_documents(books.client, unscoped, web_documents, [DAY])
    assert dict(zip(confused["number"], confused["outcome"])) == {"W1": "stopped", "EOD-AKL-20261001": "stopped"}


# -- the requests conform to Xero's spec ------------------------------------------------------------------

def test_every_payment_request_conforms_to_the_spec(books, contract, exchanges):
    """PUT /Payments, GET /Payments?where=Reference==…, POST /Payments/{id} and GET /Payments/{id}, as the
    payment path sends them (a crash after intend, a change after posting, a lost answer on a removal),
    checked against the committed subset of Xero's OpenAPI spec, answers included."""
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), AKL))
    results = post_documents(books.client, books.documents, documents, [DAY])
    books.payments.intend(intents(payments))  # looked up by Reference before anything is sent
    post_payments(books.client, books.payments, payments, results, None)
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), {**AKL, "EFTPOS": ("612", 7300)}))
    books.api.server.faults.set(FaultPlan(script=("drop",), methods=("POST",), collections=("Payments",)))
    _released, _results, paid = books.run(changed, new_payments)
    assert set(paid["outcome"]) == {"posted"}

    api_url = books.client.api_url
    checked: set[tuple[str, str]] = set()
    problems: list[str] = []
    for request, answer in exchanges:
        located = api_and_path(request.url, api_url, f"{books.api.server.base_url}/connections")
        if located is None or not located[1].lower().startswith("/payments"):
            continue
        matched = contract.operation("accounting", request.method, located[1])
        checked.add((request.method, matched[0].spec["path"] if matched else located[1]))
        problems += contract.request_problems("accounting", located[1], request)
        if answer.status_code == 200:
            problems += contract.response_problems("accounting", located[1], request, answer)
    assert not problems, "\n".join(sorted(set(problems)))
    assert checked == {("PUT", "/Payments"), ("GET", "/Payments"), ("POST", "/Payments/{PaymentID}"),
                       ("GET", "/Payments/{PaymentID}")}, checked


def test_a_removal_whose_answer_and_lookup_are_lost_is_paid_again_on_the_revision(books):
    """The removal went through but its answer was lost and the lookup failed: the ledger must not keep saying
    the payment is in Xero, or the revision the document became is never paid that tender."""
    documents, payments = frames((takings_document("AKL", [(11500, 1500)]), {"CASH": ("611", 10000), "EFTPOS": ("612", 1500)}))
    books.run(documents, payments)
    patient = XeroClient(FixedToken(books.api.token), books.api.tenant_id, books.client.api_url, max_attempts=2)
    flaky = Books(books.api, patient, books.documents, books.payments)
    after = {"CASH": ("611", 10000), "EFTPOS": ("612", 3800)}  # one more EFTPOS sale of 23.00; CASH unchanged
    changed, new_payments = frames((takings_document("AKL", [(11500, 1500), (2300, 300)]), after))
    books.api.server.faults.set(FaultPlan(script=("drop", "503", "503"), methods=("POST", "GET"), collections=("Payments",)))
    released, results, paid = flaky.run(changed, new_payments)
    assert outcomes(released)["EOD-AKL-20261001/CASH"] == "unknown"
    assert set(results["outcome"]) == {"reposted"}
    books.api.server.faults.clear()
    books.run(changed, new_payments)
    revision = books.invoice("EOD-AKL-20261001-R1")
    assert revision["Status"] == "PAID" and paid_cents(revision) == 13800
    live = books.payments_under("EOD-AKL-20261001/CASH")
    assert len(live) == 1 and live[0]["Invoice"]["InvoiceNumber"] == "EOD-AKL-20261001-R1"
