"""End-of-day takings, pure: validation per branch-day and the takings documents with their payments
(processes.md §1, §5), and the E-Retailer documents' tender payments (issue 11, item 4).

The expected figures are worked out here with Decimal from the handcrafted CI rows (what Xero computes
for a line, how each account must move), never from the code under test; every payload is checked
against Xero's OpenAPI spec (the committed subset test_client_conformance uses), and the sandbox Xero
takes them over HTTP and holds each takings document PAID."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pytest
import requests

from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS, build_eretailer_documents
from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.schemas import XeroDocuments
from ci_xero_pipeline.books.takings import (
    NOTHING_TO_POST,
    TakingsRules,
    build_takings_documents,
    check_takings_books,
    takings_source_evidence,
    validate_takings,
)
from ci_xero_pipeline.books.tenders import (
    PAYMENT_COLUMNS,
    TenderMapping,
    XeroPayments,
    build_eretailer_tender_payments,
)
from ci_xero_pipeline.books.validation import validate_sales_documents
from ci_xero_pipeline.ci.extract import TENDER_FRAME_COLUMNS, SalesDocuments, SalesWithTenders
from ci_xero_pipeline.money import decimal_to_cents, dumps_exact

from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .sales_frames import BRANCHES, document, frames, line
from .test_client_conformance import SCHEMA_FILE, TENANT, XeroContract
from .test_sandbox_accounting import _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
CENT = D("0.01")
DAY, NEXT_DAY = "2026-10-01", "2026-10-02"
ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"}
TENDERS = {"CASH": "611", "EFTPOS": "612", "VISA": "613", "MASTERCARD": "613", "AMEX": "614"}
OVER_SHORT, ROUNDING_ACCOUNT, LIABILITY = "429", "404", "835"
XERO_RATES = {"OUTPUT2": D(15), "ZERORATED": D(0), "NONE": D(0)}
SHOPS = {**BRANCHES, "CHC01": "Christchurch Riccarton"}


def rules(**changes: Any) -> TakingsRules:
    values: dict[str, Any] = dict(
        sales_accounts=ACCOUNTS, tender_accounts=TENDERS, over_short_account=OVER_SHORT,
        voucher_analysis_codes=("VOUCHER",), voucher_liability_account=LIABILITY,
        rounding_analysis_codes=("ROUNDING",), rounding_account=ROUNDING_ACCOUNT,
    )
    values.update(changes)
    return TakingsRules(**values)


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def xero_tax(amount: Decimal, tax_type: str) -> Decimal:
    rate = XERO_RATES[tax_type]
    return half_up(amount * rate / (100 + rate)) if rate else D("0.00")


# -- handcrafted CI rows --------------------------------------------------------------------------

def pos(number: str, lines: list[dict], tenders: list[tuple[str, str]], day: str = DAY, branch: str = "AKL01",
        source: str = "POS", **overrides: Any) -> dict:
    doc = document(number, day, lines, branch=branch, source=source, customer_code=None, customer_name=None,
                   customer_email=None, order_ref=None, **overrides)
    doc["tenders"] = tenders
    return doc


def voucher(amount: str, gst_code: str = "E", **changes: Any) -> dict:
    return line("1", amount, gst_code=gst_code, analysis_code="VOUCHER", sku=None, description="Gift voucher", **changes)


def cash_rounding(amount: str) -> dict:
    return line("1", amount, gst_code="E", analysis_code="ROUNDING", sku=None, description="Cash rounding")


def read(docs: list[dict], counted: dict[tuple[str, str, str], str] | None = None,
         drop: set[tuple[str, str, str]] = frozenset(), extra: list[tuple[str, str, str, str, str]] = (),
         repeat_tender: str | None = None, repeat_cash_up: tuple[str, str, str] | None = None) -> SalesWithTenders:
    """The read extraction would give for these documents: their tenders, and cash-ups whose expected
    is each branch-day's Σ FINAL POS tenders per type and whose counted is `counted` (default expected);
    `drop` leaves cash-up rows out, `extra` adds (branch, day, tender, expected, counted) rows."""
    docs = [dict(doc) for doc in docs]
    tenders_of = {doc["invoice_no"]: doc.pop("tenders", []) for doc in docs}
    built = frames(docs, SHOPS)
    rows, expected = [], defaultdict(lambda: D(0))
    for doc in docs:
        for number, (tender_type, amount) in enumerate(tenders_of[doc["invoice_no"]], start=1):
            rows.append({
                "invoice_no": doc["invoice_no"], "business_date": doc["business_date"], "branch_code": doc["branch_code"],
                "source": doc["source"], "status": doc["status"], "doc_type": doc["doc_type"], "tender_no": number,
                "tender_type": tender_type, "amount_cents": decimal_to_cents(D(amount)),
                "paid_at": pd.Timestamp(f"{doc['business_date']} 12:00"),
            })
            if rows[-1]["invoice_no"] == repeat_tender:
                rows.append(dict(rows[-1]))
            if doc["source"] == "POS" and doc["status"] == "FINAL" and tender_type != "ACCOUNT":
                expected[(doc["branch_code"], doc["business_date"], tender_type)] += D(amount)
    tenders = pd.DataFrame(rows, columns=TENDER_FRAME_COLUMNS)
    tenders["tender_no"] = tenders["tender_no"].astype("Int64")
    tenders["amount_cents"] = tenders["amount_cents"].astype("Int64")
    counted = counted or {}
    cash = [
        (branch, day, tender_type, amount, D(counted.get((branch, day, tender_type), amount)))
        for (branch, day, tender_type), amount in sorted(expected.items()) if (branch, day, tender_type) not in drop
    ] + [(branch, day, tender_type, D(e), D(c)) for branch, day, tender_type, e, c in extra]
    if repeat_cash_up:
        cash += [row for row in cash if row[:3] == repeat_cash_up]
    cash_ups = pd.DataFrame({
        "branch_code": [row[0] for row in cash], "business_date": [row[1] for row in cash],
        "tender_type": [row[2] for row in cash],
        "expected_cents": pd.array([decimal_to_cents(row[3]) for row in cash], dtype="Int64"),
        "counted_cents": pd.array([decimal_to_cents(row[4]) for row in cash], dtype="Int64"),
    }, columns=["branch_code", "business_date", "tender_type", "expected_cents", "counted_cents"])
    branches = pd.DataFrame({"branch_code": list(SHOPS), "branch_name": list(SHOPS.values()),
                             "active": pd.array([True] * len(SHOPS), dtype="boolean")})
    return SalesWithTenders(documents=SalesDocuments(built.invoices, built.lines), tenders=tenders, cash_ups=cash_ups, branches=branches)


def books_of(docs: list[dict], site: TakingsRules | None = None, **read_options: Any):
    site = site or rules()
    validated = validate_takings(read(docs, **read_options), site)
    books = build_takings_documents(validated, site)
    assert check_takings_books(validated, books, site).empty, check_takings_books(validated, books, site).to_dict("records")
    return validated, books


def only(frame: pd.DataFrame) -> Any:
    assert len(frame) == 1, frame
    return frame.iloc[0]


def items_of(document: Any) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(item["AccountCode"], item["LineAmount"], item["TaxAmount"], item["TaxType"]) for item in document["payload"]["LineItems"]]


def payments_of(books: Any) -> list[tuple[str, str, Decimal]]:
    return [(p.payment_key, p.account_code, p.payload["Amount"]) for p in books.payments.itertuples()]


# -- the payloads against Xero's spec ----------------------------------------------------------------

@pytest.fixture(scope="module")
def contract() -> XeroContract:
    return XeroContract(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def spec_problems(contract: XeroContract, endpoint: str, payloads: list[dict]) -> list[str]:
    """What Xero's spec says of PUT /<endpoint> with these payloads (money written exactly)."""
    if not payloads:
        return []
    request = requests.Request(
        "PUT", f"https://api.xero.com/api.xro/2.0/{endpoint}", params={"summarizeErrors": "false"},
        data=dumps_exact({endpoint: payloads}).encode(), headers=TENANT,
    ).prepare()
    return contract.request_problems("accounting", f"/{endpoint}", request)


