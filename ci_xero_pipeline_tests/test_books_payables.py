"""Inwards goods as supplier bills, pure (processes.md §3): validation per goods receipt, one ACCPAY bill
(or ACCPAYCREDIT for goods returned) per FINAL receipt, GST on exclusive amounts as Xero computes it with
CI's GST reached by adjustment lines, and the blocking check of the books.

Expected figures are worked out here with Decimal from the handcrafted CI rows, never from the code under
test; the payloads are checked against Xero's OpenAPI spec (the committed subset) and posted to the
sandbox Xero over HTTP."""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pytest
import requests

from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.books.payables import (
    NO_UI_URL,
    PayablesRules,
    amount_for_exclusive_tax,
    bills_as_approved,
    bills_at_posting,
    build_payables_documents,
    check_payables_books,
    exclusive_tax_cents,
    payables_contacts,
    payables_dollars_by_day,
    payables_source_evidence,
    validate_payables,
)
from ci_xero_pipeline.money import dumps_exact
from ci_xero_pipeline.sandbox.server import SandboxOrganisation

from .test_client_conformance import SCHEMA_FILE, TENANT, XeroContract
from .test_sandbox_accounting import _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
CENT = D("0.01")
DAY, NEXT_DAY = "2026-10-01", "2026-10-02"
PURCHASES = {"APPAREL": "300", "FOOTWEAR": "300", "ACCESSORIES": "301", "GIFTS": "302"}
INVENTORY = "631"
BRANCH_NAMES = {"AKL01": "Auckland Queen Street", "WLG01": "Wellington Lambton Quay"}
SUPPLIERS = {"SUP01": "Kiwi Knitwear Ltd", "SUP02": "Southern Soles Ltd"}
RATES = {"INPUT2": D(15), "ZERORATED": D(0), "NONE": D(0)}


def rules(**changes: Any) -> PayablesRules:
    return PayablesRules(**{"purchases_accounts": PURCHASES, "url_base": "http://dagster.example:3000", **changes})


# -- GoodsReceived-like frames ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Read:
    """What ci.extract.GoodsReceived holds (built here until the extraction lands; the books read only
    these four frames)."""

    receipts: pd.DataFrame
    lines: pd.DataFrame
    orphan_lines: pd.DataFrame
    excess_decimals: pd.DataFrame


def cents(amount: Decimal) -> int:
    return int(amount * 100)


def gst_of(total: Decimal, code: str) -> Decimal:
    return (total * D("0.15")).quantize(CENT, rounding=ROUND_HALF_UP) if code == "S" else D("0.00")


def line(quantity: str, cost: str, gst_code: str = "S", analysis_code: str = "APPAREL", **overrides: Any) -> dict:
    q, c = D(quantity), D(cost)
    total = (q * c).quantize(CENT, rounding=ROUND_HALF_UP)
    values = {"sku": "SKU-1", "description": "Merino crew tee", "quantity": q, "unit_cost_excl": c,
              "line_total_excl": total, "line_gst": gst_of(total, gst_code), "gst_code": gst_code, "analysis_code": analysis_code}
    values.update(overrides)
    return values


def receipt(number: str, lines: list[dict], supplier: str | None = "SUP01", invoice_no: str | None = None,
            day: str = DAY, branch: str | None = "AKL01", status: str = "FINAL", **overrides: Any) -> dict:
    values = {"receipt_no": number, "supplier_code": supplier, "supplier_name": SUPPLIERS.get(supplier or ""),
              "branch_code": branch, "branch_name": BRANCH_NAMES.get(branch or ""), "business_date": day,
              "supplier_invoice_no": invoice_no if invoice_no is not None else f"INV-{number}", "status": status,
              "updated_at": pd.Timestamp(f"{day} 15:00"), "currency_code": "NZD", "lines": lines}
    values.update(overrides)
    return values


