"""The pure accounting: validation with quarantine, Summary and Detail documents, exact to the cent."""

from __future__ import annotations

import random
from decimal import Decimal

import pandas as pd
import pytest

from ci_xero_pipeline.books.eretailer import build_eretailer_documents, ci_totals_by_day, document_totals_by_day
from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.schemas import XeroDocuments, expected_line_total_cents, gst_inclusive
from ci_xero_pipeline.books.validation import validate_sales_documents
from ci_xero_pipeline.money import decimal_to_cents

from .sales_frames import ci_gst, ci_line_total, document, frames, line

ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"}
DAY = "2026-10-01"


def rules(**changes) -> EretailerRules:
    return EretailerRules(sales_accounts=ACCOUNTS, **changes)


def rounding_trap_day(day: str = DAY, seed: int = 7) -> list[dict]:
    """Many small GST-inclusive lines whose per-line GST rounding does not sum to the GST of the sum,
    4-decimal unit prices, discounts, multi-quantity and fractional lines, credits, Z and E lines."""
    rng = random.Random(seed)
    documents = []
    for n in range(120):
        items = []
        for _ in range(rng.randint(1, 6)):
            price = Decimal(rng.choice(["0.01", "0.03", "0.07", "0.13", "0.99", "1.49", "33.3333", "19.9900", "4.6667"]))
            quantity = Decimal(rng.choice(["1", "2", "3", "7", "1.500", "0.333"]))
            gross = ci_line_total(quantity, price, Decimal(0))
            discount = Decimal(rng.choice(["0", "0", "0.01", "0.05"])) if gross > Decimal("0.10") else Decimal(0)
            code = rng.choice(["S", "S", "S", "Z", "E"])
            items.append(line(str(quantity), str(price), str(discount), gst_code=code, analysis_code=rng.choice(list(ACCOUNTS))))
        items.append(line("1", "6.9500", analysis_code="FREIGHT", sku=None, description="Freight"))
        documents.append(document(f"W{day[-2:]}{n:05d}", day, items, branch=rng.choice(["WEB", "WEB", "AKL01", "WLG01"])))
    for n in range(8):
        items = [line("-" + rng.choice(["1", "2"]), rng.choice(["33.3333", "0.07", "12.5000"]))]
        documents.append(document(f"C{day[-2:]}{n:05d}", day, items, doc_type="CREDIT", original_invoice_no=f"W{day[-2:]}{n:05d}"))
    return documents


def _line_amounts(payload: dict) -> tuple[int, int]:
    lines = payload["LineItems"]
    return (sum(decimal_to_cents(item["LineAmount"]) for item in lines), sum(decimal_to_cents(item["TaxAmount"]) for item in lines))


def _assert_xero_line_rule(payload: dict) -> None:
    for item in payload["LineItems"]:
        expected = (item["Quantity"] * item["UnitAmount"] - item.get("DiscountAmount", Decimal(0))).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
        assert expected == item["LineAmount"], item


# -- arithmetic ----------------------------------------------------------------------------------

def test_integer_line_total_matches_decimal_rounding_for_every_sign():
    rng = random.Random(3)
    quantities, prices, discounts, expected = [], [], [], []
    for _ in range(5000):
        q = Decimal(rng.randint(-5000, 5000)) / 1000
        p = Decimal(rng.randint(0, 2_000_000)) / 10000
        d = Decimal(rng.randint(0, 500)) / 100
        quantities.append(int(q * 1000)), prices.append(int(p * 10000)), discounts.append(int(d * 100))
        expected.append(decimal_to_cents(ci_line_total(q, p, d)))
    got = expected_line_total_cents(pd.Series(quantities, dtype="Int64"), pd.Series(prices, dtype="Int64"), pd.Series(discounts, dtype="Int64"))
    assert got.tolist() == expected


def test_integer_gst_matches_decimal_three_twenty_thirds():
    totals = list(range(-3000, 3000)) + [99_999_999_99, -12_345_67]
    got = gst_inclusive(pd.Series(totals, dtype="Int64"))
    assert got.tolist() == [decimal_to_cents(ci_gst(Decimal(t) / 100, "S")) for t in totals]


# -- validation ----------------------------------------------------------------------------------