def assert_conforms(contract: XeroContract, books: Any) -> None:
    for endpoint in ("Invoices", "CreditNotes"):
        payloads = [row.payload for row in books.documents.itertuples() if row.endpoint == endpoint]
        assert spec_problems(contract, endpoint, payloads) == []
    assert spec_problems(contract, "Payments", list(books.payments["payload"])) == []


# -- one ordinary day --------------------------------------------------------------------------------

def test_a_day_is_one_takings_invoice_paid_by_one_payment_per_tender(contract):
    docs = [
        pos("P1", [line("2", "25.00"), line("1", "30.00", analysis_code="FOOTWEAR")], [("EFTPOS", "80.00")]),
        pos("P2", [line("1", "19.99", analysis_code="ACCESSORIES")], [("CASH", "19.99")]),
        pos("P3", [line("1", "45.00")], [("VISA", "45.00")], branch="WLG01"),
    ]
    validated, books = books_of(docs)
    assert validated.quarantine.empty and list(books.documents.columns) == DOCUMENT_COLUMNS
    XeroDocuments.validate(books.documents)
    XeroPayments.validate(books.payments)
    akl = books.documents.set_index("document_key").loc["takings/2026-10-01/AKL01"]
    assert (akl["endpoint"], akl["document_type"], akl["number"], akl["status"]) == ("Invoices", "ACCREC", "EOD-AKL01-20261001", "AUTHORISED")
    assert (akl["total_cents"], akl["tax_cents"], akl["ci_invoice_nos"]) == (9999, 652 + 391 + 261, ("P1", "P2"))
    payload = akl["payload"]
    assert payload["Contact"] == {"ContactNumber": "TAKINGS-AKL01", "Name": "Takings Auckland Queen Street"}
    assert (payload["Date"], payload["DueDate"], payload["LineAmountTypes"]) == (DAY, DAY, "Inclusive")
    assert items_of(akl) == [
        ("201", D("50.00"), D("6.52"), "OUTPUT2"), ("202", D("30.00"), D("3.91"), "OUTPUT2"), ("203", D("19.99"), D("2.61"), "OUTPUT2"),
    ]
    assert {str(item["Tracking"]) for item in payload["LineItems"]} == {"[{'Name': 'CI Branches', 'Option': 'Auckland Queen Street'}]"}
    assert payments_of(books) == [
        ("EOD-AKL01-20261001/CASH", "611", D("19.99")), ("EOD-AKL01-20261001/EFTPOS", "612", D("80.00")),
        ("EOD-WLG01-20261001/VISA", "613", D("45.00")),
    ]
    cash = books.payments.iloc[0]
    assert cash["payload"] == {"Invoice": {"InvoiceNumber": "EOD-AKL01-20261001"}, "Account": {"Code": "611"},
                               "Date": DAY, "Amount": D("19.99"), "Reference": "EOD-AKL01-20261001/CASH"}
    assert list(books.payments.columns) == PAYMENT_COLUMNS and cash["document_key"] == "takings/2026-10-01/AKL01"
    totals = books.totals.set_index("branch_code")
    assert totals.loc["AKL01", ["ci_total_cents", "document_total_cents", "payments_cents", "layout"]].tolist() == [9999, 9999, 9999, "paid"]
    assert_conforms(contract, books)


def test_gst_that_ci_rounds_its_own_way_is_carried_exactly_on_adjustment_lines():
    # CI's GST per unit: 3 × 0.04 → 3 × 0.01 = 0.03 where the line total 0.12 carries 0.02
    docs = [pos("P1", [line("3", "0.04", line_gst=D("0.03")), line("1", "10.00")], [("CASH", "10.12")])]
    _, books = books_of(docs)
    document = only(books.documents)
    items = document["payload"]["LineItems"]
    assert items[0]["LineAmount"] == D("10.12") and items[0]["TaxAmount"] == xero_tax(D("10.12"), "OUTPUT2") == D("1.32")
    adjustment, balancing = items[1], items[2]
    assert adjustment["LineAmount"] == -balancing["LineAmount"] and adjustment["TaxAmount"] == D("0.01")
    assert adjustment["TaxAmount"] == xero_tax(adjustment["LineAmount"], "OUTPUT2") and balancing["TaxType"] == "NONE"
    assert document["tax_cents"] == 130 + 3 == sum(decimal_to_cents(item["TaxAmount"]) for item in items)
    assert document["total_cents"] == 1012 == sum(p.amount_cents for p in books.payments.itertuples())


# -- over/short and rounding -------------------------------------------------------------------------

@pytest.mark.parametrize("counted, line_amount", [("21.50", D("1.50")), ("18.00", D("-2.00"))])
def test_over_or_short_is_a_line_to_the_over_short_account_and_the_payment_is_what_was_counted(counted, line_amount, contract):
    docs = [pos("P1", [line("1", "20.00")], [("CASH", "20.00")]), pos("P2", [line("1", "5.00")], [("EFTPOS", "5.00")])]
    _, books = books_of(docs, counted={("AKL01", DAY, "CASH"): counted})
    document = only(books.documents)
    till = [item for item in document["payload"]["LineItems"] if item["AccountCode"] == OVER_SHORT]
    assert [(item["LineAmount"], item["TaxAmount"], item["TaxType"]) for item in till] == [(line_amount, D("0.00"), "NONE")]
    assert till[0]["Description"].startswith(f"Till {'over' if line_amount > 0 else 'short'} CASH 2026-10-01: counted {counted}")
    assert payments_of(books) == [("EOD-AKL01-20261001/CASH", "611", D(counted)), ("EOD-AKL01-20261001/EFTPOS", "612", D("5.00"))]
    assert document["total_cents"] == decimal_to_cents(D("25.00") + line_amount) and document["tax_cents"] == 261 + 65
    assert only(books.totals)["over_short_cents"] == decimal_to_cents(line_amount)
    assert_conforms(contract, books)