def read_of(receipts: list[dict], orphan_lines: list[dict] | None = None, excess: list[dict] | None = None) -> Read:
    heads, rows = [], []
    for doc in receipts:
        lines = doc["lines"]
        total = doc.get("total_excl", sum((item["line_total_excl"] for item in lines), D(0)))
        gst = doc.get("total_gst", sum((item["line_gst"] for item in lines), D(0)))
        heads.append({**{k: v for k, v in doc.items() if k not in ("lines", "total_excl", "total_gst")},
                      "total_excl_cents": cents(total), "total_gst_cents": cents(gst)})
        for number, item in enumerate(lines, start=1):
            rows.append({"receipt_no": doc["receipt_no"], "line_no": item.get("line_no", number), "sku": item["sku"],
                         "description": item["description"], "quantity_x1000": int(item["quantity"] * 1000),
                         "unit_cost_excl_x10000": int(item["unit_cost_excl"] * 10000),
                         "line_total_excl_cents": cents(item["line_total_excl"]), "line_gst_cents": cents(item["line_gst"]),
                         "gst_code": item["gst_code"], "analysis_code": item["analysis_code"]})
    receipts_frame = pd.DataFrame(heads)
    for column in ("total_excl_cents", "total_gst_cents"):
        receipts_frame[column] = receipts_frame[column].astype("Int64")
    lines_frame = pd.DataFrame(rows)
    for column in ("line_no", "quantity_x1000", "unit_cost_excl_x10000", "line_total_excl_cents", "line_gst_cents"):
        lines_frame[column] = lines_frame[column].astype("Int64")
    orphans = pd.DataFrame(orphan_lines or [], columns=["business_date", "receipt_no", "line_no", "line_total_excl_cents",
                                                        "line_gst_cents", "reason"])
    excess_frame = pd.DataFrame(excess or [], columns=["business_date", "receipt_no", "line_no", "column", "value", "places", "reason"])
    try:  # the extraction's own dataclass, once it is there: the books must take it as they take this one
        from ci_xero_pipeline.ci.extract import GoodsReceived
    except ImportError:
        return Read(receipts_frame, lines_frame, orphans, excess_frame)
    return GoodsReceived(receipts=receipts_frame, lines=lines_frame, orphan_lines=orphans, excess_decimals=excess_frame)


def books_of(receipts: list[dict], site: PayablesRules | None = None, **read: Any):
    site = site or rules()
    validated = validate_payables(read_of(receipts, **read), site)
    return validated, build_payables_documents(validated, site)


def document_of(books: Any, receipt_no: str) -> Any:
    [row] = [row for row in books.documents.itertuples(index=False) if row.number == receipt_no]
    return row


def items_of(document: Any) -> list[tuple[str, Decimal, Decimal, str]]:
    return [(i["AccountCode"], i["LineAmount"], i["TaxAmount"], i["TaxType"]) for i in document.payload["LineItems"]]


