"""GST exact without leaning on Xero's tolerance, zero-net days, discounted credits.

Every line's TaxAmount must equal the tax Xero computes for it (per line, half up to the cent, on the
GST-inclusive LineAmount); CI's own GST, where it differs, arrives on labelled adjustment pairs, and each
document's Σ LineAmount and Σ TaxAmount are CI's total and GST. The expected figures here are worked
out independently with Decimal from the handcrafted CI documents, never from the code under test.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest

from ci_xero_pipeline.books.eretailer import (
    EXCLUDED_COLUMNS,
    ZERO_NET_DAY,
    build_eretailer_documents,
    ci_totals_by_day,
    document_totals_by_day,
    excluded_by_rule,
)
from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.schemas import XeroDocuments, amounts_for_tax, inclusive_tax_cents
from ci_xero_pipeline.books.validation import validate_sales_documents
from ci_xero_pipeline.money import decimal_to_cents

from .sales_frames import ci_gst, ci_line_total, document, frames, line

ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"}
DAY, NEXT_DAY = "2026-10-01", "2026-10-02"
CENT = Decimal("0.01")
XERO_RATES = {"OUTPUT2": Decimal(15), "ZERORATED": Decimal(0), "NONE": Decimal(0)}  # the NZ tax types' rates


def rules(**changes) -> EretailerRules:
    changes.setdefault("gst_tolerance_cents", 3)  # CI's per-unit GST below differs by up to 3 cents
    return EretailerRules(sales_accounts=ACCOUNTS, **changes)


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def xero_tax(amount: Decimal, rate: Decimal) -> Decimal:
    """What Xero computes for a line of LineAmountTypes Inclusive."""
    return half_up(amount * rate / (100 + rate)) if rate else Decimal("0.00")


def per_unit_gst(quantity: Decimal, price: Decimal, discount: Decimal) -> Decimal:
    """GST as a till might round it: per unit, times the quantity, less the discount's GST."""
    unit = half_up(price * 3 / 23)
    size = half_up(abs(quantity) * unit - discount * 3 / 23)
    return -size if quantity < 0 else size


def ci_line(quantity: str, price: str, discount: str = "0", gst_code: str = "S", per_unit: bool = False, **changes) -> dict:
    item = line(quantity, price, discount, gst_code=gst_code, **changes)
    if per_unit and gst_code == "S" and "line_gst" not in changes:
        gst = per_unit_gst(item["quantity"], item["unit_price_incl"], item["discount_incl"])
        if abs(gst - ci_gst(item["line_total_incl"], "S")) <= Decimal("0.03") and abs(gst) <= abs(item["line_total_incl"]):
            item["line_gst"] = gst
    return item


def trap_documents(day: str = DAY, seed: int = 11) -> list[dict]:
    """Many small lines, multi-quantity lines whose CI GST (per unit) is 1-3 cents from the GST of the
    line total, discounts, credits (some discounted), zero-rated and exempt lines."""
    rng = random.Random(seed)
    tag = day[-2:]
    docs = []
    for n in range(90):
        items = []
        for _ in range(rng.randint(1, 7)):
            price = rng.choice(["0.01", "0.04", "0.07", "0.13", "0.99", "1.49", "4.6667", "19.9900", "33.3333"])
            quantity = rng.choice(["1", "2", "3", "5", "7", "1.500", "0.333"])
            gross = ci_line_total(Decimal(quantity), Decimal(price), Decimal(0))
            discount = rng.choice(["0", "0", "0.01", "0.05"]) if gross > Decimal("0.10") else "0"
            code = rng.choice(["S", "S", "S", "Z", "E"])
            items.append(ci_line(quantity, price, discount, gst_code=code, per_unit=True, analysis_code=rng.choice(list(ACCOUNTS))))
        items.append(ci_line("1", "6.9500", analysis_code="FREIGHT", sku=None, description="Freight"))
        docs.append(document(f"W{tag}{n:04d}", day, items, branch=rng.choice(["WEB", "WEB", "AKL01", "WLG01"])))
    # the cents that per-unit rounding moves, for certain: 7 × 0.04 (3 cents), 5 × 0.04 (2), 3 × 0.04 (1)
    docs.append(document(f"W{tag}9001", day, [ci_line("7", "0.04", per_unit=True), ci_line("5", "0.04", per_unit=True),
                                             ci_line("3", "0.04", per_unit=True, analysis_code="GIFTS")]))
    for n in range(12):
        quantity = "-" + rng.choice(["1", "2", "3", "7"])
        price = rng.choice(["33.3333", "0.07", "12.5000", "9.9900", "0.04"])
        discount = rng.choice(["0", "1.00", "0.05"]) if Decimal(price) > 1 else "0"
        items = [ci_line(quantity, price, discount, per_unit=True)]
        if n % 3 == 0:
            items.append(ci_line("-1", "20.00", gst_code="Z", analysis_code="FOOTWEAR"))
        docs.append(document(f"C{tag}{n:04d}", day, items, doc_type="CREDIT", original_invoice_no=f"W{tag}{n:04d}"))
    return docs