def test_over_short_goes_to_the_tenders_own_account_where_the_site_sets_one():
    docs = [pos("P1", [line("1", "20.00")], [("CASH", "10.00"), ("EFTPOS", "10.00")])]
    _, books = books_of(docs, rules(over_short_accounts={"EFTPOS": "408"}),
                        counted={("AKL01", DAY, "CASH"): "9.90", ("AKL01", DAY, "EFTPOS"): "10.05"})
    lines = {item["AccountCode"]: item["LineAmount"] for item in only(books.documents)["payload"]["LineItems"] if item["TaxType"] == "NONE"}
    assert lines == {OVER_SHORT: D("-0.10"), "408": D("0.05")}
    assert [p.amount_cents for p in books.payments.itertuples()] == [990, 1005]


def test_cash_rounding_goes_to_the_rounding_account_without_gst():
    docs = [pos("P1", [line("1", "19.98"), cash_rounding("0.02")], [("CASH", "20.00")]),
            pos("P2", [line("1", "10.03"), cash_rounding("-0.03")], [("CASH", "10.00")])]
    _, books = books_of(docs)
    document = only(books.documents)
    assert (ROUNDING_ACCOUNT, D("-0.01"), D("0.00"), "NONE") in items_of(document)
    sales = [item for item in document["payload"]["LineItems"] if item["Description"].startswith("Takings")]
    assert [(item["LineAmount"], item["TaxAmount"]) for item in sales] == [(D("30.01"), D("3.91"))]
    assert document["tax_cents"] == 261 + 131  # CI's GST (the cent between goes on an adjustment pair)
    assert payments_of(books) == [("EOD-AKL01-20261001/CASH", "611", D("30.00"))]


def test_cash_rounding_with_gst_or_without_an_account_is_quarantined():
    docs = [pos("P1", [line("1", "19.98"), cash_rounding("0.02") | {"line_gst": D("0.01"), "gst_code": "S"}], [("CASH", "20.00")])]
    validated = validate_takings(read(docs), rules(gst_tolerance_cents=2))
    assert list(validated.quarantine["check"]) == ["rounding_gst"] and validated.invoices.empty
    validated = validate_takings(read([pos("P1", [line("1", "19.98"), cash_rounding("0.02")], [("CASH", "20.00")])]),
                                 rules(rounding_account=None))
    assert list(validated.quarantine["check"]) == ["unmapped_rounding"]
    assert "no rounding account is set (rounding_account)" in validated.quarantine["reason"].iloc[0]


# -- the sign rule -----------------------------------------------------------------------------------

def test_a_negative_tender_on_a_day_of_net_sales_is_a_positive_line_to_its_own_account(contract):
    docs = [
        pos("P1", [line("1", "100.00")], [("EFTPOS", "100.00")]),
        pos("C1", [line("-1", "30.00")], [("CASH", "-30.00")], doc_type="CREDIT", original_invoice_no="P0"),
    ]
    validated, books = books_of(docs)
    document = only(books.documents)
    assert (document["endpoint"], document["number"], document["total_cents"]) == ("Invoices", "EOD-AKL01-20261001", 10000)
    assert items_of(document) == [("201", D("70.00"), D("9.13"), "OUTPUT2"), ("611", D("30.00"), D("0.00"), "NONE")]
    assert document["payload"]["LineItems"][1]["Description"] == "CASH refunds and cash out 2026-10-01"
    assert payments_of(books) == [("EOD-AKL01-20261001/EFTPOS", "612", D("100.00"))]
    assert books.tender_lines[["tender_type", "account_code", "amount_cents"]].values.tolist() == [["CASH", "611", 3000]]
    movement = books.tenders.set_index("tender_type")["movement_cents"].to_dict()
    assert movement == {"CASH": -3000, "EFTPOS": 10000}  # each clearing account moves by what CI counted
    assert_conforms(contract, books)


def test_a_net_negative_day_is_a_credit_note_refunded_by_its_negative_tenders_with_the_positive_ones_as_lines(contract):
    docs = [
        pos("P1", [line("1", "20.00", analysis_code="FOOTWEAR")], [("EFTPOS", "20.00")]),
        pos("C1", [line("-2", "40.00")], [("CASH", "-50.00"), ("VISA", "-30.00")], doc_type="CREDIT", original_invoice_no="P0"),
    ]
    validated, books = books_of(docs, counted={("AKL01", DAY, "CASH"): "-50.20"})
    document = only(books.documents)
    assert (document["endpoint"], document["document_type"], document["number"]) == ("CreditNotes", "ACCRECCREDIT", "EODCR-AKL01-20261001")
    payload = document["payload"]
    assert payload["CreditNoteNumber"] == "EODCR-AKL01-20261001" and "DueDate" not in payload and "InvoiceNumber" not in payload
    assert items_of(document) == [
        ("201", D("80.00"), D("10.43"), "OUTPUT2"), ("202", D("-20.00"), D("-2.61"), "OUTPUT2"),
        (OVER_SHORT, D("0.20"), D("0.00"), "NONE"), ("612", D("20.00"), D("0.00"), "NONE"),
    ]
    assert (document["total_cents"], document["tax_cents"]) == (8020, 1043 - 261)
    assert payments_of(books) == [("EODCR-AKL01-20261001/CASH", "611", D("50.20")), ("EODCR-AKL01-20261001/VISA", "613", D("30.00"))]
    assert books.payments.iloc[0]["payload"]["CreditNote"] == {"CreditNoteNumber": "EODCR-AKL01-20261001"}
    assert set(books.payments["document_endpoint"]) == {"CreditNotes"}
    assert books.tenders.set_index("tender_type")["movement_cents"].to_dict() == {"CASH": -5020, "EFTPOS": 2000, "VISA": -3000}
    assert only(books.totals)["layout"] == "credit_note"
    assert_conforms(contract, books)


def test_a_day_that_nets_to_zero_line_for_line_makes_no_document_and_says_so():
    docs = [pos("P1", [line("1", "10.00")], [("CASH", "10.00")]),
            pos("C1", [line("-1", "10.00")], [("CASH", "-10.00")], doc_type="CREDIT", original_invoice_no="P1")]
    validated, books = books_of(docs)
    assert books.documents.empty and books.payments.empty
    assert only(books.no_document)[["branch_code", "invoice_nos", "total_cents", "reason"]].tolist() == [
        "AKL01", ("C1", "P1"), 0, NOTHING_TO_POST]


