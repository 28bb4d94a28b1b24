"""Account customers, pure (processes.md §2, §5): which CI documents post, the invoices and credit notes
with the payments of their other tenders, the contacts and allocations they need, and the blocking
check of the books.

The expected figures are worked out here with Decimal from the handcrafted CI rows (what Xero computes
of a line, its tax), never from the code under test; payloads are checked against Xero's OpenAPI spec
(the committed subset), and the sandbox Xero takes them over HTTP with unitdp=4 and computes the same
totals."""

from __future__ import annotations

import dataclasses
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pytest

from ci_xero_pipeline.books.daybook import source_evidence
from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.books.receivables import (
    ALLOCATION_COLUMNS, CONTACT_COLUMNS, ReceivablesRules, allocations_wanted, build_receivables_documents,
    check_receivables_books, contacts_wanted, credit_balances, receivables_rules, validate_receivables,
)
from ci_xero_pipeline.books.schemas import XeroDocuments
from ci_xero_pipeline.books.tenders import PAYMENT_COLUMNS, XeroPayments
from ci_xero_pipeline.ci.extract import EXCESS_DECIMAL_COLUMNS, TENDER_EXCESS_COLUMNS
from ci_xero_pipeline.money import decimal_to_cents, dumps_exact
from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .sales_frames import document, line
from .test_books_takings import SHOPS, contract, read, spec_problems  # noqa: F401  (contract: a fixture)
from .test_sandbox_accounting import _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
CENT = D("0.01")
DAY = "2026-10-01"
ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"}
TENDERS = {"CASH": "611", "EFTPOS": "612", "VISA": "613"}
LIABILITY = "835"
OPTION = [{"Name": "CI Branches", "Option": "Auckland Queen Street"}]


def rules(**changes: Any) -> ReceivablesRules:
    values: dict[str, Any] = dict(sales_accounts=ACCOUNTS, tender_accounts=TENDERS, voucher_liability_account=LIABILITY,
                                  voucher_analysis_codes=("VOUCHER",), invoice_prefix="AR-", credit_note_prefix="ARC-")
    values.update(changes)
    return ReceivablesRules(**values)


def account(number: str, lines: list[dict], tenders: list[tuple[str, str]] = (), day: str = DAY, credit: bool = False,
            code: str | None = "C100", name: str | None = "Jane Smith", source: str = "ACCOUNT", **overrides: Any) -> dict:
    """A CI account-customer document (source ACCOUNT unless said), with its tenders."""
    doc = document(number, day, lines, doc_type="CREDIT" if credit else "INVOICE", branch="AKL01", source=source,
                   customer_code=code, customer_name=name, customer_email=f"{(code or 'x').lower()}@example.co.nz",
                   order_ref=None, **overrides)
    doc["tenders"] = list(tenders)
    return doc


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def xero_tax(amount: Decimal) -> Decimal:
    """Xero's tax of a GST-inclusive line at 15 %."""
    return half_up(amount * 15 / 115)


def xero_line_amount(item: dict) -> Decimal:
    """What Xero makes of a line: Quantity × UnitAmount − DiscountAmount, rounded half up."""
    return half_up(item["Quantity"] * item["UnitAmount"] - item.get("DiscountAmount", D(0)))


def books_of(docs: list[dict], site: ReceivablesRules | None = None, **read_options: Any):
    site = site or rules()
    validated = validate_receivables(read(docs, **read_options), site)
    books = build_receivables_documents(validated, site)
    problems = check_receivables_books(validated, books, site)
    assert problems.empty, problems.to_dict("records")
    return validated, books


def by_number(books: Any) -> dict[str, Any]:
    return {row.number: row for row in books.documents.itertuples(index=False)}