def ci_documents_by_number(docs: list[dict]) -> dict[str, tuple[Decimal, Decimal]]:
    """CI's total and GST of each document (credits negative), from the handcrafted rows."""
    return {
        doc["invoice_no"]: (sum((i["line_total_incl"] for i in doc["lines"]), Decimal(0)),
                            sum((i["line_gst"] for i in doc["lines"]), Decimal(0)))
        for doc in docs
    }


def is_adjustment(item: dict) -> bool:
    return item["Description"].startswith("GST adjustment")


def assert_exact(documents: pd.DataFrame, docs: list[dict]) -> int:
    """Every line's tax is Xero's own; every document's sums are CI's; returns the adjustment pairs."""
    ci = ci_documents_by_number(docs)
    pairs = 0
    for row in documents.itertuples():
        payload = row.payload
        items = payload["LineItems"]
        assert payload["LineAmountTypes"] == "Inclusive"
        for item in items:
            assert item["TaxAmount"] == xero_tax(item["LineAmount"], XERO_RATES[item["TaxType"]]), item
            assert half_up(item["Quantity"] * item["UnitAmount"] - item.get("DiscountAmount", Decimal(0))) == item["LineAmount"], item
        sign = -1 if row.endpoint == "CreditNotes" else 1
        total = sign * sum((ci[number][0] for number in row.ci_invoice_nos), Decimal(0))
        gst = sign * sum((ci[number][1] for number in row.ci_invoice_nos), Decimal(0))
        assert sum((i["LineAmount"] for i in items), Decimal(0)) == total, row.number
        assert sum((i["TaxAmount"] for i in items), Decimal(0)) == gst, row.number
        assert (row.total_cents, row.tax_cents, row.line_count) == (decimal_to_cents(total), decimal_to_cents(gst), len(items))
        pairs += assert_pairs(items)
    return pairs


def assert_pairs(items: list[dict]) -> int:
    """Adjustment lines come in pairs: a at the rated tax type carrying exactly the difference as its
    own tax, then −a without GST, on the same account and tracking; the label names CI's GST and the
    per-line sum whose difference it carries."""
    adjustments = [item for item in items if is_adjustment(item)]
    assert len(adjustments) % 2 == 0
    for rated, balancing in zip(adjustments[::2], adjustments[1::2]):
        assert rated["TaxType"] == "OUTPUT2" and balancing["TaxType"] == "NONE"
        assert rated["TaxAmount"] != 0 and balancing["TaxAmount"] == 0
        assert balancing["LineAmount"] == -rated["LineAmount"]
        assert (rated["AccountCode"], rated["Tracking"]) == (balancing["AccountCode"], balancing["Tracking"])
        label = rated["Description"]
        assert label.startswith("GST adjustment to CI's GST (CI ") and ", per-line " in label
        ci_figure, per_line = (Decimal(text) for text in label[label.index("(CI ") + 4:-1].split(", per-line "))
        assert ci_figure - per_line == rated["TaxAmount"]
    return len(adjustments) // 2


def build(docs: list[dict], chosen: EretailerRules) -> pd.DataFrame:
    validated = validate_sales_documents(frames(docs), chosen)
    assert validated.quarantine.empty, validated.quarantine["reason"].tolist()
    documents = build_eretailer_documents(validated.invoices, validated.lines, chosen)
    XeroDocuments.validate(documents)
    return documents