def test_a_zero_total_day_with_tenders_moving_money_still_moves_them():
    # an exchange: 10.00 refunded in cash, 10.00 paid by EFTPOS for another item
    docs = [pos("P1", [line("1", "10.00", analysis_code="FOOTWEAR")], [("EFTPOS", "10.00")]),
            pos("C1", [line("-1", "10.00")], [("CASH", "-10.00")], doc_type="CREDIT", original_invoice_no="P0")]
    _, books = books_of(docs)
    document = only(books.documents)
    assert document["total_cents"] == 1000 and ("611", D("10.00"), D("0.00"), "NONE") in items_of(document)
    assert payments_of(books) == [("EOD-AKL01-20261001/EFTPOS", "612", D("10.00"))]


# -- gift vouchers -----------------------------------------------------------------------------------

def test_vouchers_sold_go_to_the_liability_and_vouchers_redeemed_are_payments_into_it(contract):
    docs = [
        pos("P1", [voucher("50.00"), line("1", "20.00")], [("EFTPOS", "70.00")]),  # a voucher sold
        pos("P2", [line("1", "35.00", analysis_code="FOOTWEAR")], [("GIFT_VOUCHER", "30.00"), ("CASH", "5.00")]),  # one redeemed
    ]
    _, books = books_of(docs)
    document = only(books.documents)
    assert items_of(document) == [
        ("201", D("20.00"), D("2.61"), "OUTPUT2"), ("202", D("35.00"), D("4.57"), "OUTPUT2"), (LIABILITY, D("50.00"), D("0.00"), "NONE"),
    ]
    assert document["payload"]["LineItems"][2]["Description"] == "Gift vouchers sold 2026-10-01: VOUCHER"
    assert payments_of(books) == [
        ("EOD-AKL01-20261001/CASH", "611", D("5.00")), ("EOD-AKL01-20261001/EFTPOS", "612", D("70.00")),
        ("EOD-AKL01-20261001/GIFT_VOUCHER", LIABILITY, D("30.00")),
    ]
    assert_conforms(contract, books)


def test_a_voucher_sold_with_gst_is_quarantined_unless_the_site_taxes_vouchers_at_sale():
    taxed = voucher("50.00", gst_code="S", line_gst=D("6.52"))
    docs = [pos("P1", [taxed], [("EFTPOS", "50.00")]), pos("P2", [line("1", "9.00")], [("CASH", "9.00")], branch="WLG01")]
    validated = validate_takings(read(docs), rules())
    problem = only(validated.quarantine)
    assert (problem["check"], problem["branch_code"], problem["invoice_no"], problem["line_no"]) == ("voucher_gst", "AKL01", "P1", 1)
    assert "P1 line 1: a gift voucher sold (50.00) on which CI charged GST 6.52" in problem["reason"]
    assert list(validated.invoices["invoice_no"]) == ["P2"]  # the other branch-day still posts
    assert validated.quarantined_days[["branch_code", "total_incl_cents"]].values.tolist() == [["AKL01", 5000]]

    _, books = books_of(docs, rules(voucher_gst="taxed_at_sale"))
    akl = books.documents.set_index("branch_code").loc["AKL01"]
    assert items_of(akl) == [(LIABILITY, D("50.00"), D("6.52"), "OUTPUT2")] and akl["tax_cents"] == 652


def test_a_voucher_sold_without_a_liability_account_is_quarantined():
    validated = validate_takings(read([pos("P1", [voucher("25.00")], [("CASH", "25.00")])]), rules(voucher_liability_account=None))
    assert list(validated.quarantine["check"]) == ["unmapped_voucher_liability"]
    assert validated.unmapped_codes == {"voucher_liability_account": ["VOUCHER"]}


# -- what is not takings -----------------------------------------------------------------------------

def test_account_sales_and_web_orders_are_excluded_and_the_tills_cash_for_them_is_theirs():
    docs = [
        pos("P1", [line("1", "40.00")], [("CASH", "40.00")]),
        pos("P2", [line("1", "100.00")], [("ACCOUNT", "70.00"), ("CASH", "30.00")]),  # part paid on account
        pos("W1", [line("1", "55.00")], [("ONLINE", "55.00")], source="ERETAILER", branch="WEB"),
        pos("A1", [line("1", "300.00")], [("ACCOUNT", "300.00")], source="ACCOUNT"),
    ]
    validated, books = books_of(docs, counted={("AKL01", DAY, "CASH"): "69.50"})
    assert list(validated.invoices["invoice_no"]) == ["P1"]
    excluded = validated.excluded.set_index("invoice_no")
    assert excluded["process"].to_dict() == {"W1": "E-Retailer", "A1": "account customers", "P2": "account customers"}
    assert "P2: paid ON ACCOUNT" in excluded.loc["P2", "reason"]
    document = only(books.documents)
    # the cash-up counted 69.50 of an expected 70.00: 30.00 is the account sale's (its own process pays
    # it on that invoice), the rest is takings, short by 0.50
    assert items_of(document) == [("201", D("40.00"), D("5.22"), "OUTPUT2"), (OVER_SHORT, D("-0.50"), D("0.00"), "NONE")]
    assert payments_of(books) == [("EOD-AKL01-20261001/CASH", "611", D("39.50"))]
    tender = only(books.tenders)
    assert tender[["expected_cents", "counted_cents", "other_process_cents", "takings_cents"]].tolist() == [7000, 6950, 3000, 3950]


def test_held_and_void_documents_are_skipped_kept_as_evidence_and_never_counted():
    docs = [pos("P1", [line("1", "40.00")], [("CASH", "40.00")]),
            pos("P2", [line("1", "12.00")], [("CASH", "12.00")], status="VOID"),
            pos("P3", [line("1", "8.00")], [("EFTPOS", "8.00")], status="HELD")]
    validated, books = books_of(docs)
    assert validated.skipped[["invoice_no", "status"]].values.tolist() == [["P2", "VOID"], ["P3", "HELD"]]
    assert payments_of(books) == [("EOD-AKL01-20261001/CASH", "611", D("40.00"))]
    evidence = takings_source_evidence(validated)
    assert evidence["returned"] == {DAY: frozenset({"P1", "P2", "P3"})}
    assert evidence["withdrawn"] == frozenset({"P2"}) and evidence["held_back"] == {"P3": "HELD in CI (not final)"}


# -- quarantine, per branch-day, with reasons ---------------------------------------------------------