def checks_of(validated: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for number, check in zip(validated.quarantine["invoice_no"], validated.quarantine["check"]):
        found.setdefault(number, []).append(check)
    return found


def reason_of(validated: Any, number: str) -> str:
    return " | ".join(validated.quarantine.loc[validated.quarantine["invoice_no"] == number, "reason"])


# -- one day of invoices and credits ----------------------------------------------------------------------

def test_an_invoice_and_a_credit_are_an_accrec_invoice_and_a_positive_credit_note_numbered_by_ci(contract):
    docs = [
        account("A1", [line("2", "25.00"), line("1", "30.00", analysis_code="FOOTWEAR")], [("ACCOUNT", "80.00")]),
        account("A2", [line("-1", "25.00")], [("ACCOUNT", "-25.00")], credit=True, original_invoice_no="A1"),
    ]
    validated, books = books_of(docs)
    assert validated.quarantine.empty and list(books.documents.columns) == DOCUMENT_COLUMNS
    XeroDocuments.validate(books.documents)
    invoice, credit = by_number(books)["AR-A1"], by_number(books)["ARC-A2"]
    assert (invoice.endpoint, invoice.document_type, invoice.document_key, invoice.ci_invoice_nos) == (
        "Invoices", "ACCREC", "receivables/A1", ("A1",))
    payload = invoice.payload
    assert payload["InvoiceNumber"] == "AR-A1" and payload["Contact"] == {"ContactNumber": "C100", "Name": "Jane Smith"}
    assert (payload["Date"], payload["DueDate"], payload["LineAmountTypes"], payload["Status"]) == (
        DAY, "2026-10-21", "Inclusive", "AUTHORISED")
    assert [(i["AccountCode"], i["Quantity"], i["UnitAmount"], i["LineAmount"], i["TaxAmount"], i["TaxType"], i["Tracking"])
            for i in payload["LineItems"]] == [
        ("201", D("2.000"), D("25.0000"), D("50.00"), xero_tax(D("50.00")), "OUTPUT2", OPTION),
        ("202", D("1.000"), D("30.0000"), D("30.00"), xero_tax(D("30.00")), "OUTPUT2", OPTION),
    ]
    assert (invoice.total_cents, invoice.tax_cents) == (8000, 652 + 391)
    # Xero's credit note amounts are positive: CI's −25.00 line is 25.00 on it
    assert (credit.endpoint, credit.document_type, credit.payload["CreditNoteNumber"]) == ("CreditNotes", "ACCRECCREDIT", "ARC-A2")
    assert "DueDate" not in credit.payload and credit.payload["Reference"] == "credit for AR-A1"
    item = credit.payload["LineItems"][0]
    assert (item["Quantity"], item["UnitAmount"], item["LineAmount"], item["TaxAmount"]) == (D("1.000"), D("25.0000"), D("25.00"), D("3.26"))
    assert (credit.total_cents, credit.tax_cents) == (2500, 326)
    assert books.payments.empty and list(books.payments.columns) == PAYMENT_COLUMNS  # all of it on account
    assert books.totals.set_index("number")["on_account_cents"].to_dict() == {"AR-A1": 8000, "ARC-A2": 2500}
    for endpoint in ("Invoices", "CreditNotes"):
        assert spec_problems(contract, endpoint, [r.payload for r in books.documents.itertuples() if r.endpoint == endpoint]) == []


def test_quantities_keep_3_places_unit_prices_4_and_a_discount_gives_cis_line_total():
    # 2.5 × 10.1234 − 1.00 = 24.3085 → CI 24.31; 0.333 × 3.0003 = 0.99909... → 1.00
    docs = [account("A1", [line("2.5", "10.1234", discount="1.00"), line("0.333", "3.0003", analysis_code="ACCESSORIES")])]
    _, books = books_of(docs)
    items = by_number(books)["AR-A1"].payload["LineItems"]
    assert [(i["Quantity"], i["UnitAmount"], i.get("DiscountAmount"), i["LineAmount"]) for i in items] == [
        (D("2.500"), D("10.1234"), D("1.00"), D("24.31")), (D("0.333"), D("3.0003"), None, D("1.00"))]
    assert [xero_line_amount(i) for i in items] == [i["LineAmount"] for i in items]  # Xero's arithmetic gives CI's
    assert [i["TaxAmount"] for i in items] == [xero_tax(D("24.31")), xero_tax(D("1.00"))]


def test_a_discounted_credit_line_carries_no_discount_and_xeros_amount_is_still_cis():
    # CI: −round(3 × 19.99 − 5.00) = −54.97; Xero takes no discount on a credit note
    docs = [account("A9", [line("-3", "19.99", discount="5.00")], [("ACCOUNT", "-54.97")], credit=True, original_invoice_no="A0")]
    _, books = books_of(docs)
    item = by_number(books)["ARC-A9"].payload["LineItems"][0]
    assert "DiscountAmount" not in item and item["LineAmount"] == D("54.97") == xero_line_amount(item)
    assert item["TaxAmount"] == xero_tax(D("54.97"))


def test_gst_ci_rounds_its_own_way_goes_on_an_adjustment_pair_so_the_document_carries_cis_gst():
    # CI computes GST per unit: 7 × 0.40 = 2.80 carries 0.37, CI says 7 × 0.05 = 0.35
    docs = [account("A1", [line("7", "0.40", line_gst=D("0.35")), line("1", "11.50")])]
    _, books = books_of(docs)
    invoice = by_number(books)["AR-A1"]
    items = invoice.payload["LineItems"]
    assert [i["TaxAmount"] for i in items[:2]] == [xero_tax(D("2.80")), xero_tax(D("11.50"))]
    pair = items[2:]
    assert len(pair) == 2 and pair[0]["LineAmount"] == -pair[1]["LineAmount"] and pair[1]["TaxType"] == "NONE"
    assert pair[0]["TaxAmount"] == xero_tax(pair[0]["LineAmount"]) == D("-0.02")
    assert invoice.tax_cents == 35 + 150 == sum(decimal_to_cents(i["TaxAmount"]) for i in items)
    assert invoice.total_cents == 1430 and all(i["Tracking"] == OPTION for i in items)


def test_a_description_over_4000_characters_is_cut_and_the_cut_is_reported():
    text = "Merino " * 700  # 4,900 characters
    docs = [account("A1", [line("1", "10.00", description=text)])]
    validated, books = books_of(docs)
    item = by_number(books)["AR-A1"].payload["LineItems"][0]
    assert item["Description"] == text[:4000]
    notice = books.notices[books.notices["kind"] == "description_cut"]
    assert notice[["invoice_no", "line_no"]].values.tolist() == [["A1", 1]]
    assert "4,900 characters, cut to Xero's 4,000" in notice["message"].iloc[0]


def test_a_gift_voucher_sold_on_account_goes_to_the_liability_without_gst_and_one_with_gst_is_quarantined():
    voucher = line("1", "50.00", gst_code="E", analysis_code="VOUCHER", sku=None, description="Gift voucher")
    _, books = books_of([account("A1", [voucher, line("1", "23.00")])])
    items = by_number(books)["AR-A1"].payload["LineItems"]
    assert [(i["AccountCode"], i["TaxType"], i["TaxAmount"]) for i in items] == [(LIABILITY, "NONE", D("0.00")), ("201", "OUTPUT2", D("3.00"))]
    taxed = line("1", "57.50", gst_code="S", analysis_code="VOUCHER", sku=None, description="Gift voucher")
    validated = validate_receivables(read([account("A2", [taxed])]), rules())
    assert checks_of(validated) == {"A2": ["voucher_gst"]} and "A2 line 1: a gift voucher sold" in reason_of(validated, "A2")
    assert validated.invoices.empty


# -- tenders: the ACCOUNT part stays due, the others are payments --------------------------------------------

def test_a_pos_sale_paid_partly_on_account_is_an_invoice_paid_by_its_eftpos_with_the_rest_due(contract):
    docs = [account("P7", [line("1", "120.00")], [("ACCOUNT", "70.00"), ("EFTPOS", "50.00")], source="POS")]
    validated, books = books_of(docs)
    XeroPayments.validate(books.payments)
    payment = books.payments.iloc[0]
    assert (payment["payment_key"], payment["account_code"], payment["amount_cents"], payment["document_key"]) == (
        "AR-P7/EFTPOS", "612", 5000, "receivables/P7")
    assert payment["payload"] == {"Invoice": {"InvoiceNumber": "AR-P7"}, "Account": {"Code": "612"}, "Date": DAY,
                                  "Amount": D("50.00"), "Reference": "AR-P7/EFTPOS"}
    assert books.totals.iloc[0][["payments_cents", "on_account_cents"]].tolist() == [5000, 7000]
    assert spec_problems(contract, "Payments", list(books.payments["payload"])) == []


def test_a_credit_refunded_in_part_by_cash_is_a_refund_payment_and_the_rest_stays_as_credit():
    docs = [account("A2", [line("-1", "30.00")], [("ACCOUNT", "-20.00"), ("CASH", "-10.00")], credit=True, original_invoice_no="A1")]
    _, books = books_of(docs)
    payment = books.payments.iloc[0]
    assert (payment["payment_key"], payment["document_endpoint"], payment["amount_cents"]) == ("ARC-A2/CASH", "CreditNotes", 1000)
    assert payment["payload"]["CreditNote"] == {"CreditNoteNumber": "ARC-A2"}
    assert books.totals.iloc[0]["on_account_cents"] == 2000


def test_no_payments_when_the_site_does_not_pay_tenders_and_a_draft_site_cannot_pay_them():
    docs = [account("P7", [line("1", "120.00")], [("ACCOUNT", "70.00"), ("EFTPOS", "50.00")], source="POS")]
    _, books = books_of(docs, rules(pay_tenders=False))
    assert books.payments.empty and books.totals.iloc[0]["on_account_cents"] == 12000
    _, drafts = books_of(docs, rules(pay_tenders=False, status="DRAFT"))
    assert drafts.payments.empty and by_number(drafts)["AR-P7"].payload["Status"] == "DRAFT"
    with pytest.raises(ValueError, match="DRAFT cannot have their tenders paid"):
        rules(status="DRAFT")


@pytest.mark.parametrize("tenders, check, words", [
    ([("ACCOUNT", "20.00"), ("BITCOIN", "10.00")], "unmapped_tender_type", "tender BITCOIN (10.00) has no Xero account (tender_accounts.BITCOIN)"),
    ([("ACCOUNT", "20.00"), ("CASH", "9.00")], "tenders_not_document", "its tenders add up to 29.00"),
    ([("ACCOUNT", "40.00"), ("CASH", "-10.00")], "tender_against_document", "tender CASH -10.00 runs against the invoice"),
    ([("ACCOUNT", "-5.00"), ("CASH", "35.00")], "account_tender_against_document", "come to 35.00, more than the document's 30.00"),
])
def test_tenders_that_cannot_be_paid_as_ci_has_them_quarantine_the_document_by_name(tenders, check, words):
    docs = [account("A5", [line("1", "30.00")], tenders), account("A6", [line("1", "10.00")], [("ACCOUNT", "10.00")])]
    validated = validate_receivables(read(docs), rules())
    assert checks_of(validated) == {"A5": [check]} and words in reason_of(validated, "A5")
    assert list(validated.invoices["invoice_no"]) == ["A6"]  # the rest still posts
    if check == "unmapped_tender_type":
        assert validated.unmapped_codes == {"tender_type": ["BITCOIN"]}


def test_a_tender_the_view_repeats_or_with_more_decimals_than_the_contract_quarantines_its_document():
    docs = [account("A5", [line("1", "30.00")], [("ACCOUNT", "30.00")]), account("A6", [line("1", "10.00")], [("ACCOUNT", "10.00")])]
    validated = validate_receivables(read(docs, repeat_tender="A5"), rules())
    assert checks_of(validated) == {"A5": ["duplicate_tender"]}
    base = read(docs)
    excess = pd.DataFrame([{"business_date": DAY, "branch_code": "AKL01", "invoice_no": "A6", "tender_no": 1,
                            "tender_type": "ACCOUNT", "view": "ci_sales_tenders", "column": "amount", "value": "10.004",
                            "places": 3, "reason": "A6 tender 1: amount 10.004 has 3 decimals; the contract gives 2"}],
                          columns=TENDER_EXCESS_COLUMNS)
    validated = validate_receivables(dataclasses.replace(base, excess_decimals=excess), rules())
    assert checks_of(validated) == {"A6": ["excess_decimals"]} and "10.004" in reason_of(validated, "A6")


# -- quarantine: each problem names the document -------------------------------------------------------------

def test_a_document_without_customer_code_is_quarantined_never_matched_by_name():
    validated = validate_receivables(read([account("A1", [line("1", "10.00")], code=None), account("A2", [line("1", "5.00")], code="  ")]), rules())
    assert checks_of(validated) == {"A1": ["missing_customer_code"], "A2": ["missing_customer_code"]}
    assert reason_of(validated, "A1").startswith("A1: an account customer's invoice without customer_code")


def test_unmapped_codes_gst_off_the_rate_a_header_off_its_lines_and_excess_decimals_are_quarantined():
    docs = [
        account("A1", [line("1", "10.00", analysis_code="TOYS")]),
        account("A2", [line("1", "10.00", gst_code="X")]),
        account("A3", [line("1", "23.00", line_gst=D("2.00"))]),  # 15 % of 23.00 is 3.00
        account("A4", [line("1", "10.00")], total_incl=D("11.00")),
        account("A5", [line("1", "10.00")]),
        account("A6", [line("1", "10.00")]),
    ]
    base = read(docs)
    excess = pd.DataFrame([{"business_date": DAY, "invoice_no": "A5", "line_no": 1, "column": "unit_price_incl",
                            "value": "10.00001", "places": 5, "reason": "A5 line 1: unit_price_incl 10.00001 has 5 decimals"}],
                          columns=EXCESS_DECIMAL_COLUMNS)
    excess["line_no"] = excess["line_no"].astype("Int64")
    documents = dataclasses.replace(base.documents, excess_decimals=excess)
    validated = validate_receivables(dataclasses.replace(base, documents=documents), rules())
    found = checks_of(validated)
    assert found["A1"] == ["unmapped_analysis_code"] and "analysis code TOYS has no Xero sales account" in reason_of(validated, "A1")
    assert "unmapped_gst_code" in found["A2"]
    assert found["A3"] == ["ci_contract"] and "GST 2.00 does not fit gst_code S on 23.00" in reason_of(validated, "A3")
    assert found["A4"] == ["totals"] and "total_incl 11.00 is not the sum of its lines 10.00" in reason_of(validated, "A4")
    assert found["A5"] == ["excess_decimals"]
    assert list(validated.invoices["invoice_no"]) == ["A6"]
    assert validated.unmapped_codes["analysis_code"] == ["TOYS"]


def test_held_and_void_are_excluded_and_counted_and_void_is_evidence_of_withdrawal():
    docs = [account("A1", [line("1", "10.00")]), account("A2", [line("1", "12.00")], status="VOID"),
            account("A3", [line("1", "8.00")], status="HELD")]
    validated, books = books_of(docs)
    assert validated.skipped[["invoice_no", "status"]].values.tolist() == [["A2", "VOID"], ["A3", "HELD"]]
    assert list(books.documents["number"]) == ["AR-A1"]
    evidence = source_evidence(validated)
    assert evidence["returned"] == {DAY: frozenset({"A1", "A2", "A3"})}
    assert evidence["withdrawn"] == frozenset({"A2"}) and evidence["held_back"] == {"A3": "HELD in CI (not final)"}


def test_documents_of_other_processes_in_the_read_are_excluded_not_posted():
    docs = [account("P1", [line("1", "40.00")], [("CASH", "40.00")], source="POS", code=None, name=None),
            account("W1", [line("1", "55.00")], [("ONLINE", "55.00")], source="ERETAILER"),
            account("P2", [line("1", "100.00")], [("ACCOUNT", "70.00"), ("CASH", "30.00")], source="POS"),
            account("A1", [line("1", "300.00")])]
    validated, books = books_of(docs)
    assert validated.excluded.set_index("invoice_no")["process"].to_dict() == {"P1": "takings", "W1": "E-Retailer"}
    assert sorted(books.documents["number"]) == ["AR-A1", "AR-P2"]
    assert list(books.payments["payment_key"]) == ["AR-P2/CASH"]


# -- contacts -----------------------------------------------------------------------------------------------

def test_contacts_are_one_per_customer_code_and_look_alike_names_stay_two_contacts():
    docs = [account("A1", [line("1", "10.00")], code="C100", name="Jane Smith"),
            account("A2", [line("1", "20.00")], code="C200", name="JANE  SMITH "),
            account("A3", [line("1", "30.00")], code="C100", name="Jane Smith", day=DAY)]
    validated, books = books_of(docs)
    contacts = contacts_wanted(validated, rules())
    assert list(contacts.columns) == CONTACT_COLUMNS
    assert contacts[["contact_number", "name", "role", "source_keys"]].values.tolist() == [
        ["C100", "Jane Smith", "customer", ["A1", "A3"]], ["C200", "JANE SMITH", "customer", ["A2"]]]
    assert contacts["email"].tolist() == ["c100@example.co.nz", "c200@example.co.nz"]
    assert {row.number: row.payload["Contact"]["ContactNumber"] for row in books.documents.itertuples()} == {
        "AR-A1": "C100", "AR-A2": "C200", "AR-A3": "C100"}
    site = rules(contact_name_format="{customer_name} ({customer_code})")
    assert contacts_wanted(validate_receivables(read(docs), site), site)["name"].tolist() == ["Jane Smith (C100)", "JANE SMITH (C200)"]
    with pytest.raises(ValueError, match="unknown placeholder"):
        rules(contact_name_format="{customer_email}")


# -- allocations --------------------------------------------------------------------------------------------

def test_each_final_credit_wants_an_allocation_to_its_original_even_one_on_another_day():
    docs = [account("A1", [line("1", "50.00")]),
            account("A2", [line("-1", "20.00")], credit=True, original_invoice_no="A1"),
            account("A3", [line("-1", "15.00")], credit=True, original_invoice_no="A0"),  # original not in this read
            account("A4", [line("-1", "15.00")], credit=True)]  # no original: it stays as credit
    validated, books = books_of(docs)
    wanted = allocations_wanted(validated, rules(), books.documents)
    assert list(wanted.columns) == ALLOCATION_COLUMNS
    assert wanted[["allocation_key", "business_date", "credit_document_key", "credit_number", "invoice_number",
                   "ci_credit_no", "ci_invoice_no"]].values.tolist() == [
        ["ARC-A2>AR-A1", DAY, "receivables/A2", "ARC-A2", "AR-A1", "A2", "A1"],
        ["ARC-A3>AR-A0", DAY, "receivables/A3", "ARC-A3", "AR-A0", "A3", "A0"]]
    drafts = rules(status="DRAFT", pay_tenders=False)  # Xero allocates only AUTHORISED documents
    validated = validate_receivables(read(docs), drafts)
    assert allocations_wanted(validated, drafts, build_receivables_documents(validated, drafts).documents).empty


def test_a_credit_whose_original_is_not_an_account_invoice_of_the_customer_posts_but_is_reported_not_allocated():
    docs = [account("W1", [line("1", "55.00")], [("ONLINE", "55.00")], source="ERETAILER"),
            account("A5", [line("1", "50.00")], code="C200"),
            account("A2", [line("-1", "20.00")], credit=True, original_invoice_no="W1"),
            account("A3", [line("-1", "20.00")], credit=True, original_invoice_no="A5")]
    validated, books = books_of(docs)
    assert sorted(books.documents["number"]) == ["AR-A5", "ARC-A2", "ARC-A3"]  # report only: the credits still post
    assert allocations_wanted(validated, rules(), books.documents).empty
    notices = validated.notices.set_index("invoice_no")
    assert notices.loc["A2", "kind"] == "original_not_account_invoice" and "W1, which is a ERETAILER document" in notices.loc["A2", "message"]
    assert notices.loc["A3", "kind"] == "original_other_customer"


def test_a_credit_refunded_in_full_by_its_tenders_has_nothing_to_allocate():
    docs = [account("A2", [line("-1", "20.00")], [("CASH", "-20.00")], credit=True, original_invoice_no="A1")]
    validated, books = books_of(docs)
    assert list(books.payments["payment_key"]) == ["ARC-A2/CASH"]
    assert allocations_wanted(validated, rules(), books.documents).empty


# -- the blocking check -------------------------------------------------------------------------------------

def test_the_books_check_finds_a_cent_out_of_place():
    docs = [account("P7", [line("2.5", "10.1234", discount="1.00"), line("1", "30.00")], [("ACCOUNT", "44.31"), ("EFTPOS", "10.00")],
                    source="POS")]
    site = rules()
    validated = validate_receivables(read(docs), site)
    books = build_receivables_documents(validated, site)
    assert check_receivables_books(validated, books, site).empty

    def tampered(change) -> set[str]:
        documents, payments = books.documents.copy(), books.payments.copy()
        payloads = [json.loads(dumps_exact(p), parse_float=D) for p in documents["payload"]]
        payment_payloads = [json.loads(dumps_exact(p), parse_float=D) for p in payments["payload"]]
        documents["payload"], payments["payload"] = payloads, payment_payloads
        replaced = change(payloads[0], documents, payments)
        documents = documents if replaced is None else replaced
        return set(check_receivables_books(validated, dataclasses.replace(books, documents=documents, payments=payments), site)["check"])

    def discount_dropped(payload, _documents, _payments):
        del payload["LineItems"][0]["DiscountAmount"]  # Xero would make 25.31 of it, not CI's 24.31
    assert tampered(discount_dropped) == {"xero_line_amount"}

    def unit_amount_rounded(payload, _documents, _payments):
        payload["LineItems"][0]["UnitAmount"] = D("10.12")  # without unitdp=4: 2.5 × 10.12 − 1 = 24.30
    assert tampered(unit_amount_rounded) == {"xero_line_amount"}

    def tax_off(payload, _documents, _payments):
        payload["LineItems"][1]["TaxAmount"] += CENT
    assert tampered(tax_off) == {"line_tax", "totals"}

    def overpaid(_payload, _documents, payments):
        payments.loc[0, "amount_cents"] = 6000
    assert tampered(overpaid) == {"overpaid", "on_account"}

    def by_name(payload, _documents, _payments):
        payload["Contact"] = {"Name": "Jane Smith"}
    assert tampered(by_name) == {"contact"}

    def no_tracking(payload, _documents, _payments):
        del payload["LineItems"][1]["Tracking"]
    assert tampered(no_tracking) == {"tracking"}

    def wrong_total(_payload, documents, _payments):
        documents.loc[0, "total_cents"] += 1
    assert tampered(wrong_total) == {"ci_totals", "totals", "on_account"}

    def a_document_lost(_payload, documents, _payments):
        return documents.iloc[0:0]
    assert tampered(a_document_lost) == {"one_document"}


def test_a_credits_figures_as_xero_holds_them_and_what_remains_says_why():
    docs = [account("A2", [line("-1", "60.00")], [("ACCOUNT", "-50.00"), ("CASH", "-10.00")], credit=True, original_invoice_no="A1"),
            account("A3", [line("-1", "15.00")], credit=True)]
    _, books = books_of(docs)
    held = {
        ("CreditNotes", "ARC-A2"): {"Status": "AUTHORISED", "Total": D("60.00"), "RemainingCredit": D("20.00"),
                                    "Allocations": [{"Amount": D("30.00")}], "Payments": [{"Amount": D("10.00")}]},
        ("CreditNotes", "ARC-A3"): {"Status": "AUTHORISED", "Total": D("15.00"), "RemainingCredit": D("14.00"),
                                    "Allocations": [], "Payments": []},
    }
    allocations = pd.DataFrame([{"credit_document_key": "receivables/A2", "outcome": "allocated",
                                 "message": "allocated 30.00, the invoice's amount due; 20.00 stays as credit"}])
    results = books.documents[["document_key", "business_date", "endpoint", "number", "ci_invoice_nos"]].assign(outcome="posted")
    balances = credit_balances(results, held, allocations).set_index("number")
    assert balances.loc["ARC-A2", ["total_cents", "allocated_cents", "refunded_cents", "remaining_cents"]].tolist() == [6000, 3000, 1000, 2000]
    assert "20.00 stays as credit" in balances.loc["ARC-A2", "why_unallocated"]
    assert balances.loc["ARC-A3", ["remaining_cents", "allocation_outcome"]].tolist() == [1400, "not_wanted"]
    assert "no allocation was asked for" in balances.loc["ARC-A3", "why_unallocated"]


def test_the_rules_come_from_the_site_settings():
    class Section:
        def __init__(self, **values: Any):
            self.__dict__.update(values)

    settings = Section(
        mapping=Section(sales_accounts=ACCOUNTS, tax_types={"S": "OUTPUT2", "Z": "ZERORATED", "E": "NONE"},
                        gst_rates={"S": D(15), "Z": D(0), "E": D(0)}, gst_tolerance_cents=2, tender_accounts=TENDERS,
                        voucher_liability_account=LIABILITY, voucher_analysis_codes=["VOUCHER"]),
        tracking=Section(category_name="Shops", branch_options={"AKL01": "Queen St"}),
        receivables=Section(status="AUTHORISED", invoice_prefix="I-", credit_note_prefix="C-", due_days=7,
                            contact_name_format="{customer_name}", pay_tenders=True),
    )
    site = receivables_rules(settings)
    assert (site.tracking_category, site.invoice_number("A1"), site.credit_number("A2"), site.due_days) == ("Shops", "I-A1", "C-A2", 7)
    assert site.document_rules().sales_accounts["VOUCHER"] == LIABILITY


# -- against the sandbox Xero, over HTTP ---------------------------------------------------------------------

def test_the_sandbox_xero_takes_the_documents_with_unitdp_4_and_holds_cis_totals(make_api):
    api = make_api(SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"CI Branches": list(SHOPS.values())}))
    docs = [
        account("P7", [line("2.5", "10.1234", discount="1.00"), line("7", "0.40", line_gst=D("0.35"))],
                [("ACCOUNT", "17.11"), ("EFTPOS", "10.00")], source="POS"),
        account("A9", [line("-3", "19.99", discount="5.00")], [("ACCOUNT", "-44.97"), ("CASH", "-10.00")], credit=True,
                original_invoice_no="P7"),
    ]
    _, books = books_of(docs)
    # without unitdp=4 Xero rounds 10.1234 to 10.12 and the line no longer makes CI's 24.31: the request needs it
    unrounded = {**by_number(books)["AR-P7"].payload, "InvoiceNumber": "AR-P7-TRY"}
    answer = api.put("Invoices", {"Invoices": [unrounded]}, summarizeErrors="false").json()["Invoices"][0]
    assert answer["StatusAttributeString"] == "ERROR" and "does not match the expected line total" in str(answer["ValidationErrors"])
    for endpoint in ("Invoices", "CreditNotes"):
        api.create(endpoint, *[r.payload for r in books.documents.itertuples() if r.endpoint == endpoint], unitdp=4)
    api.create("Payments", *books.payments["payload"])
    invoice = api.get("Invoices", InvoiceNumbers="AR-P7", unitdp=4)["Invoices"][0]
    assert (invoice["Total"], invoice["TotalTax"], invoice["AmountDue"], invoice["Status"]) == (D("27.11"), D("3.52"), D("17.11"), "AUTHORISED")
    assert [item["UnitAmount"] for item in invoice["LineItems"][:2]] == [D("10.1234"), D("0.4000")]
    note = api.get("CreditNotes", where='CreditNoteNumber=="ARC-A9"')["CreditNotes"][0]
    assert (note["Total"], note["TotalTax"], note["RemainingCredit"]) == (D("54.97"), xero_tax(D("54.97")), D("44.97"))