# -- integer arithmetic ----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", ["15", "12.5", "0", "9.975", "20"])
def test_integer_inclusive_tax_is_decimal_half_up(rate):
    amounts = list(range(-5000, 5000)) + [99_999_999_999_99, -12_345_67, 7_77]
    got = inclusive_tax_cents(np.array(amounts, dtype=np.int64), Decimal(rate))
    assert got.tolist() == [decimal_to_cents(xero_tax(Decimal(a) / 100, Decimal(rate))) for a in amounts]


@pytest.mark.parametrize("rate", ["15", "12.5", "9.975"])
def test_an_amount_carries_exactly_any_tax(rate):
    wanted = np.arange(-3000, 3001, dtype=np.int64)
    amounts = amounts_for_tax(wanted, Decimal(rate))
    assert [decimal_to_cents(xero_tax(Decimal(int(a)) / 100, Decimal(rate))) for a in amounts] == wanted.tolist()
    assert (np.sign(amounts) == np.sign(wanted)).all()


# -- 1. every TaxAmount is Xero's own per-line figure ---------------------------------------------

@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_every_line_tax_is_xeros_and_every_document_is_cis(mode):
    docs = trap_documents() + trap_documents(NEXT_DAY, seed=12)
    source = frames(docs)
    differences = {decimal_to_cents(abs(i["line_gst"] - ci_gst(i["line_total_incl"], "S"))) for d in docs for i in d["lines"] if i["gst_code"] == "S"}
    assert {1, 2, 3} <= differences  # the trap is real: CI's GST is off Xero's by 1-3 cents on some lines
    assert any(i["discount_incl"] and i["quantity"] < 0 for d in docs for i in d["lines"])  # discounted credits

    chosen = rules(mode=mode)
    documents = build(docs, chosen)
    pairs = assert_exact(documents, docs)
    assert pairs > 0
    assert document_totals_by_day(documents).to_dict("records") == ci_totals_by_day(source.invoices).to_dict("records")


def test_detail_has_at_most_one_adjustment_pair_per_account_and_option():
    docs = trap_documents()
    documents = build(docs, rules(mode="detail"))
    by_number = {doc["invoice_no"]: doc for doc in docs}
    for row in documents.itertuples():
        items = row.payload["LineItems"]
        rated = [(i["AccountCode"], i["Tracking"][0]["Option"]) for i in items if is_adjustment(i) and i["TaxType"] == "OUTPUT2"]
        assert len(rated) == len(set(rated))
        # a pair exactly where CI's GST of the account's standard-rated lines differs from Xero's per-line tax
        differing = defaultdict(Decimal)
        for item in by_number[row.number]["lines"]:
            if item["gst_code"] == "S":
                differing[ACCOUNTS[item["analysis_code"]]] += item["line_gst"] - ci_gst(item["line_total_incl"], "S")
        assert sorted(account for account, _ in rated) == sorted(account for account, d in differing.items() if d)
        assert len(items) == len(by_number[row.number]["lines"]) + 2 * len(rated)


def test_summary_has_one_adjustment_pair_per_summary_line_with_a_difference():
    docs = trap_documents()
    (row,) = build(docs, rules(mode="summary")).itertuples()
    items = row.payload["LineItems"]
    plain = [i for i in items if not is_adjustment(i)]
    rated = [i for i in items if is_adjustment(i) and i["TaxType"] == "OUTPUT2"]
    keys = [(i["AccountCode"], i["TaxType"], i["Tracking"][0]["Option"]) for i in plain]
    assert len(keys) == len(set(keys))
    adjusted = [(i["AccountCode"], i["TaxType"], i["Tracking"][0]["Option"]) for i in rated]
    assert len(adjusted) == len(set(adjusted)) and set(adjusted) <= set(keys)
    # independently: per summary line, Σ CI GST against Xero's tax on Σ amount
    option = {"WEB": "Online Store", "AKL01": "Auckland Queen Street", "WLG01": "Wellington Lambton Quay"}
    amounts, taxes = defaultdict(Decimal), defaultdict(Decimal)
    for doc in docs:
        for item in doc["lines"]:
            if item["gst_code"] == "S":
                key = (ACCOUNTS[item["analysis_code"]], "OUTPUT2", option[doc["branch_code"]])
                amounts[key] += item["line_total_incl"]
                taxes[key] += item["line_gst"]
    expected = {key for key in amounts if taxes[key] != xero_tax(amounts[key], Decimal(15))}
    assert set(adjusted) == expected and expected