def test_an_unmapped_tender_quarantines_its_branch_day_and_names_it_the_rest_still_posts():
    docs = [pos("P1", [line("1", "40.00")], [("LAYBY", "40.00")]), pos("P2", [line("1", "5.00")], [("CASH", "5.00")], branch="WLG01")]
    validated, books = books_of(docs)
    problem = only(validated.quarantine)
    assert (problem["check"], problem["branch_code"], problem["tender_type"]) == ("unmapped_tender_type", "AKL01", "LAYBY")
    assert problem["reason"] == "branch AKL01 2026-10-01: tender LAYBY (counted 40.00) has no Xero account (tender_accounts.LAYBY)"
    assert validated.unmapped_codes == {"tender_type": ["LAYBY"]}
    assert list(books.documents["branch_code"]) == ["WLG01"]
    assert takings_source_evidence(validated)["held_back"]["P1"].startswith("quarantined: branch AKL01")


def test_a_tender_with_money_but_no_cash_up_is_quarantined_unless_counted_is_taken_as_expected():
    docs = [pos("P1", [line("1", "40.00")], [("CASH", "15.00"), ("EFTPOS", "25.00")])]
    validated = validate_takings(read(docs, drop={("AKL01", DAY, "EFTPOS")}), rules())
    problem = only(validated.quarantine)
    assert (problem["check"], problem["tender_type"]) == ("missing_cash_up", "EFTPOS")
    assert "tender EFTPOS took 25.00 but ci_cash_ups has no row for it" in problem["reason"] and "P1" in problem["reason"]

    validated, books = books_of(docs, rules(missing_cash_up="counted_is_expected"), drop={("AKL01", DAY, "EFTPOS")})
    assert validated.tender_days.set_index("tender_type")["counted_is_expected"].to_dict() == {"CASH": False, "EFTPOS": True}
    assert payments_of(books) == [("EOD-AKL01-20261001/CASH", "611", D("15.00")), ("EOD-AKL01-20261001/EFTPOS", "612", D("25.00"))]


def test_ci_inconsistent_with_itself_is_quarantined_with_the_figures():
    # P1's tenders pay 5.00 less than its total; the EFTPOS cash-up expects 1.00 more than was tendered
    docs = [pos("P1", [line("1", "40.00")], [("CASH", "35.00")]), pos("P2", [line("1", "9.00")], [("EFTPOS", "9.00")])]
    validated = validate_takings(read(docs, drop={("AKL01", DAY, "EFTPOS")}, extra=[("AKL01", DAY, "EFTPOS", "10.00", "10.00")]), rules())
    reasons = validated.quarantine.set_index("check")["reason"].to_dict()
    assert set(reasons) == {"tenders_not_documents", "cash_up_expected"}
    assert reasons["tenders_not_documents"] == (
        "branch AKL01 2026-10-01: the tenders add up to 44.00 but the documents to 49.00 (CI disagrees with itself by -5.00); "
        "documents whose tenders differ from their total: P1 (tenders 35.00, total 40.00)")
    assert reasons["cash_up_expected"] == (
        "branch AKL01 2026-10-01: the cash-up of EFTPOS expects 10.00 but that day's EFTPOS tenders add up to 9.00 "
        "(CI disagrees with itself by 1.00)")
    assert validated.invoices.empty and validated.quarantined_days["ci_invoice_nos"].tolist() == [("P1", "P2")]


def test_a_cash_up_of_a_day_without_tenders_must_expect_nothing():
    docs = [pos("P1", [line("1", "10.00")], [("CASH", "10.00")])]
    validated = validate_takings(read(docs, extra=[("CHC01", DAY, "CASH", "12.00", "12.00")]), rules())
    problem = only(validated.quarantine)
    assert (problem["branch_code"], problem["check"]) == ("CHC01", "cash_up_expected")
    # … and a till float counted over on a day without sales is still over: a document of that alone
    validated, books = books_of(docs, extra=[("CHC01", DAY, "CASH", "0.00", "0.40")])
    chc = books.documents.set_index("branch_code").loc["CHC01"]
    assert items_of(chc) == [(OVER_SHORT, D("0.40"), D("0.00"), "NONE")]
    assert chc["payload"]["LineItems"][0]["Tracking"] == [{"Name": "CI Branches", "Option": "Christchurch Riccarton"}]
    assert [p for p in payments_of(books) if "CHC01" in p[0]] == [("EOD-CHC01-20261001/CASH", "611", D("0.40"))]


def test_over_short_without_an_account_is_quarantined():
    validated = validate_takings(read([pos("P1", [line("1", "10.00")], [("CASH", "10.00")])], counted={("AKL01", DAY, "CASH"): "9.00"}),
                                 rules(over_short_account=None))
    assert list(validated.quarantine["check"]) == ["unmapped_over_short"]
    assert "CASH is short by 1.00 (counted 9.00, expected 10.00)" in validated.quarantine["reason"].iloc[0]


def test_a_bad_document_holds_back_its_whole_branch_day():
    bad = line("1", "10.00", line_total_incl=D("11.00"))  # CI's line total is not quantity × price
    docs = [pos("P1", [line("1", "40.00")], [("CASH", "40.00")]), pos("P2", [bad], [("CASH", "11.00")]),
            pos("P3", [line("1", "5.00")], [("CASH", "5.00")], branch="WLG01")]
    validated, books = books_of(docs)
    assert set(validated.quarantine["invoice_no"]) == {"P2"} and set(validated.quarantine["branch_code"]) == {"AKL01"}
    assert validated.quarantined_days[["branch_code", "ci_invoice_nos", "total_incl_cents"]].values.tolist() == [["AKL01", ("P1", "P2"), 5100]]
    assert list(books.documents["branch_code"]) == ["WLG01"]


def test_rows_the_views_repeat_are_quarantined_not_summed():
    docs = [pos("P1", [line("1", "40.00")], [("CASH", "40.00")]), pos("P2", [line("1", "5.00")], [("CASH", "5.00")], branch="WLG01")]
    validated = validate_takings(read(docs, repeat_tender="P1", repeat_cash_up=("WLG01", DAY, "CASH")), rules())
    checks = validated.quarantine.set_index("branch_code")["check"]
    assert sorted(validated.quarantine["check"]) == ["cash_up_expected", "duplicate_cash_up", "duplicate_tender", "tenders_not_documents"]
    assert checks.loc["WLG01"] == "duplicate_cash_up" and validated.invoices.empty


def test_an_unknown_gst_or_analysis_code_is_quarantined_by_the_document_checks():
    docs = [pos("P1", [line("1", "40.00", analysis_code="TOYS")], [("CASH", "40.00")])]
    validated = validate_takings(read(docs), rules())
    assert list(validated.quarantine["check"]) == ["unmapped_analysis_code"]
    assert validated.unmapped_codes == {"analysis_code": ["TOYS"]}


# -- DRAFT sites: the zero-balance invoice -------------------------------------------------------------