def test_clean_documents_all_pass_and_held_void_are_skipped():
    docs = rounding_trap_day()
    docs.append(document("H1", DAY, [line("1", "10")], status="HELD"))
    docs.append(document("V1", DAY, [line("1", "10")], status="VOID"))
    validated = validate_sales_documents(frames(docs), rules())
    assert validated.quarantine.empty, validated.quarantine["reason"].tolist()
    assert len(validated.invoices) == len(docs) - 2
    assert sorted(validated.skipped["invoice_no"]) == ["H1", "V1"]
    assert validated.unmapped_codes == {}


def test_bad_rows_are_quarantined_whole_with_reasons_naming_the_document():
    good = document("W1", DAY, [line("2", "25.00"), line("1", "8.00", analysis_code="FREIGHT")])
    unknown_code = document("W2", DAY, [line("1", "10.00"), line("1", "5.00", analysis_code="HOMEWARE")])
    bad_line = document("W3", DAY, [line("3", "9.99", line_total_incl=Decimal("29.99"), line_gst=Decimal("3.91"))])
    no_branch = document("W4", DAY, [line("1", "10.00")], branch=None)
    unknown_branch = document("W5", DAY, [line("1", "10.00")], branch="XYZ99")
    bad_total = document("W6", DAY, [line("1", "10.00")], total_incl=Decimal("10.50"))
    wrong_gst = document("W7", DAY, [line("1", "10.00", gst_code="Z", line_gst=Decimal("1.30"))])
    validated = validate_sales_documents(frames([good, unknown_code, bad_line, no_branch, unknown_branch, bad_total, wrong_gst]), rules())

    assert validated.invoices["invoice_no"].tolist() == ["W1"]
    assert validated.lines["invoice_no"].unique().tolist() == ["W1"]
    reasons = dict(zip(validated.quarantine["invoice_no"], validated.quarantine["reason"]))
    assert set(reasons) == {"W2", "W3", "W4", "W5", "W6", "W7"}
    assert "W2 line 2" in reasons["W2"] and "HOMEWARE" in reasons["W2"] and "mapping.sales_accounts" in reasons["W2"]
    assert "W3 line 1" in reasons["W3"] and "29.99" in reasons["W3"] and "29.97" in reasons["W3"]
    assert "W4" in reasons["W4"] and "no branch_code" in reasons["W4"]
    assert "XYZ99" in reasons["W5"]
    assert "10.50" in reasons["W6"] and "10.00" in reasons["W6"]
    assert "gst_code Z" in reasons["W7"]
    assert validated.unmapped_codes == {"analysis_code": ["HOMEWARE"], "branch_code": ["XYZ99"]}
    row = validated.quarantine.set_index("invoice_no").loc["W2"]
    assert (row["business_date"], row["total_incl_cents"], row["line_no"]) == (DAY, 1500, 2)


def test_contract_breaches_are_quarantined_not_raised():
    docs = [
        document("W1", DAY, [line("1", "10.00")], status="PARKED"),
        document("W2", DAY, [line("1", "10.00")], doc_type="CREDIT"),  # a credit with a positive total
        document("W3", DAY, [line("1", "10.00", discount_incl=Decimal("-1.00"), line_total_incl=Decimal("11.00"), line_gst=Decimal("1.43"))]),
        document("W4", DAY, [line("1", "10.00", gst_code="X")]),
        document("W5", DAY, [line("1", "10.00")]),
    ]
    validated = validate_sales_documents(frames(docs), rules(tax_types={"S": "OUTPUT2", "Z": "ZERORATED", "E": "NONE", "X": "NONE"}))
    assert validated.invoices["invoice_no"].tolist() == ["W5"]
    assert set(validated.quarantine["invoice_no"]) == {"W1", "W2", "W3", "W4"}
    assert all(reason.startswith(no) for no, reason in zip(validated.quarantine["invoice_no"], validated.quarantine["reason"]))


def test_branch_mapped_in_settings_needs_no_ci_branch_row():
    docs = [document("W1", DAY, [line("1", "10.00")], branch="POPUP")]
    assert validate_sales_documents(frames(docs), rules()).invoices.empty
    mapped = validate_sales_documents(frames(docs), rules(tracking_options={"POPUP": "Pop-up store"}))
    assert mapped.invoices["invoice_no"].tolist() == ["W1"]