def test_an_adjustment_pair_as_posted():
    # 7 × 0.04: CI's GST per unit is 7 × 0.01 = 0.07, Xero's on 0.28 is 0.04: 3 cents to move
    docs = [document("W1", DAY, [ci_line("7", "0.04", per_unit=True)], branch="AKL01")]
    assert docs[0]["lines"][0]["line_gst"] == Decimal("0.07")
    payload = build(docs, rules(mode="detail")).iloc[0]["payload"]
    tracking = [{"Name": "CI Branches", "Option": "Auckland Queen Street"}]
    assert payload["LineItems"][1:] == [
        {"Description": "GST adjustment to CI's GST (CI 0.07, per-line 0.04)", "Quantity": Decimal(1),
         "UnitAmount": Decimal("0.23"), "LineAmount": Decimal("0.23"), "TaxAmount": Decimal("0.03"),
         "AccountCode": "201", "TaxType": "OUTPUT2", "Tracking": tracking},
        {"Description": "GST adjustment to CI's GST: the balancing amount, without GST", "Quantity": Decimal(1),
         "UnitAmount": Decimal("-0.23"), "LineAmount": Decimal("-0.23"), "TaxAmount": Decimal("0.00"),
         "AccountCode": "201", "TaxType": "NONE", "Tracking": tracking},
    ]
    assert payload["LineItems"][0]["TaxAmount"] == Decimal("0.04")


def test_a_credit_notes_adjustment_uses_its_positive_amounts():
    docs = [document("C1", DAY, [ci_line("-7", "0.04", per_unit=True)], doc_type="CREDIT")]
    for mode in ("detail", "summary"):
        documents = build(docs, rules(mode=mode))
        row = documents.iloc[0]
        assert row["endpoint"] == "CreditNotes" and (row["total_cents"], row["tax_cents"]) == (28, 7)
        items = row["payload"]["LineItems"]
        assert [(i["LineAmount"], i["TaxAmount"], i["TaxType"]) for i in items] == [
            (Decimal("0.28"), Decimal("0.04"), "OUTPUT2"), (Decimal("0.23"), Decimal("0.03"), "OUTPUT2"),
            (Decimal("-0.23"), Decimal("0.00"), "NONE")]
        assert_exact(documents, docs)


def test_a_negative_difference_moves_tax_down():
    # CI's GST two cents below Xero's 15.00 × 3/23 = 1.96: the pair takes tax away (−0.15 carries −0.02)
    docs = [document("W1", DAY, [ci_line("3", "5.00", line_gst=Decimal("1.94"))])]
    documents = build(docs, rules(mode="detail"))
    items = documents.iloc[0]["payload"]["LineItems"]
    assert [(i["LineAmount"], i["TaxAmount"]) for i in items] == [
        (Decimal("15.00"), Decimal("1.96")), (Decimal("-0.15"), Decimal("-0.02")), (Decimal("0.15"), Decimal("0.00"))]
    assert_exact(documents, docs)


def test_the_gst_tolerance_comes_from_the_rules():
    docs = [document("W1", DAY, [ci_line("7", "0.04", per_unit=True)])]  # CI 0.07 against 0.04: 3 cents
    strict = validate_sales_documents(frames(docs), EretailerRules(sales_accounts=ACCOUNTS))  # the default: 2
    assert strict.invoices.empty
    (reason,) = strict.quarantine["reason"].tolist()
    assert "W1 line 1" in reason and "0.07" in reason and "0.04" in reason
    assert validate_sales_documents(frames(docs), rules(gst_tolerance_cents=3)).quarantine.empty


def test_gst_rates_come_from_the_rules():
    # a site whose standard rate is 12.5 %: CI's GST is total × 12.5 / 112.5, which 15 % would reject
    rates = {"S": Decimal("12.5"), "Z": Decimal(0), "E": Decimal(0)}
    items = [line("1", "9.00"), line("3", "33.3333"), line("1", "4.50", gst_code="Z")]
    for item in items:
        if item["gst_code"] == "S":
            item["line_gst"] = xero_tax(item["line_total_incl"], Decimal("12.5"))
    docs = [document("W1", DAY, items)]
    assert not validate_sales_documents(frames(docs), rules()).quarantine.empty
    chosen = rules(mode="detail", gst_rates=rates)
    payload = build(docs, chosen).iloc[0]["payload"]
    assert [(i["LineAmount"], i["TaxAmount"]) for i in payload["LineItems"]] == [
        (Decimal("9.00"), Decimal("1.00")), (Decimal("100.00"), Decimal("11.11")), (Decimal("4.50"), Decimal("0.00"))]