def test_a_draft_site_gets_a_zero_balance_invoice_with_the_tenders_as_negative_lines_and_no_payments(contract):
    docs = [
        pos("P1", [line("1", "100.00")], [("EFTPOS", "100.00")]),
        pos("C1", [line("-1", "130.00", analysis_code="FOOTWEAR")], [("CASH", "-130.00")], doc_type="CREDIT", original_invoice_no="P0"),
    ]
    site = rules(status="DRAFT", zero_balance=True)
    _, books = books_of(docs, site, counted={("AKL01", DAY, "CASH"): "-130.50"})
    document = only(books.documents)
    assert (document["endpoint"], document["status"], document["total_cents"]) == ("Invoices", "DRAFT", 0)  # never a credit note
    assert items_of(document) == [
        ("201", D("100.00"), D("13.04"), "OUTPUT2"), ("202", D("-130.00"), D("-16.96"), "OUTPUT2"),
        (OVER_SHORT, D("-0.50"), D("0.00"), "NONE"), ("611", D("130.50"), D("0.00"), "NONE"), ("612", D("-100.00"), D("0.00"), "NONE"),
    ]
    assert document["tax_cents"] == 1304 - 1696 and books.payments.empty
    assert books.tenders.set_index("tender_type")["movement_cents"].to_dict() == {"CASH": -13050, "EFTPOS": 10000}
    assert only(books.totals)["layout"] == "zero_balance"
    assert_conforms(contract, books)
    with pytest.raises(ValueError, match="DRAFT need zero_balance"):
        TakingsRules(status="DRAFT")


# -- exact to the cent, whatever the day -------------------------------------------------------------

def random_days(seed: int, days: int = 60) -> tuple[list[dict], dict[tuple[str, str, str], str]]:
    """Branch-days of random sales and refunds, vouchers sold and redeemed, rounding, per-unit GST,
    split tenders, cash out, account sales, and tills over and short."""
    rng = random.Random(seed)
    docs, counted = [], {}
    expected: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: D(0))
    for number in range(days):
        day = f"2026-10-{1 + number % 28:02d}"
        branch = ["AKL01", "WLG01", "CHC01"][number % 3] if number < 84 else "AKL01"
        refunds_heavy = rng.random() < 0.25
        for count in range(rng.randint(1, 6)):
            credit = rng.random() < (0.7 if refunds_heavy else 0.15)
            sign = "-" if credit else ""
            items = []
            for _ in range(rng.randint(1, 4)):
                code = rng.choice(["S", "S", "S", "Z", "E"])
                price = rng.choice(["0.04", "1.49", "4.6667", "19.99", "33.3333", "120.00"])
                item = line(sign + rng.choice(["1", "2", "3", "7"]), price, gst_code=code, analysis_code=rng.choice(list(ACCOUNTS)))
                if code == "S" and rng.random() < 0.3 and abs(item["line_gst"]) > D("0.05"):
                    item["line_gst"] += rng.choice([CENT, -CENT])  # CI's own rounding of GST
                items.append(item)
            if not credit and rng.random() < 0.2:
                items.append(voucher(rng.choice(["20.00", "50.00"])))
            if rng.random() < 0.2:
                items.append(cash_rounding(rng.choice(["0.01", "-0.02", "0.02"])))
            total = sum((item["line_total_incl"] for item in items), D(0))
            tenders: list[tuple[str, str]] = []
            if not credit and total > 40 and rng.random() < 0.3:
                part = D(rng.choice(["10.00", "20.00"]))
                tenders.append((rng.choice(["GIFT_VOUCHER", "CASH", "ACCOUNT"]), str(part)))
                total -= part
            if not credit and total > 0 and rng.random() < 0.15:
                tenders += [("EFTPOS", str(total + 20)), ("CASH", "-20.00")]  # cash out
            else:
                tenders.append((rng.choice(["CASH", "EFTPOS", "VISA", "MASTERCARD", "AMEX"]), str(total)))
            doc = pos(f"P{number:03d}{count}", items, tenders, day=day, branch=branch,
                      doc_type="CREDIT" if credit else "INVOICE", original_invoice_no="P0" if credit else None)
            docs.append(doc)
            for tender_type, amount in tenders:
                if tender_type != "ACCOUNT":
                    expected[(branch, day, tender_type)] += D(amount)
    for key, amount in expected.items():
        if key[2] == "CASH" and rng.random() < 0.4:
            counted[key] = str(amount + D(rng.randint(-300, 300)) / 100)
    return docs, counted


def expected_movements(docs: list[dict], counted: dict[tuple[str, str, str], str]) -> dict[tuple[str, str], dict[str, Decimal]]:
    """How CI's figures say each account must move per branch-day (debit +), worked out from the rows:
    a tender's account by what was counted less the tenders of account sales; a sales, voucher or
    rounding account by −Σ its lines; the over/short account by −(counted − expected)."""
    moves: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: D(0)))
    expected: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: D(0))
    other: dict[tuple[str, str, str], Decimal] = defaultdict(lambda: D(0))
    for doc in docs:
        on_account = any(tender_type == "ACCOUNT" for tender_type, _ in doc["tenders"])
        for tender_type, amount in doc["tenders"]:
            if tender_type == "ACCOUNT":
                continue
            expected[(doc["branch_code"], doc["business_date"], tender_type)] += D(amount)
            if on_account:
                other[(doc["branch_code"], doc["business_date"], tender_type)] += D(amount)
        if on_account:
            continue
        for item in doc["lines"]:
            account = {"VOUCHER": LIABILITY, "ROUNDING": ROUNDING_ACCOUNT}.get(item["analysis_code"]) or ACCOUNTS[item["analysis_code"]]
            moves[(doc["business_date"], doc["branch_code"])][account] -= item["line_total_incl"]
    for (branch, day, tender_type), amount in expected.items():
        count = D(counted.get((branch, day, tender_type), amount))
        account = LIABILITY if tender_type == "GIFT_VOUCHER" else TENDERS[tender_type]
        moves[(day, branch)][account] += count - other[(branch, day, tender_type)]
        moves[(day, branch)][OVER_SHORT] -= count - amount
    return moves


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("zero_balance", [False, True])
def test_every_account_moves_by_exactly_cis_figures_whatever_the_day(seed, zero_balance, contract):
    docs, counted = random_days(seed)
    site = rules(status="DRAFT" if zero_balance else "AUTHORISED", zero_balance=zero_balance, gst_tolerance_cents=2)
    validated, books = books_of(docs, site, counted=counted)
    assert validated.quarantine.empty, validated.quarantine.to_dict("records")
    XeroDocuments.validate(books.documents)
    if not zero_balance:
        XeroPayments.validate(books.payments)
        assert {"Invoices", "CreditNotes"} <= set(books.documents["endpoint"])  # both sides of the sign rule occur
        assert len(books.tender_lines)  # and negative tenders
    ci_gst = defaultdict(lambda: D(0))
    for doc in docs:
        if not any(tender_type == "ACCOUNT" for tender_type, _ in doc["tenders"]):
            ci_gst[(doc["business_date"], doc["branch_code"])] += sum((item["line_gst"] for item in doc["lines"]), D(0))
    moves = expected_movements(docs, counted)
    paid = defaultdict(list)
    for payment in books.payments.itertuples():
        paid[payment.document_key].append(payment)
    seen = set()
    for document in books.documents.itertuples():
        key = (document.business_date, document.branch_code)
        seen.add(key)
        sign = -1 if document.endpoint == "CreditNotes" else 1
        items = document.payload["LineItems"]
        for item in items:
            assert item["TaxAmount"] == xero_tax(item["LineAmount"], item["TaxType"]), item
            assert item["Tracking"] == [{"Name": "CI Branches", "Option": SHOPS[document.branch_code]}]
        total = sum((item["LineAmount"] for item in items), D(0))
        assert total >= 0 and decimal_to_cents(total) == document.total_cents
        assert sign * sum((item["TaxAmount"] for item in items), D(0)) == ci_gst[key] == sign * D(document.tax_cents) / 100
        payments = sum((p.payload["Amount"] for p in paid[document.document_key]), D(0))
        assert payments == (D(0) if zero_balance else total)  # fully paid (or the 0.00 invoice)
        if zero_balance:
            assert total == 0 and document.endpoint == "Invoices" and document.status == "DRAFT"
        moved: dict[str, Decimal] = defaultdict(lambda: D(0))
        for item in items:
            moved[item["AccountCode"]] -= sign * item["LineAmount"]
        for payment in paid[document.document_key]:
            moved[payment.account_code] += sign * payment.payload["Amount"]
        wanted = {account: amount for account, amount in moves[key].items() if amount}
        assert {account: amount for account, amount in moved.items() if amount} == wanted, document.number
    assert seen | set(zip(books.no_document["business_date"], books.no_document["branch_code"])) == set(moves)
    assert_conforms(contract, books)