# -- documents -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_rounding_trap_day_reconciles_to_the_cent(mode):
    source = frames(rounding_trap_day() + rounding_trap_day("2026-10-02", seed=8))
    validated = validate_sales_documents(source, rules(mode=mode))
    assert validated.quarantine.empty
    documents = build_eretailer_documents(validated.invoices, validated.lines, rules(mode=mode))
    XeroDocuments.validate(documents)
    assert document_totals_by_day(documents).to_dict("records") == ci_totals_by_day(source.invoices).to_dict("records")
    for doc in documents.itertuples():
        assert _line_amounts(doc.payload) == (doc.total_cents, doc.tax_cents)
        _assert_xero_line_rule(doc.payload)
    # every line's tax is Xero's own figure; the trap is real: on the summary lines that alone would
    # not give CI's GST, so GST adjustment lines carry the difference
    adjustments = 0
    for payload in documents["payload"]:
        for item in payload["LineItems"]:
            own = ci_gst(item["LineAmount"], "S") if item["TaxType"] == "OUTPUT2" else Decimal("0.00")
            assert item["TaxAmount"] == own, item
            adjustments += item["Description"].startswith("GST adjustment")
    if mode == "summary":
        assert adjustments


def test_summary_is_one_invoice_a_day_grouped_by_account_tax_and_branch():
    docs = [
        document("W1", DAY, [line("1", "50.00"), line("1", "8.00", analysis_code="FREIGHT")], branch="WEB"),
        document("W2", DAY, [line("2", "20.00"), line("1", "30.00", gst_code="Z")], branch="AKL01"),
        document("W3", DAY, [line("1", "15.00")], branch="WEB"),
        document("W4", "2026-10-02", [line("1", "99.00", analysis_code="FOOTWEAR")], branch="WEB"),
    ]
    result = build_eretailer_documents(*_validated(docs, rules(status="AUTHORISED", due_days=7)), rules(status="AUTHORISED", due_days=7))
    assert result["number"].tolist() == ["ER-20261001", "ER-20261002"]
    assert result["document_key"].tolist() == ["eretailer/summary/2026-10-01", "eretailer/summary/2026-10-02"]
    first = result.iloc[0]
    assert first["ci_invoice_nos"] == ("W1", "W2", "W3")
    payload = first["payload"]
    assert (payload["Type"], payload["Status"], payload["Date"], payload["DueDate"]) == ("ACCREC", "AUTHORISED", DAY, "2026-10-08")
    groups = {(i["AccountCode"], i["TaxType"], i["Tracking"][0]["Option"]): i["LineAmount"] for i in payload["LineItems"]}
    assert groups == {
        ("201", "OUTPUT2", "Online Store"): Decimal("65.00"),
        ("205", "OUTPUT2", "Online Store"): Decimal("8.00"),
        ("201", "OUTPUT2", "Auckland Queen Street"): Decimal("40.00"),
        ("201", "ZERORATED", "Auckland Queen Street"): Decimal("30.00"),
    }
    assert all(i["Tracking"][0]["Name"] == "CI Branches" for i in payload["LineItems"])
    assert first["total_cents"] == 14300


def test_summary_per_branch_numbers_each_branch():
    docs = [document("W1", DAY, [line("1", "50.00")], branch="WEB"), document("W2", DAY, [line("1", "20.00")], branch="AKL01")]
    chosen = rules(summary_grouping="branch_day")
    result = build_eretailer_documents(*_validated(docs, chosen), chosen)
    assert sorted(result["number"]) == ["ER-20261001-AKL01", "ER-20261001-WEB"]
    assert sorted(result["branch_code"]) == ["AKL01", "WEB"]


def test_a_day_of_net_credits_becomes_a_credit_note_with_positive_amounts():
    docs = [
        document("W1", DAY, [line("1", "20.00")]),
        document("C1", DAY, [line("-2", "45.00")], doc_type="CREDIT", original_invoice_no="W0"),
    ]
    result = build_eretailer_documents(*_validated(docs, rules()), rules())
    assert result["endpoint"].tolist() == ["CreditNotes"]
    doc = result.iloc[0]
    assert (doc["document_type"], doc["number"], doc["total_cents"]) == ("ACCRECCREDIT", "ER-20261001", 7000)
    assert doc["payload"]["CreditNoteNumber"] == "ER-20261001" and "DueDate" not in doc["payload"]
    assert _line_amounts(doc["payload"]) == (7000, int(doc["tax_cents"]))
    assert document_totals_by_day(result)["total_cents"].tolist() == [-7000]