def test_zero_rated_and_exempt_lines_carry_no_tax_and_no_adjustment():
    docs = [document("W1", DAY, [line("7", "0.04", gst_code="Z"), line("3", "1.49", gst_code="E", analysis_code="GIFTS")])]
    for mode in ("summary", "detail"):
        items = build(docs, rules(mode=mode)).iloc[0]["payload"]["LineItems"]
        assert [(i["TaxType"], i["TaxAmount"]) for i in items] == [("ZERORATED", Decimal("0.00")), ("NONE", Decimal("0.00"))]


# -- 2. days that net to zero ----------------------------------------------------------------------

def test_a_summary_day_that_nets_to_nothing_posts_no_document_and_says_so():
    docs = [
        document("W1", DAY, [line("2", "10.00"), line("1", "7.00", analysis_code="FREIGHT")]),
        document("C1", DAY, [line("-2", "10.00"), line("-1", "7.00", analysis_code="FREIGHT")], doc_type="CREDIT"),
        document("W2", NEXT_DAY, [line("1", "15.00")]),
    ]
    chosen = rules()
    validated = validate_sales_documents(frames(docs), chosen)
    documents = build_eretailer_documents(validated.invoices, validated.lines, chosen)
    XeroDocuments.validate(documents)
    assert documents["business_date"].tolist() == [NEXT_DAY]
    excluded = excluded_by_rule(validated.invoices, documents, chosen)
    assert list(excluded.columns) == EXCLUDED_COLUMNS
    assert excluded.drop(columns="branch_code").to_dict("records") == [
        {"business_date": DAY, "invoice_nos": ("C1", "W1"), "total_cents": 0, "tax_cents": 0, "reason": ZERO_NET_DAY}]
    assert ZERO_NET_DAY == "the day's E-Retailer sales and refunds net to zero: no document"
    # the day's reconciliation: CI FINAL = Xero + quarantined + excluded
    ci = ci_totals_by_day(validated.invoices).set_index("business_date")
    xero = document_totals_by_day(documents).set_index("business_date").reindex(ci.index, fill_value=0)
    gone = excluded.groupby("business_date")[["total_cents", "tax_cents"]].sum().reindex(ci.index, fill_value=0)
    assert (ci == xero + gone).all().all()


def test_per_branch_a_branch_that_nets_to_nothing_is_excluded_alone():
    docs = [
        document("W1", DAY, [line("1", "10.00")], branch="AKL01"),
        document("C1", DAY, [line("-1", "10.00")], branch="AKL01", doc_type="CREDIT"),
        document("W2", DAY, [line("1", "12.00")], branch="WEB"),
    ]
    chosen = rules(summary_grouping="branch_day")
    validated = validate_sales_documents(frames(docs), chosen)
    documents = build_eretailer_documents(validated.invoices, validated.lines, chosen)
    assert documents["number"].tolist() == ["ER-20261001-WEB"]
    excluded = excluded_by_rule(validated.invoices, documents, chosen)
    assert excluded[["business_date", "branch_code", "invoice_nos"]].to_dict("records") == [
        {"business_date": DAY, "branch_code": "AKL01", "invoice_nos": ("C1", "W1")}]


def test_a_summary_day_of_zero_total_with_lines_left_is_a_zero_invoice():
    docs = [
        document("W1", DAY, [line("1", "20.00")]),
        document("C1", DAY, [line("-1", "20.00", analysis_code="FOOTWEAR")], doc_type="CREDIT"),
    ]
    chosen = rules(status="AUTHORISED")
    documents = build(docs, chosen)
    row = documents.iloc[0]
    assert (row["endpoint"], row["total_cents"], row["tax_cents"], row["line_count"]) == ("Invoices", 0, 0, 2)
    assert [(i["AccountCode"], i["LineAmount"]) for i in row["payload"]["LineItems"]] == [
        ("201", Decimal("20.00")), ("202", Decimal("-20.00"))]
    assert excluded_by_rule(frames(docs).invoices, documents, chosen).empty