# -- E-Retailer tenders ------------------------------------------------------------------------------

WEB_TENDERS = TenderMapping(accounts={"ONLINE": "615", "VISA": "613", "MASTERCARD": "613", "PAYPAL": "616", "AFTERPAY": "617"},
                            voucher_liability_account=LIABILITY)


def web(number: str, lines: list[dict], tenders: list[tuple[str, str]], day: str = DAY, **overrides: Any) -> dict:
    overrides.setdefault("branch", "WEB")
    doc = document(number, day, lines, **overrides)
    doc["tenders"] = tenders
    return doc


def web_books(docs: list[dict], mode: str, status: str = "AUTHORISED", mapping: TenderMapping = WEB_TENDERS):
    site = EretailerRules(mode=mode, status=status, sales_accounts=ACCOUNTS)
    taken = read(docs)
    validated = validate_sales_documents(taken.documents, site)
    documents = build_eretailer_documents(validated.invoices, validated.lines, site)
    return documents, build_eretailer_tender_payments(documents, validated.invoices, taken.tenders, mapping)


def web_orders() -> list[dict]:
    return [
        web("W1", [line("1", "80.00")], [("ONLINE", "80.00")]),
        web("W2", [line("1", "45.00", analysis_code="FOOTWEAR")], [("GIFT_VOUCHER", "20.00"), ("PAYPAL", "25.00")]),  # redeemed on the web
        web("W3", [line("-1", "30.00")], [("PAYPAL", "-30.00")], doc_type="CREDIT", original_invoice_no="W0"),
        web("W4", [line("1", "60.00")], [("AFTERPAY", "60.00")], day=NEXT_DAY),
    ]


def test_web_orders_are_paid_per_document_in_detail_mode(contract):
    documents, paid = web_books(web_orders(), "detail")
    assert paid.problems.empty and paid.tender_lines.empty and paid.documents is documents
    assert [(p.payment_key, p.document_endpoint, p.account_code, p.amount_cents, p.business_date) for p in paid.payments.itertuples()] == [
        ("W1/ONLINE", "Invoices", "615", 8000, DAY), ("W2/GIFT_VOUCHER", "Invoices", LIABILITY, 2000, DAY),
        ("W2/PAYPAL", "Invoices", "616", 2500, DAY), ("W3/PAYPAL", "CreditNotes", "616", 3000, DAY),  # a refund
        ("W4/AFTERPAY", "Invoices", "617", 6000, NEXT_DAY),
    ]
    assert paid.payments.set_index("payment_key").loc["W3/PAYPAL", "payload"] == {
        "CreditNote": {"CreditNoteNumber": "W3"}, "Account": {"Code": "616"}, "Date": DAY, "Amount": D("30.00"), "Reference": "W3/PAYPAL"}
    by_document = paid.payments.groupby("document_key")["amount_cents"].sum()
    assert by_document.to_dict() == documents.set_index("document_key")["total_cents"].to_dict()  # every document PAID
    XeroPayments.validate(paid.payments)
    assert spec_problems(contract, "Payments", list(paid.payments["payload"])) == []


def test_web_orders_are_paid_per_tender_per_day_in_summary_mode_with_the_sign_rule(contract):
    documents, paid = web_books(web_orders(), "summary")
    assert paid.problems.empty
    assert [(p.payment_key, p.account_code, p.amount_cents) for p in paid.payments.itertuples()] == [
        ("ER-20261001/GIFT_VOUCHER", LIABILITY, 2000), ("ER-20261001/ONLINE", "615", 8000), ("ER-20261002/AFTERPAY", "617", 6000)]
    # the day's PayPal nets to −5.00 (25.00 taken, 30.00 refunded): not a payment but a line to its account
    assert paid.tender_lines[["document_key", "tender_type", "account_code", "amount_cents"]].values.tolist() == [
        ["eretailer/summary/2026-10-01", "PAYPAL", "616", 500]]
    day = paid.documents.set_index("document_key").loc["eretailer/summary/2026-10-01"]
    before = documents.set_index("document_key").loc["eretailer/summary/2026-10-01"]
    assert day["total_cents"] == before["total_cents"] + 500 == 10000 and day["line_count"] == before["line_count"] + 1
    added = day["payload"]["LineItems"][-1]
    assert (added["AccountCode"], added["LineAmount"], added["TaxAmount"], added["TaxType"]) == ("616", D("5.00"), D("0.00"), "NONE")
    assert before["payload"]["LineItems"][-1]["AccountCode"] != "616"  # the documents given are not changed
    by_document = paid.payments.groupby("document_key")["amount_cents"].sum()
    assert by_document.to_dict() == paid.documents.set_index("document_key")["total_cents"].to_dict()
    assert spec_problems(contract, "Invoices", list(paid.documents["payload"])) == []
    assert spec_problems(contract, "Payments", list(paid.payments["payload"])) == []