def test_detail_mirrors_each_ci_document():
    docs = [
        document("W1", DAY, [line("2", "24.9950", "0.99"), line("1", "7.50", analysis_code="FREIGHT", sku=None, description="Freight")], order_ref="ORD-881"),
        document("C1", DAY, [line("-1", "24.9950")], doc_type="CREDIT", original_invoice_no="W0", order_ref="ORD-870"),
        document("W2", DAY, [line("1", "10.00")], customer_name=None, customer_code=None),
    ]
    chosen = rules(mode="detail", status="AUTHORISED")
    result = build_eretailer_documents(*_validated(docs, chosen), chosen).set_index("number")
    invoice = result.loc["W1", "payload"]
    assert (invoice["Type"], invoice["InvoiceNumber"], invoice["Reference"]) == ("ACCREC", "W1", "ORD-881")
    assert invoice["Contact"] == {"Name": "Aroha Smith [WC100]", "ContactNumber": "WC100", "EmailAddress": "aroha@example.co.nz"}
    first = invoice["LineItems"][0]
    assert (first["Description"], first["Quantity"], first["UnitAmount"], first["DiscountAmount"], first["LineAmount"]) == (
        "Merino crew tee", Decimal("2.000"), Decimal("24.9950"), Decimal("0.99"), Decimal("49.00"))
    credit = result.loc["C1"]
    assert (credit["endpoint"], credit["payload"]["Type"], credit["payload"]["CreditNoteNumber"]) == ("CreditNotes", "ACCRECCREDIT", "C1")
    assert credit["payload"]["Reference"] == "ORD-870 credit for W0"
    assert credit["payload"]["LineItems"][0]["LineAmount"] == Decimal("25.00") and credit["total_cents"] == 2500
    assert result.loc["W2", "contact_name"] == "E-Retailer Customer"
    assert document_totals_by_day(result.reset_index())["total_cents"].tolist() == [4900 + 750 - 2500 + 1000]


def test_detail_credit_with_a_discount_still_adds_up_without_one():
    # the clarified contract: on a credit the discount reduces the refund, −round(3 × 9.99 − 1.00, 2)
    credit_line = line("-3", "9.9900", "1.00")
    assert credit_line["line_total_incl"] == Decimal("-28.97")
    docs = [document("C1", DAY, [credit_line], doc_type="CREDIT")]
    chosen = rules(mode="detail")
    validated = validate_sales_documents(frames(docs), chosen)
    assert validated.quarantine.empty, validated.quarantine["reason"].tolist()
    payload = build_eretailer_documents(validated.invoices, validated.lines, chosen).iloc[0]["payload"]
    item = payload["LineItems"][0]
    assert "DiscountAmount" not in item and item["LineAmount"] == Decimal("28.97")
    _assert_xero_line_rule(payload)


def test_a_credit_refunding_more_than_was_paid_is_quarantined():
    # the old reading, −(3 × 9.99) − 1.00, refunds more than the discounted sale took
    credit_line = line("-3", "9.9900", "1.00", line_total_incl=Decimal("-30.97"), line_gst=Decimal("-4.04"))
    validated = validate_sales_documents(frames([document("C1", DAY, [credit_line], doc_type="CREDIT")]), rules())
    assert validated.invoices.empty
    (reason,) = validated.quarantine["reason"].tolist()
    assert "-30.97" in reason and "-28.97" in reason and "reduces the refund" in reason


def test_default_contact_strategy_uses_one_contact():
    chosen = rules(mode="detail", contact_strategy="default", default_contact_name="Web Sales")
    docs = [document("W1", DAY, [line("1", "10.00")])]
    result = build_eretailer_documents(*_validated(docs, chosen), chosen)
    assert result.iloc[0]["payload"]["Contact"] == {"Name": "Web Sales"}


def test_site_branch_options_name_the_tracking_options():
    chosen = rules(tracking_category="Stores", tracking_options={"WEB": "Online"})
    docs = [document("W1", DAY, [line("1", "10.00")], branch="WEB"), document("W2", DAY, [line("1", "10.00")], branch="AKL01")]
    payload = build_eretailer_documents(*_validated(docs, chosen), chosen).iloc[0]["payload"]
    assert {(t["Name"], t["Option"]) for i in payload["LineItems"] for t in i["Tracking"]} == {
        ("Stores", "Online"), ("Stores", "Auckland Queen Street")}


def test_no_documents_give_an_empty_frame():
    empty = build_eretailer_documents(frames([]).invoices, frames([]).lines, rules())
    assert empty.empty and "payload" in empty.columns
    assert document_totals_by_day(empty).empty


def _validated(docs, chosen):
    validated = validate_sales_documents(frames(docs), chosen)
    assert validated.quarantine.empty, validated.quarantine["reason"].tolist()
    return validated.invoices, validated.lines