def test_a_summary_day_of_zero_total_but_cis_gst_left_posts_the_gst_alone():
    # CI's GST on 7 × 0.04 sold (per unit: 0.07) and refunded (Xero's own: 0.04) leaves 0.03 of GST on a
    # day of 0.00: no sales line is left, but CI's GST is, so the day posts the adjustment pair alone
    docs = [
        document("W1", DAY, [ci_line("7", "0.04", per_unit=True)]),
        document("C1", DAY, [ci_line("-7", "0.04")], doc_type="CREDIT"),
    ]
    chosen = rules()
    documents = build(docs, chosen)
    row = documents.iloc[0]
    assert (row["endpoint"], row["total_cents"], row["tax_cents"], row["line_count"]) == ("Invoices", 0, 3, 2)
    assert [(i["LineAmount"], i["TaxAmount"], i["TaxType"]) for i in row["payload"]["LineItems"]] == [
        (Decimal("0.23"), Decimal("0.03"), "OUTPUT2"), (Decimal("-0.23"), Decimal("0.00"), "NONE")]
    assert_exact(documents, docs)
    assert excluded_by_rule(frames(docs).invoices, documents, chosen).empty


def test_detail_posts_a_document_of_zero_lines_as_a_zero_document():
    # a free item (a 100 % discount): Xero accepts a 0.00 invoice (AUTHORISED, it is PAID at once)
    docs = [document("W1", DAY, [line("1", "10.00", "10.00")]), document("W2", DAY, [line("1", "5.00")])]
    chosen = rules(mode="detail", status="AUTHORISED")
    documents = build(docs, chosen)
    free = documents.set_index("number").loc["W1"]
    assert (free["total_cents"], free["tax_cents"], free["line_count"]) == (0, 0, 1)
    (item,) = free["payload"]["LineItems"]
    assert (item["LineAmount"], item["TaxAmount"], item["DiscountAmount"]) == (Decimal("0.00"), Decimal("0.00"), Decimal("10.00"))
    assert excluded_by_rule(frames(docs).invoices, documents, chosen).empty


# -- 3. discounted credits -------------------------------------------------------------------------

def test_a_discounted_credit_in_summary_refunds_what_was_paid():
    docs = [
        document("W1", DAY, [line("2", "50.00")]),
        document("C1", DAY, [line("-3", "9.9900", "1.00")], doc_type="CREDIT", original_invoice_no="W0"),
    ]
    documents = build(docs, rules())
    assert documents.iloc[0]["total_cents"] == 10000 - 2897
    (item,) = documents.iloc[0]["payload"]["LineItems"]
    assert item["LineAmount"] == Decimal("71.03")
    assert_exact(documents, docs)


@pytest.mark.parametrize("quantity, price, discount", [
    ("-3", "9.9900", "1.00"), ("-1.500", "33.3333", "2.50"), ("-7", "0.1300", "0.05"), ("-0.333", "19.9900", "0.66"),
    ("-250", "1.0001", "3.00"),
])
def test_a_discounted_credit_note_line_multiplies_to_the_credits_amount(quantity, price, discount):
    docs = [document("C1", DAY, [line(quantity, price, discount)], doc_type="CREDIT")]
    expected = half_up(abs(Decimal(quantity)) * Decimal(price) - Decimal(discount))
    documents = build(docs, rules(mode="detail"))
    item = documents.iloc[0]["payload"]["LineItems"][0]
    assert "DiscountAmount" not in item and item["LineAmount"] == expected
    assert half_up(item["Quantity"] * item["UnitAmount"]) == expected
    assert item["UnitAmount"] == item["UnitAmount"].quantize(Decimal("0.0001"))
    assert_exact(documents, docs)


def test_credit_pricing_always_multiplies_back_to_the_amount():
    from ci_xero_pipeline.books.eretailer import _credit_pricing

    rng = random.Random(5)
    for _ in range(20000):
        units = rng.choice([1, -1]) * rng.choice([rng.randint(1, 5000), rng.randint(1, 10) * 1000, rng.randint(1, 400_000)])
        amount = (1 if units > 0 else -1) * rng.randint(0, 5_000_000)
        quantity, unit_amount, got = _credit_pricing(units, amount)
        assert got == amount
        assert half_up(Decimal(quantity).scaleb(-3) * Decimal(unit_amount).scaleb(-4)) == Decimal(amount).scaleb(-2)