def test_web_documents_whose_tenders_cannot_be_paid_are_left_unpaid_with_the_reason():
    docs = [
        web("W1", [line("1", "80.00")], [("ONLINE", "70.00")]),  # 10.00 short in CI
        web("W2", [line("1", "45.00")], [("LAYBUY", "45.00")]),  # no account for the tender
        web("W3", [line("1", "15.00")], [("VISA", "15.00")]),
    ]
    _, paid = web_books(docs, "detail")
    assert list(paid.payments["payment_key"]) == ["W3/VISA"]
    reasons = paid.problems.set_index("number")["reason"].to_dict()
    assert reasons == {
        "W1": "W1: its tenders add up to 70.00, its total is 80.00 (CI disagrees with itself): W1 is posted unpaid",
        "W2": "W2: tender LAYBUY (45.00) has no Xero account (tender_accounts.LAYBUY): the document is posted unpaid",
    }
    _, drafts = web_books(docs[2:], "detail", status="DRAFT")
    assert drafts.payments.empty and list(drafts.problems["check"]) == ["draft"]


def test_a_summary_day_that_nets_to_zero_leaves_its_moving_tenders_reported():
    docs = [web("W1", [line("1", "30.00")], [("ONLINE", "30.00")]),
            web("W2", [line("-1", "30.00")], [("PAYPAL", "-30.00")], doc_type="CREDIT", original_invoice_no="W1")]
    documents, paid = web_books(docs, "summary")
    assert documents.empty and paid.payments.empty
    assert [(p.invoice_no, p.check) for p in paid.problems.itertuples()] == [("W1", "no_document"), ("W2", "no_document")]
    assert "ONLINE 30.00" in paid.problems["reason"].iloc[0]


def test_the_books_check_finds_a_cent_out_of_place():
    docs = [pos("P1", [line("2", "25.00"), voucher("20.00")], [("EFTPOS", "60.00"), ("CASH", "10.00")])]
    site = rules()
    validated = validate_takings(read(docs, counted={("AKL01", DAY, "CASH"): "10.10"}), site)
    books = build_takings_documents(validated, site)
    assert check_takings_books(validated, books, site).empty

    def tampered(change) -> set[str]:
        documents, payments = books.documents.copy(), books.payments.copy()
        payloads = [json.loads(dumps_exact(payload), parse_float=D) for payload in documents["payload"]]
        payment_payloads = [json.loads(dumps_exact(payload), parse_float=D) for payload in payments["payload"]]
        change(payloads[0], payment_payloads, payments)
        documents["payload"], payments["payload"] = payloads, payment_payloads
        found = check_takings_books(validated, dataclasses.replace(books, documents=documents, payments=payments), site)
        return set(found["check"])

    def sales_cent(payload, _payments, _frame):
        payload["LineItems"][0]["LineAmount"] += CENT  # 50.01: the same tax, but not CI's sales
    assert tampered(sales_cent) == {"totals", "account_movement"}

    def sales_dollar(payload, _payments, _frame):
        payload["LineItems"][0]["LineAmount"] += 1  # 51.00: Xero's tax is no longer the TaxAmount sent
    assert tampered(sales_dollar) == {"totals", "line_tax", "account_movement"}

    def wrong_account(payload, _payments, frame):
        frame.loc[0, "account_code"] = "613"
    assert tampered(wrong_account) == {"account_movement"}

    def cent_short(_payload, _payments, frame):
        frame.loc[1, "amount_cents"] -= 1
    assert tampered(cent_short) == {"paid", "account_movement"}

    def no_tracking(payload, _payments, _frame):
        del payload["LineItems"][1]["Tracking"]
    assert tampered(no_tracking) == {"tracking"}

    def voucher_as_sales(payload, _payments, _frame):
        payload["LineItems"][1]["AccountCode"] = "201"
    assert tampered(voucher_as_sales) == {"account_movement"}


# -- against the sandbox Xero, over HTTP ---------------------------------------------------------------

def test_the_sandbox_xero_takes_every_layout_and_each_document_ends_paid(make_api):
    api = make_api(SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"CI Branches": list(SHOPS.values())}))
    docs = [
        # AKL01: vouchers sold and redeemed, a refund paid in cash (a CASH line), the till over
        pos("P1", [voucher("50.00"), line("3", "0.04", line_gst=D("0.03")), line("1", "20.00")], [("EFTPOS", "70.12")]),
        pos("P2", [line("1", "35.00", analysis_code="FOOTWEAR")], [("GIFT_VOUCHER", "30.00"), ("CASH", "5.00")]),
        pos("C1", [line("-1", "12.00")], [("CASH", "-12.00")], doc_type="CREDIT", original_invoice_no="P0"),
        # WLG01: a net-negative day, refunded by VISA, with EFTPOS as a line
        pos("P3", [line("1", "10.00")], [("EFTPOS", "10.00")], branch="WLG01"),
        pos("C2", [line("-2", "40.00")], [("VISA", "-80.00")], branch="WLG01", doc_type="CREDIT", original_invoice_no="P0"),
    ]
    _, books = books_of(docs, counted={("AKL01", DAY, "CASH"): "-6.50"})
    assert set(books.documents["endpoint"]) == {"Invoices", "CreditNotes"} and len(books.tender_lines) == 2
    for endpoint in ("Invoices", "CreditNotes"):
        payloads = [row.payload for row in books.documents.itertuples() if row.endpoint == endpoint]
        api.create(endpoint, *payloads)
    made = api.create("Payments", *books.payments["payload"])
    assert [payment["Reference"] for payment in made] == list(books.payments["payment_key"])
    invoice = api.get("Invoices", InvoiceNumbers="EOD-AKL01-20261001")["Invoices"][0]
    # 93.12 of documents, 0.50 over, 6.50 of cash refunded as a line; GST 0.03 + 2.61 + 4.57 − 1.57
    assert (invoice["Status"], invoice["AmountDue"], invoice["Total"], invoice["TotalTax"]) == ("PAID", D("0.00"), D("100.12"), D("5.64"))
    note = api.get("CreditNotes", where='CreditNoteNumber=="EODCR-WLG01-20261001"')["CreditNotes"][0]
    assert (note["Status"], note["RemainingCredit"], note["Total"]) == ("PAID", D("0.00"), D("80.00"))
    found = api.get("Payments", where='Reference=="EOD-AKL01-20261001/GIFT_VOUCHER"')["Payments"]
    assert [(p["Account"]["Code"], p["Amount"]) for p in found] == [(LIABILITY, D("30.00"))]

    # a DRAFT site: the 0.00 invoice goes in as it is, with nothing to pay
    site = rules(status="DRAFT", zero_balance=True, number_prefix="EODZ-")
    _, drafts = books_of(docs, site, counted={("AKL01", DAY, "CASH"): "-6.50"})
    saved = api.create("Invoices", *drafts.documents["payload"])
    assert {(doc["Status"], doc["Total"]) for doc in saved} == {("DRAFT", D("0.00"))} and drafts.payments.empty