# -- the payloads against Xero's spec ----------------------------------------------------------------
@pytest.fixture(scope="module")
def contract() -> XeroContract:
    return XeroContract(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def spec_problems(contract: XeroContract, endpoint: str, payloads: list[dict]) -> list[str]:
    request = requests.Request(
        "PUT", f"https://api.xero.com/api.xro/2.0/{endpoint}", params={"summarizeErrors": "false", "unitdp": "4"},
        data=dumps_exact({endpoint: payloads}).encode(), headers=TENANT,
    ).prepare()
    return contract.request_problems("accounting", f"/{endpoint}", request)


def assert_conforms(contract: XeroContract, books: Any) -> None:
    for endpoint, path in (("Bills", "Invoices"), ("CreditNotes", "CreditNotes")):
        payloads = [row.payload for row in books.documents.itertuples() if row.endpoint == endpoint]
        if payloads:
            assert spec_problems(contract, path, payloads) == []


def xero_tax(amount: Decimal, tax_type: str) -> Decimal:
    """What Xero computes on a GST-exclusive line: amount × rate, half up to the cent."""
    return (amount * RATES[tax_type] / 100).quantize(CENT, rounding=ROUND_HALF_UP)


# -- one receipt, one bill ---------------------------------------------------------------------------
def test_a_final_receipt_is_one_submitted_bill_to_the_supplier_by_contact_number(contract):
    validated, books = books_of([receipt("GR1", [line("12", "18.5000"), line("2.500", "7.1234", analysis_code="GIFTS"),
                                                 line("3", "4.0000", gst_code="Z", analysis_code="ACCESSORIES")],
                                         invoice_no="KK-70001")])
    assert list(books.documents.columns) == DOCUMENT_COLUMNS and validated.quarantine.empty
    bill = document_of(books, "GR1")
    payload = bill.payload
    assert (bill.document_key, bill.endpoint, bill.document_type, bill.status) == ("payables/GR1", "Bills", "ACCPAY", "SUBMITTED")
    assert (payload["Type"], payload["InvoiceNumber"], payload["Reference"], payload["Status"]) == ("ACCPAY", "KK-70001", "GR1", "SUBMITTED")
    assert payload["Contact"] == {"ContactNumber": "SUP01", "Name": "Kiwi Knitwear Ltd"}
    assert (payload["Date"], payload["DueDate"], payload["LineAmountTypes"]) == (DAY, "2026-10-21", "Exclusive")
    assert payload["Url"] == "http://dagster.example:3000/assets/posted_payables?view=partitions&partition=2026-10-01&ci_receipt=GR1"
    # each CI line as it is: quantity to 3 places, unit cost to 4, CI's line total; Xero's own tax on it
    lines = payload["LineItems"]
    assert [(i["Quantity"], i["UnitAmount"], i["LineAmount"]) for i in lines] == [
        (D("12.000"), D("18.5000"), D("222.00")), (D("2.500"), D("7.1234"), D("17.81")), (D("3.000"), D("4.0000"), D("12.00"))]
    assert [str(i["Quantity"]) for i in lines] == ["12.000", "2.500", "3.000"] and str(lines[1]["UnitAmount"]) == "7.1234"
    assert items_of(bill) == [("300", D("222.00"), D("33.30"), "INPUT2"), ("302", D("17.81"), D("2.67"), "INPUT2"),
                              ("301", D("12.00"), D("0.00"), "ZERORATED")]
    assert all(i["Tracking"] == [{"Name": "CI Branches", "Option": "Auckland Queen Street"}] for i in lines)
    # total_cents is Xero's Total (SubTotal + GST); tax_cents its TotalTax
    assert (bill.total_cents, bill.tax_cents, bill.line_count, bill.ci_invoice_nos) == (28778, 3597, 3, ("GR1",))
    assert check_payables_books(validated, books, rules()).empty
    assert_conforms(contract, books)


def test_two_receipts_with_one_supplier_invoice_number_are_two_bills_with_keys_of_their_own():
    _, books = books_of([
        receipt("GR1", [line("1", "10.0000")], supplier="SUP01", invoice_no="70001"),
        receipt("GR2", [line("2", "10.0000")], supplier="SUP02", invoice_no="70001"),  # another supplier, the same number
        receipt("GR3", [line("3", "10.0000")], supplier="SUP01", invoice_no="70001"),  # one supplier, two deliveries
    ])
    documents = books.documents
    assert list(documents["document_key"]) == ["payables/GR1", "payables/GR2", "payables/GR3"]
    assert list(documents["number"]) == ["GR1", "GR2", "GR3"]  # the ledger's identity: CI's receipt, unique
    assert {p["InvoiceNumber"] for p in documents["payload"]} == {"70001"}
    assert [p["Url"].rsplit("ci_receipt=", 1)[1] for p in documents["payload"]] == ["GR1", "GR2", "GR3"]
    assert [p["Contact"]["ContactNumber"] for p in documents["payload"]] == ["SUP01", "SUP02", "SUP01"]
    assert list(documents["total_cents"]) == [1150, 2300, 3450]


def test_goods_returned_are_a_supplier_credit_note_with_positive_amounts(contract):
    validated, books = books_of([receipt("GR9", [line("-4", "18.5000"), line("-1", "6.0100", gst_code="Z")], invoice_no="CN-551")])
    credit = document_of(books, "GR9")
    payload = credit.payload
    assert (credit.endpoint, credit.document_type, payload["Type"]) == ("CreditNotes", "ACCPAYCREDIT", "ACCPAYCREDIT")
    assert payload["CreditNoteNumber"] == "CN-551" and payload["Reference"] == "GR9"
    assert "Url" not in payload and "DueDate" not in payload  # Xero's CreditNote has no Url: the Reference says the receipt
    assert [(i["Quantity"], i["UnitAmount"], i["LineAmount"], i["TaxAmount"]) for i in payload["LineItems"]] == [
        (D("4.000"), D("18.5000"), D("74.00"), D("11.10")), (D("1.000"), D("6.0100"), D("6.01"), D("0.00"))]
    # CI's −80.01 + GST −11.10 is a credit of 91.11, shown positive
    assert (credit.total_cents, credit.tax_cents) == (9111, 1110)
    assert check_payables_books(validated, books, rules()).empty
    assert_conforms(contract, books)


def test_lines_go_to_the_inventory_account_when_cogs_is_on_else_to_the_purchases_account_of_their_code():
    receipts = [receipt("GR1", [line("1", "10.0000", analysis_code="APPAREL"), line("1", "5.0000", analysis_code="GIFTS"),
                                line("1", "2.0000", analysis_code="HOMEWARE")])]
    validated, books = books_of(receipts, rules(cogs_enabled=True, inventory_account=INVENTORY))
    assert validated.quarantine.empty  # perpetual stock: every code's goods are stock on hand, mapped or not
    assert {i["AccountCode"] for i in document_of(books, "GR1").payload["LineItems"]} == {INVENTORY}
    # COGS off: per analysis code, and a code without a purchases account holds the receipt back, named
    validated, books = books_of(receipts)
    assert books.documents.empty
    [reason] = validated.quarantine["reason"]
    assert "GR1" in reason and "SUP01" in reason and "HOMEWARE" in reason and "payables.purchases_accounts.HOMEWARE" in reason
    assert validated.unmapped_codes == {"analysis_code": ["HOMEWARE"]}
    _, books = books_of([receipt("GR1", receipts[0]["lines"][:2])])
    assert [i["AccountCode"] for i in document_of(books, "GR1").payload["LineItems"]] == ["300", "302"]
    with pytest.raises(ValueError, match="inventory_account"):
        rules(cogs_enabled=True)


# -- GST on exclusive amounts ---------------------------------------------------------------------------
@pytest.mark.parametrize("amount, tax", [(7, 1), (10, 2), (3, 0), (-10, -2), (-7, -1), (100, 15), (1999, 300), (0, 0)])
def test_exclusive_tax_is_xeros_half_up_rounding_of_amount_times_rate(amount, tax):
    assert exclusive_tax_cents(amount, D(15)) == tax == int(xero_tax(D(amount) / 100, "INPUT2") * 100)


@pytest.mark.parametrize("tax", [1, 2, 3, 7, -1, -4, 13, 250])
def test_the_adjustment_amount_carries_exactly_the_tax_wanted(tax):
    assert exclusive_tax_cents(amount_for_exclusive_tax(tax, D(15)), D(15)) == tax
    assert exclusive_tax_cents(amount_for_exclusive_tax(tax, D("12.5")), D("12.5")) == tax


def test_gst_ci_rounds_its_own_way_is_reached_by_an_adjustment_pair_and_each_line_keeps_xeros_tax(contract):
    # CI's GST per unit: 3 × round(0.33 × 0.15) = 3 × 0.05 = 0.15 where Xero computes round(0.99 × 0.15) = 0.15;
    # 7 × round(1.45 × 0.15 = 0.2175) = 7 × 0.22 = 1.54 where Xero computes round(10.15 × 0.15 = 1.5225) = 1.52
    lines = [line("7", "1.4500", line_gst=D("1.54")), line("1", "0.1000")]  # 0.10 × 0.15 = 0.015 → 0.02, half up
    validated, books = books_of([receipt("GR5", lines)])
    bill = document_of(books, "GR5")
    items = items_of(bill)
    assert items[:2] == [("300", D("10.15"), D("1.52"), "INPUT2"), ("300", D("0.10"), D("0.02"), "INPUT2")]
    # the pair: a at INPUT2 whose own tax is the 0.02 difference, −a at NONE: SubTotal unchanged, tax CI's
    (_, a, tax_a, type_a), (_, minus_a, tax_b, type_b) = items[2:]
    assert (tax_a, type_a, minus_a, tax_b, type_b) == (D("0.02"), "INPUT2", -a, D("0.00"), "NONE")
    assert xero_tax(a, "INPUT2") == D("0.02")
    assert sum(amount for _, amount, _, _ in items) == D("10.25")  # CI's total_excl
    assert sum(tax for _, _, tax, _ in items) == D("1.56")  # CI's total_gst
    assert (bill.total_cents, bill.tax_cents) == (1181, 156)
    assert all(xero_tax(amount, tax_type) == tax for _, amount, tax, tax_type in items)
    assert "GST adjustment" in bill.payload["LineItems"][2]["Description"]
    assert check_payables_books(validated, books, rules()).empty
    assert_conforms(contract, books)
    # a receipt whose GST is Xero's own needs no pair
    _, plain = books_of([receipt("GR6", [line("7", "1.4500")])])
    assert len(document_of(plain, "GR6").payload["LineItems"]) == 1


# -- what is held back, and why -----------------------------------------------------------------------
def reasons_of(validated: Any, number: str) -> dict[str, str]:
    rows = validated.quarantine[validated.quarantine["receipt_no"] == number]
    return dict(zip(rows["check"], rows["reason"]))


def test_each_problem_quarantines_its_receipt_naming_the_receipt_and_the_supplier_and_the_rest_still_posts():
    receipts = [
        receipt("OK1", [line("1", "10.0000")]),
        receipt("Q1", [line("1", "10.0000", gst_code="X")]),
        receipt("Q2", [line("1", "10.0000")], total_excl=D("11.00")),
        receipt("Q3", [line("1", "10.0000", line_gst=D("1.53"))]),  # 3 cents off 15 %: beyond the tolerance of 2
        receipt("Q4", [line("1", "10.0000")], supplier=None),
        receipt("Q5", [line("1", "10.0000")], invoice_no=""),
        receipt("Q6", [line("1", "10.0000")]),
        receipt("Q7", [line("1", "10.0000")]),
        receipt("Q8", [line("3", "3.3333", line_total_excl=D("10.01"), line_gst=D("1.50"))]),  # 3 × 3.3333 = 10.00
        receipt("Q9", [line("1", "10.0000", gst_code="Z", line_gst=D("0.01"))]),
        receipt("Q10", [line("1", "10.0000")], branch="NOWHERE"),
        receipt("Q11", []),
        receipt("Q12", [line("1", "10.0000", line_no=None)]),
    ]
    excess = [{"business_date": DAY, "receipt_no": "Q6", "line_no": 1, "column": "unit_cost_excl", "value": "10.00005",
               "places": 4, "reason": "Q6 line 1: unit_cost_excl is 10.00005 in CI, with more than the 4 decimals"}]
    orphans = [{"business_date": DAY, "receipt_no": "Q7", "line_no": 2, "line_total_excl_cents": 500, "line_gst_cents": 75,
                "reason": "Q7 line 2: read without its receipt"}]
    validated, books = books_of(receipts, excess=excess, orphan_lines=orphans)
    assert list(books.documents["number"]) == ["OK1"]
    expected = {"Q1": "unmapped_gst_code", "Q2": "header_not_lines", "Q3": "gst_rate", "Q4": "missing_supplier_code",
                "Q5": "missing_supplier_invoice_no", "Q6": "excess_decimals", "Q7": "orphan_line", "Q8": "line_total",
                "Q9": "gst_rate", "Q10": "unmapped_branch_code", "Q11": "no_lines",
                "Q12": "missing_value"}
    for number, check in expected.items():
        found = reasons_of(validated, number)
        assert check in found, (number, found)
        assert f"receipt {number} (supplier " in found[check]
    assert "SUP01, Kiwi Knitwear Ltd" in reasons_of(validated, "Q1")["unmapped_gst_code"]
    assert "supplier unknown" in reasons_of(validated, "Q4")["missing_supplier_code"]
    assert "11.00" in reasons_of(validated, "Q2")["header_not_lines"] and "10.00" in reasons_of(validated, "Q2")["header_not_lines"]
    assert "1.53" in reasons_of(validated, "Q3")["gst_rate"] and "1.50" in reasons_of(validated, "Q3")["gst_rate"]
    assert "10.00005" in reasons_of(validated, "Q6")["excess_decimals"]
    assert "10.01" in reasons_of(validated, "Q8")["line_total"]
    assert validated.unmapped_codes == {"branch_code": ["NOWHERE"], "gst_code": ["X"]}
    held = validated.quarantined_receipts
    assert sorted(held["receipt_no"]) == sorted(expected) and set(held.columns) >= {"total_excl_cents", "reason"}
    # within the tolerance, CI's GST is rounding: posted, and carried exactly
    _, books = books_of([receipt("T1", [line("1", "10.0000", line_gst=D("1.52"))])])
    assert document_of(books, "T1").tax_cents == 152


def test_a_line_read_without_its_receipt_is_listed_never_posted():
    orphans = [{"business_date": DAY, "receipt_no": "GONE", "line_no": 1, "line_total_excl_cents": 500, "line_gst_cents": 75,
                "reason": "GONE line 1: read without its receipt, which ci_goods_received no longer holds"}]
    validated, books = books_of([receipt("OK1", [line("1", "10.0000")])], orphan_lines=orphans)
    assert validated.quarantine.empty and list(books.documents["number"]) == ["OK1"]
    assert list(validated.orphan_lines["receipt_no"]) == ["GONE"] and "no longer holds" in validated.orphan_lines["reason"][0]


def test_held_and_void_receipts_are_skipped_and_a_void_one_is_cis_word_that_its_bill_is_withdrawn():
    validated, books = books_of([
        receipt("GR1", [line("1", "10.0000")]),
        receipt("GR2", [line("1", "10.0000")], status="HELD"),
        receipt("GR3", [line("1", "10.0000")], status="VOID"),
        receipt("GR4", [line("1", "10.0000")], supplier=None),
    ])
    assert list(books.documents["number"]) == ["GR1"]
    assert list(validated.skipped["receipt_no"]) == ["GR2", "GR3"] and validated.quarantine["receipt_no"].unique().tolist() == ["GR4"]
    evidence = payables_source_evidence(validated)
    assert evidence["returned"] == {DAY: frozenset({"GR1", "GR2", "GR3", "GR4"})}
    assert evidence["withdrawn"] == frozenset({"GR3"})
    assert evidence["held_back"]["GR2"] == "HELD in CI (not final)" and evidence["held_back"]["GR4"].startswith("quarantined: ")


def test_a_status_setting_a_contact_name_format_and_a_site_without_a_ui_address():
    site = rules(status="AUTHORISED", contact_name_format="{supplier_name} ({supplier_code})", url_base=None, due_days=7)
    validated, books = books_of([receipt("GR1", [line("1", "10.0000")])], site)
    payload = document_of(books, "GR1").payload
    assert payload["Status"] == "AUTHORISED" and payload["DueDate"] == "2026-10-08"
    assert payload["Contact"] == {"ContactNumber": "SUP01", "Name": "Kiwi Knitwear Ltd (SUP01)"}
    assert payload["Url"] == NO_UI_URL.format(receipt_no="GR1") == "https://ci-xero.invalid/receipts/GR1"
    contacts = payables_contacts(validated, site)
    assert contacts.to_dict("records") == [{"contact_number": "SUP01", "name": "Kiwi Knitwear Ltd (SUP01)", "email": None,
                                            "role": "supplier", "source_keys": ("GR1",), "business_date": DAY}]
    with pytest.raises(ValueError):
        rules(status="PAID")


# -- the blocking check -------------------------------------------------------------------------------------
def test_the_books_check_finds_a_cent_out_of_place():
    validated, books = books_of([receipt("GR1", [line("7", "1.4500", line_gst=D("1.54")), line("2", "5.0000")]),
                                 receipt("GR2", [line("-1", "5.0000")])])
    site = rules()
    assert check_payables_books(validated, books, site).empty

    def tampered(change) -> set[str]:
        documents = books.documents.copy()
        payloads = [copy.deepcopy(p) for p in documents["payload"]]
        change(documents, payloads)
        documents["payload"] = payloads
        return set(check_payables_books(validated, dataclasses.replace(books, documents=documents), site)["check"])

    def line_tax(documents, payloads):
        payloads[0]["LineItems"][0]["TaxAmount"] += CENT  # Xero would not compute it, and the tax is no longer CI's

    def no_tracking(documents, payloads):
        payloads[0]["LineItems"][1]["Tracking"] = []

    def amount(documents, payloads):
        payloads[1]["LineItems"][0]["LineAmount"] += CENT

    def dropped(documents, payloads):
        payloads[0]["LineItems"].pop()  # the balancing line of the GST pair

    def contact(documents, payloads):
        payloads[1]["Contact"]["ContactNumber"] = "SUP02"

    assert tampered(line_tax) == {"line_tax", "ci_total_gst", "frame"}
    assert tampered(no_tracking) == {"tracking"}
    assert tampered(amount) == {"line_amount", "ci_total_excl", "frame"}
    assert tampered(dropped) == {"ci_total_excl", "frame"}
    assert tampered(contact) == {"contact"}
    missing = dataclasses.replace(books, documents=books.documents.iloc[1:])
    assert set(check_payables_books(validated, missing, site)["check"]) == {"document_count"}


# -- after posting: what was posted, what Xero holds now -------------------------------------------------------
def results_of(books: Any, outcome: str = "posted", **xero: Any) -> pd.DataFrame:
    rows = []
    for document in books.documents.itertuples(index=False):
        rows.append({"document_key": document.document_key, "business_date": document.business_date, "endpoint": document.endpoint,
                     "number": document.number, "outcome": outcome, "xero_id": f"id-{document.number}",
                     "total_cents": document.total_cents, "tax_cents": document.tax_cents,
                     "xero_total_cents": xero.get("total", document.total_cents), "xero_tax_cents": xero.get("tax", document.tax_cents),
                     "ci_invoice_nos": document.ci_invoice_nos})
    return pd.DataFrame(rows)


def held_of(books: Any, **changes: Any) -> dict:
    held = {}
    for document in books.documents.itertuples(index=False):
        payload = document.payload
        subtotal = sum(i["LineAmount"] for i in payload["LineItems"])
        tax = sum(i["TaxAmount"] for i in payload["LineItems"])
        field = "CreditNoteID" if document.endpoint == "CreditNotes" else "InvoiceID"
        held[("Invoices", payload.get("InvoiceNumber"))] = {
            field: f"id-{document.number}", "Status": "SUBMITTED", "SubTotal": subtotal, "TotalTax": tax,
            "Total": subtotal + tax, "LineItems": copy.deepcopy(payload["LineItems"]), **changes}
    return held


def test_after_posting_clerk_edits_are_reported_and_every_dollar_is_counted_as_we_posted_it():
    # two bills under one supplier number: Xero's copies are told apart by their ids, not their numbers
    validated, books = books_of([receipt("GR1", [line("2", "10.0000")], invoice_no="7"), receipt("GR2", [line("1", "4.0000")], invoice_no="8"),
                                 receipt("GR3", [line("1", "1.0000")], supplier=None)])
    results = results_of(books)
    held = held_of(books)
    assert bills_at_posting(validated, books, results).empty
    edits, left = bills_as_approved(books, results, held)
    assert edits.empty and left.empty
    dollars = payables_dollars_by_day(validated, books, results, held, [DAY])
    row = dollars.iloc[0]
    assert (row.ci_final_cents, row.in_xero_cents, row.quarantined_cents, row.unaccounted_cents) == (2500, 2400, 100, 0)
    assert (row.ci_final_gst_cents, row.in_xero_gst_cents, row.unaccounted_gst_cents) == (375, 360, 0)

    # the clerk approves GR1 and cuts a line to 18.00: reported, and the day still counts what we posted
    edited = copy.deepcopy(held)
    bill = edited[("Invoices", "7")]
    bill["LineItems"][0].update(LineAmount=D("18.00"), TaxAmount=D("2.70"))
    bill.update(Status="AUTHORISED", SubTotal=D("18.00"), TotalTax=D("2.70"), Total=D("20.70"))
    edits, _ = bills_as_approved(books, results, edited)
    assert set(edits["field"]) == {"subtotal", "tax", "lines"} and set(edits["receipt_no"]) == {"GR1"}
    assert "300 INPUT2 20.00" in edits.set_index("field").loc["lines", "ours"]
    assert payables_dollars_by_day(validated, books, results, edited, [DAY]).iloc[0].unaccounted_cents == 0
    # approving alone is no edit; deleting the bill in Xero is, and its dollars are then not in Xero
    approved = {key: {**value, "Status": "AUTHORISED"} for key, value in held.items()}
    assert bills_as_approved(books, results, approved)[0].empty
    deleted = {**held, ("Invoices", "8"): {**held[("Invoices", "8")], "Status": "DELETED"}}
    edits, _ = bills_as_approved(books, results, deleted)
    assert list(edits["field"]) == ["status"]
    assert payables_dollars_by_day(validated, books, results, deleted, [DAY]).iloc[0].unaccounted_cents == 400

    # Xero answered other figures than CI's at posting: the blocking check says so
    wrong = results_of(books, total=2301)
    assert set(bills_at_posting(validated, books, wrong)["field"]) == {"subtotal"}
    # CI changed a posted bill: left as Xero holds it, listed, and the change stays unaccounted until settled
    changed = results.assign(outcome=["changed_in_xero", "already_posted"])
    _, left = bills_as_approved(books, changed, held)
    assert list(left["receipt_no"]) == ["GR1"]


# -- against the sandbox Xero, over HTTP ---------------------------------------------------------------
def test_the_sandbox_xero_takes_the_bills_and_the_supplier_credit_as_ci_has_them(make_api):
    api = make_api(SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"CI Branches": list(BRANCH_NAMES.values())}))
    site = rules(purchases_accounts={"APPAREL": "300", "GIFTS": "300", "ACCESSORIES": "300"})
    validated, books = books_of([
        receipt("GR1", [line("7", "1.4500", line_gst=D("1.54")), line("2.500", "7.1234", analysis_code="GIFTS"),
                        line("3", "4.0000", gst_code="Z", analysis_code="ACCESSORIES")], invoice_no="70001"),
        receipt("GR2", [line("1", "10.0000")], supplier="SUP02", invoice_no="70001", branch="WLG01"),
        receipt("GR3", [line("-2", "18.5000")], invoice_no="CN-1"),
    ], site)
    assert check_payables_books(validated, books, site).empty
    bills = [row.payload for row in books.documents.itertuples() if row.endpoint == "Bills"]
    credits = [row.payload for row in books.documents.itertuples() if row.endpoint == "CreditNotes"]
    made = api.create("Invoices", *bills, unitdp=4)
    assert [(b["Type"], b["Status"], b["InvoiceNumber"]) for b in made] == [("ACCPAY", "SUBMITTED", "70001")] * 2
    ci = {row.receipt_no: row for row in books.totals.itertuples()}
    for bill in made:
        receipt_no = bill["Url"].rsplit("ci_receipt=", 1)[1]
        assert (bill["SubTotal"], bill["TotalTax"]) == (D(ci[receipt_no].ci_total_excl_cents) / 100, D(ci[receipt_no].ci_total_gst_cents) / 100)
    [credit] = api.create("CreditNotes", *credits, unitdp=4)
    assert (credit["Type"], credit["Total"], credit["TotalTax"], credit["Reference"]) == ("ACCPAYCREDIT", D("42.55"), D("5.55"), "GR3")
    # the suppliers were found (or made) by ContactNumber: one contact each
    numbers = sorted(c.get("ContactNumber") for c in api.get("Contacts")["Contacts"] if c.get("ContactNumber") in SUPPLIERS)
    assert numbers == ["SUP01", "SUP02"]


def test_a_supplier_code_too_long_for_a_contact_number_waits_and_a_format_keeps_suppliers_apart_from_customers():
    long_a, long_b = "S" * 50 + "AAAAAA", "S" * 50 + "BBBBBB"  # cut to 50 characters they would be one contact
    validated, books = books_of([receipt("L1", [line("1", "10.0000")], supplier=long_a),
                                 receipt("L2", [line("1", "10.0000")], supplier=long_b),
                                 receipt("OK", [line("1", "10.0000")])])
    assert set(validated.quarantine["receipt_no"]) == {"L1", "L2"}
    assert "longer than Xero's 50 characters" in reasons_of(validated, "L1")["supplier_code_too_long"]
    assert list(books.documents["number"]) == ["OK"]
    _, prefixed = books_of([receipt("P1", [line("1", "10.0000")], supplier="1001")], rules(contact_number_format="SUP-{supplier_code}"))
    assert prefixed.documents.iloc[0].payload["Contact"]["ContactNumber"] == "SUP-1001"