def test_a_discounted_return_line_on_an_invoice_is_priced_without_the_discount():
    docs = [document("W1", DAY, [line("3", "20.00"), line("-1", "10.00", "1.00")])]
    assert docs[0]["lines"][1]["line_total_incl"] == Decimal("-9.00")
    documents = build(docs, rules(mode="detail"))
    items = documents.iloc[0]["payload"]["LineItems"]
    assert "DiscountAmount" not in items[1] and (items[1]["Quantity"], items[1]["LineAmount"]) == (Decimal("-1.000"), Decimal("-9.00"))
    assert_exact(documents, docs)


def test_the_demo_has_discounted_credits_that_validate(tmp_path):
    from ci_xero_pipeline.ci.demo import create_demo_database
    from ci_xero_pipeline.ci.extract import engine_for, extract_sales_documents

    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    create_demo_database(url, days=3, end_day=date(2026, 10, 31), branches=3, invoices_per_day=(500, 500),
                         include_other_processes=False)
    source = extract_sales_documents(engine_for(url), date(2026, 10, 29), date(2026, 10, 31))
    credit = source.invoices.loc[source.invoices["doc_type"] == "CREDIT", "invoice_no"]
    lines = source.lines[source.lines["invoice_no"].isin(credit)]
    discounted = lines[lines["discount_incl_cents"] > 0]
    assert len(discounted) > 0
    for row in discounted.itertuples():
        size = half_up(abs(Decimal(int(row.quantity_x1000)) / 1000) * Decimal(int(row.unit_price_incl_x10000)) / 10000
                       - Decimal(int(row.discount_incl_cents)) / 100)
        assert row.line_total_incl_cents == -decimal_to_cents(size)
    for mode in ("summary", "detail"):
        chosen = EretailerRules(mode=mode, sales_accounts=ACCOUNTS)
        validated = validate_sales_documents(source, chosen)
        assert validated.quarantine.empty, validated.quarantine["reason"].head().tolist()
        assert set(discounted["invoice_no"]) <= set(validated.invoices["invoice_no"])
        documents = build_eretailer_documents(validated.invoices, validated.lines, chosen)
        assert document_totals_by_day(documents).to_dict("records") == ci_totals_by_day(validated.invoices).to_dict("records")


def test_the_demo_writes_a_handcrafted_credit_under_the_contract(tmp_path):
    from ci_xero_pipeline.ci.demo import create_ci_tables, insert_documents
    from ci_xero_pipeline.ci.extract import engine_for, extract_sales_documents

    engine = engine_for(f"sqlite:///{tmp_path / 'hand.sqlite'}")
    create_ci_tables(engine)
    insert_documents(
        engine,
        [{"invoice_no": "C1", "doc_type": "CREDIT", "branch_code": "WEB", "business_date": date(2026, 10, 1),
          "created_at": pd.Timestamp("2026-10-01 10:00").to_pydatetime()}],
        [{"invoice_no": "C1", "line_no": 1, "description": "Tee", "quantity": Decimal("-3"), "unit_price_incl": Decimal("9.99"),
          "discount_incl": Decimal("1.00"), "analysis_code": "APPAREL"}],
    )
    source = extract_sales_documents(engine, date(2026, 10, 1), date(2026, 10, 1))
    assert source.lines["line_total_incl_cents"].tolist() == [-2897]
    assert source.invoices["total_incl_cents"].tolist() == [-2897]


# -- 4. totals come from accounting content only ---------------------------------------------------

PRESENTATION = ("Description", "Reference", "DueDate")


def accounting(payload: dict) -> dict:
    kept = {key: value for key, value in payload.items() if key not in PRESENTATION}
    kept["LineItems"] = [{key: value for key, value in item.items() if key not in PRESENTATION} for item in payload["LineItems"]]
    return kept


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_totals_need_no_presentation(mode):
    docs = trap_documents()
    one = build(docs, rules(mode=mode, due_days=0))
    other = build(docs, rules(mode=mode, due_days=20))
    for first, second in zip(one.itertuples(), other.itertuples()):
        assert accounting(first.payload) == accounting(second.payload)
        assert (first.total_cents, first.tax_cents) == (second.total_cents, second.tax_cents)
        kept = accounting(first.payload)["LineItems"]
        assert sum(decimal_to_cents(i["LineAmount"]) for i in kept) == first.total_cents
        assert sum(decimal_to_cents(i["TaxAmount"]) for i in kept) == first.tax_cents
