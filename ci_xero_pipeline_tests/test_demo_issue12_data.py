"""The demo CI database's data for issue 12: account customers (receivables), inwards goods (payables)
and cost of goods sold, with the named scenarios of RECEIVABLES_SCENARIOS, PAYABLES_SCENARIOS and
COGS_SCENARIOS.

Each scenario is found with the extraction's own figures (extract_receivables, extract_goods_received,
extract_sales_with_tenders) in the demo month (the demo_ci_url fixture) and in a build of other
arguments (where its DemoSummary says it is), and holds what its name says; CI's own rules hold
(header totals = Σ lines, line totals as the contract computes them); the takings still validate with
the till sale charged to account left to the account-customer process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
import pytest

from ci_xero_pipeline.books.takings import validate_takings
from ci_xero_pipeline.ci.demo import (
    ACCOUNT_CUSTOMERS,
    COGS_SCENARIOS,
    DEMO_MONTH_END,
    LOOK_ALIKE_CUSTOMERS,
    PAYABLES_SCENARIOS,
    RECEIVABLES_SCENARIOS,
    Scenario,
    cogs_scenarios,
    create_demo_database,
    payables_scenarios,
    receivables_scenarios,
)
from ci_xero_pipeline.ci.extract import (
    GoodsReceived,
    SalesWithTenders,
    engine_for,
    extract_goods_received,
    extract_receivables,
    extract_sales_with_tenders,
)

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .test_demo_takings_data import DEMO_RULES, OTHER_BUILD

RECEIVABLES = ("credit_exceeds_amount_due", "original_on_later_day", "look_alike_customers", "long_description",
               "three_decimal_quantities", "pos_on_account")
PAYABLES = ("same_number_two_suppliers", "same_supplier_repeats_number", "goods_returned", "held_receipt", "void_receipt",
            "zero_rated_lines")
COGS = ("missing_cost", "freight_not_cogs")
DEMO_ANALYSIS_CODES = {"APPAREL", "FOOTWEAR", "ACCESSORIES", "GIFTS"}  # what the demo's mapping covers
DEMO_MONTH = dict(days=DEMO_DAYS, end_day=DEMO_END_DAY, branches=5, invoices_per_day=(40, 80))  # as demo_ci_url builds it


def half_up(numerator: int, denominator: int) -> int:
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


@dataclass(frozen=True)
class Demo:
    receivables: SalesWithTenders  # extract_receivables over the database's days
    everything: SalesWithTenders  # every source, for cost of goods sold and takings
    goods: GoodsReceived
    scenarios: dict[str, dict[str, Scenario]]  # process -> name -> Scenario

    def receivable(self, number: str) -> pd.Series:
        invoices = self.receivables.documents.invoices
        [row] = invoices[invoices["invoice_no"] == number].to_dict("records")
        return pd.Series(row)

    def lines_of(self, *numbers: str) -> pd.DataFrame:
        lines = self.everything.documents.lines
        return lines[lines["invoice_no"].isin(numbers)]

    def tenders_of(self, number: str) -> dict[str, int]:
        tenders = self.receivables.tenders
        mine = tenders[tenders["invoice_no"] == number]
        return dict(zip(mine["tender_type"], mine["amount_cents"].astype(int)))

    def receipt(self, number: str) -> pd.Series:
        receipts = self.goods.receipts
        [row] = receipts[receipts["receipt_no"] == number].to_dict("records")
        return pd.Series(row)

    def receipt_lines(self, number: str) -> pd.DataFrame:
        return self.goods.lines[self.goods.lines["receipt_no"] == number]


def read(url: str, first: date, last: date, scenarios: dict[str, dict[str, Scenario]]) -> Demo:
    engine = engine_for(url)
    return Demo(extract_receivables(engine, first, last), extract_sales_with_tenders(engine, first, last),
                extract_goods_received(engine, first, last), scenarios)


@pytest.fixture(scope="module")
def demo_month(demo_ci_url) -> Demo:
    return read(demo_ci_url, DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1), DEMO_END_DAY,
                {"receivables": RECEIVABLES_SCENARIOS, "payables": PAYABLES_SCENARIOS, "cogs": COGS_SCENARIOS})


@pytest.fixture(scope="module")
def other_build(tmp_path_factory) -> Demo:
    url = f"sqlite:///{tmp_path_factory.mktemp('other12') / 'ci.sqlite'}"
    summary = create_demo_database(url, **OTHER_BUILD)
    return read(url, summary.first_day, summary.last_day, {
        "receivables": dict(summary.receivables_scenarios), "payables": dict(summary.payables_scenarios),
        "cogs": dict(summary.cogs_scenarios)})


@pytest.fixture(params=["demo month", "other build"])
def demo(request) -> Demo:
    return request.getfixturevalue("demo_month" if request.param == "demo month" else "other_build")


# -- where the scenarios are ---------------------------------------------------------------------------

def test_the_scenarios_are_named_with_their_numbers_branch_and_days(tmp_path):
    assert tuple(RECEIVABLES_SCENARIOS) == RECEIVABLES and tuple(PAYABLES_SCENARIOS) == PAYABLES and tuple(COGS_SCENARIOS) == COGS
    assert DEMO_MONTH_END == DEMO_END_DAY
    assert (receivables_scenarios(DEMO_MONTH_END), payables_scenarios(DEMO_MONTH_END), cogs_scenarios(DEMO_MONTH_END)) == (
        RECEIVABLES_SCENARIOS, PAYABLES_SCENARIOS, COGS_SCENARIOS)
    first = (DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)).isoformat()
    numbers = []
    for scenarios in (RECEIVABLES_SCENARIOS, PAYABLES_SCENARIOS, COGS_SCENARIOS):
        for name, scenario in scenarios.items():
            assert first <= min((scenario.day, *scenario.days)) and max((scenario.day, *scenario.days)) <= DEMO_END_DAY.isoformat(), name
            assert len(scenario.days) == len(scenario.numbers) and scenario.branch_day == (scenario.branch_code, scenario.day)
            numbers += scenario.numbers
    assert len(numbers) == len(set(numbers))  # each document belongs to one scenario
    # the demo month's build says the same, and names the till's number of the sale charged to account
    summary = create_demo_database(f"sqlite:///{tmp_path / 'month.sqlite'}", **DEMO_MONTH)
    assert dict(summary.payables_scenarios) == PAYABLES_SCENARIOS and dict(summary.cogs_scenarios) == COGS_SCENARIOS
    built = dict(summary.receivables_scenarios)
    till = built.pop("pos_on_account")
    planned = dict(RECEIVABLES_SCENARIOS)
    assert planned.pop("pos_on_account") == Scenario(till.branch_code, till.day) and built == planned
    assert till.numbers[0].startswith("P") and till.days == (till.day,)


def test_a_short_build_holds_only_the_scenarios_that_fit_and_says_which(tmp_path):
    summary = create_demo_database(f"sqlite:///{tmp_path / 'short.sqlite'}", days=2, end_day=DEMO_END_DAY, branches=3,
                                   invoices_per_day=(4, 6), lines_per_invoice=(1, 3))
    # (branches WEB, AKL01, WLG01; the last day and the one before)
    assert set(summary.receivables_scenarios) == {"long_description"}
    assert set(summary.payables_scenarios) == {"held_receipt"} and not summary.cogs_scenarios
    goods = extract_goods_received(engine_for(f"sqlite:///{tmp_path / 'short.sqlite'}"), summary.first_day, DEMO_END_DAY)
    assert "GR490006" in set(goods.receipts["receipt_no"]) and not {"GR490001", "GR490005"} & set(goods.receipts["receipt_no"])


def test_a_build_holds_every_scenario_its_summary_names(demo):
    assert tuple(demo.scenarios["receivables"]) == RECEIVABLES
    assert tuple(demo.scenarios["payables"]) == PAYABLES and tuple(demo.scenarios["cogs"]) == COGS
    invoices = demo.everything.documents.invoices.set_index("invoice_no")
    receipts = demo.goods.receipts.set_index("receipt_no")
    for process, frame, day_column in (("receivables", invoices, "business_date"), ("cogs", invoices, "business_date"),
                                       ("payables", receipts, "business_date")):
        for name, scenario in demo.scenarios[process].items():
            for number, day in zip(scenario.numbers, scenario.days):
                assert frame.loc[number, day_column] == day, (name, number)
                assert frame.loc[number, "branch_code"] == scenario.branch_code, (name, number)


# -- account customers -----------------------------------------------------------------------------------

def test_every_account_credit_names_its_original(demo):
    invoices = demo.receivables.documents.invoices
    credits = invoices[invoices["doc_type"] == "CREDIT"]
    assert len(credits) > 2 and credits["original_invoice_no"].notna().all()
    assert set(credits["source"]) == {"ACCOUNT"} and (credits["total_incl_cents"] < 0).all()
    known = set(invoices["invoice_no"])
    assert set(credits["original_invoice_no"]) <= known  # the demo's originals are in the days it holds
    assert invoices.loc[invoices["doc_type"] == "INVOICE", "original_invoice_no"].isna().all()


def test_a_credit_larger_than_its_invoices_amount_due(demo):
    scenario = demo.scenarios["receivables"]["credit_exceeds_amount_due"]
    invoice_no, credit_no = scenario.numbers
    invoice, credit = demo.receivable(invoice_no), demo.receivable(credit_no)
    assert (invoice["doc_type"], credit["doc_type"], credit["original_invoice_no"]) == ("INVOICE", "CREDIT", invoice_no)
    assert invoice["status"] == credit["status"] == "FINAL" and invoice["customer_code"] == credit["customer_code"]
    paid = demo.tenders_of(invoice_no)
    assert set(paid) == {"CASH", "ACCOUNT"} and sum(paid.values()) == invoice["total_incl_cents"]
    amount_due = invoice["total_incl_cents"] - paid["CASH"]  # what is left on account once the cash is paid
    assert -credit["total_incl_cents"] > amount_due > 0
    assert demo.tenders_of(credit_no) == {"ACCOUNT": credit["total_incl_cents"]}
    assert scenario.day == credit["business_date"] > invoice["business_date"]


def test_a_credit_whose_original_is_dated_later(demo):
    scenario = demo.scenarios["receivables"]["original_on_later_day"]
    invoice_no, credit_no = scenario.numbers
    invoice, credit = demo.receivable(invoice_no), demo.receivable(credit_no)
    assert credit["original_invoice_no"] == invoice_no and credit["doc_type"] == "CREDIT"
    assert scenario.day == credit["business_date"] < invoice["business_date"]  # the original posts on a later day
    assert invoice["created_at"] <= credit["created_at"]  # it was made first, dated ahead
    assert invoice["status"] == credit["status"] == "FINAL"
    assert 0 < -credit["total_incl_cents"] < invoice["total_incl_cents"]  # part of it returned


def test_two_customers_with_look_alike_names_and_their_own_codes(demo):
    scenario = demo.scenarios["receivables"]["look_alike_customers"]
    first, second = (demo.receivable(number) for number in scenario.numbers)
    assert first["customer_code"] != second["customer_code"]
    assert first["customer_name"] != second["customer_name"]
    assert first["customer_name"].strip().casefold() == second["customer_name"].strip().casefold()
    assert {(first["customer_code"], first["customer_name"]), (second["customer_code"], second["customer_name"])} == set(LOOK_ALIKE_CUSTOMERS)
    assert first["business_date"] == second["business_date"] == scenario.day


def test_a_stock_line_with_a_description_over_4000_characters(demo):
    [number] = demo.scenarios["receivables"]["long_description"].numbers
    lines = demo.lines_of(number)
    long = lines[lines["description"].str.len() > 4000]
    assert len(long) == 1 and long["sku"].notna().all() and long["unit_cost_excl_x10000"].notna().all()
    # the only one in the database: the E-Retailer's and the tills' descriptions stay short
    every = demo.everything.documents.lines
    assert (every["description"].str.len() > 4000).sum() == 1


def test_quantities_with_3_decimals_and_unit_prices_with_4(demo):
    [number] = demo.scenarios["receivables"]["three_decimal_quantities"].numbers
    lines = demo.lines_of(number)
    assert (lines["quantity_x1000"] % 10 != 0).any()  # a third decimal: 2.375 m
    assert (lines["unit_price_incl_x10000"] % 10 != 0).any()  # a fourth decimal: 18.4375
    for line in lines.itertuples():  # the contract's rounding, once per line
        assert line.line_total_incl_cents == half_up(line.quantity_x1000 * line.unit_price_incl_x10000, 100_000)
        assert line.line_gst_cents == half_up(3 * line.line_total_incl_cents, 23)


def test_a_till_sale_paid_in_part_on_account(demo):
    scenario = demo.scenarios["receivables"]["pos_on_account"]
    invoices, tenders = demo.receivables.documents.invoices, demo.receivables.tenders
    at_till = invoices[(invoices["source"] == "POS") & (invoices["branch_code"] == scenario.branch_code)
                       & (invoices["business_date"] == scenario.day)]
    [number] = at_till["invoice_no"].tolist()
    assert scenario.numbers in ((), (number,))  # the plan leaves the number to the tills; a build names it
    document = demo.receivable(number)
    assert document["status"] == "FINAL" and document["customer_code"] in {code for code, _ in ACCOUNT_CUSTOMERS}
    paid = demo.tenders_of(number)
    assert set(paid) == {"EFTPOS", "ACCOUNT"} and sum(paid.values()) == document["total_incl_cents"]
    assert paid["EFTPOS"] > 0 and paid["ACCOUNT"] > 0
    assert list(tenders.loc[tenders["invoice_no"] == number, "tender_no"]) == [1, 2]
    # the only POS documents the account-customer read takes are those paid on account
    assert set(tenders.loc[(tenders["source"] == "POS") & (tenders["tender_type"] == "ACCOUNT"), "invoice_no"]) == {number}

    # takings leaves it to the account-customer process: excluded, and its branch-day still posts;
    # the till's EFTPOS expected includes it (the terminal settles it), its ACCOUNT row is what it charged
    validated = validate_takings(demo.everything, DEMO_RULES)
    assert number in set(validated.excluded["invoice_no"]) and validated.quarantine.empty
    tender_days = validated.tender_days
    day = tender_days[(tender_days["branch_code"] == scenario.branch_code) & (tender_days["business_date"] == scenario.day)]
    assert int(day.loc[day["tender_type"] == "EFTPOS", "other_process_cents"].iloc[0]) == paid["EFTPOS"]
    cash_ups = demo.everything.cash_ups
    account_row = cash_ups[(cash_ups["branch_code"] == scenario.branch_code) & (cash_ups["business_date"] == scenario.day)
                           & (cash_ups["tender_type"] == "ACCOUNT")]
    assert account_row[["expected_cents", "counted_cents"]].values.tolist() == [[paid["ACCOUNT"], paid["ACCOUNT"]]]


def test_account_documents_add_up_and_are_paid(demo):
    invoices, lines = demo.receivables.documents.invoices.set_index("invoice_no"), demo.receivables.documents.lines
    sums = lines.groupby("invoice_no")[["line_total_incl_cents", "line_gst_cents"]].sum()
    assert (invoices["total_incl_cents"] == sums["line_total_incl_cents"].reindex(invoices.index)).all()
    assert (invoices["total_gst_cents"] == sums["line_gst_cents"].reindex(invoices.index)).all()
    paid = demo.receivables.tenders.groupby("invoice_no")["amount_cents"].sum()
    assert (paid.reindex(invoices.index) == invoices["total_incl_cents"]).all()
    account = demo.receivables.tenders[demo.receivables.tenders["tender_type"] == "ACCOUNT"]
    assert set(account["invoice_no"]) == set(invoices.index)  # every one of them is charged to account


# -- goods received -------------------------------------------------------------------------------------

def test_two_suppliers_invoices_with_one_number(demo):
    first, second = (demo.receipt(number) for number in demo.scenarios["payables"]["same_number_two_suppliers"].numbers)
    assert first["supplier_invoice_no"] == second["supplier_invoice_no"]
    assert first["supplier_code"] != second["supplier_code"] and first["status"] == second["status"] == "FINAL"


def test_one_suppliers_number_on_two_deliveries(demo):
    first, second = (demo.receipt(number) for number in demo.scenarios["payables"]["same_supplier_repeats_number"].numbers)
    assert (first["supplier_code"], first["supplier_invoice_no"]) == (second["supplier_code"], second["supplier_invoice_no"])
    assert first["business_date"] < second["business_date"] and first["status"] == second["status"] == "FINAL"
    # the number is repeated only where the scenarios say so
    final = demo.goods.receipts[demo.goods.receipts["status"] == "FINAL"]
    repeated = final[final.duplicated("supplier_invoice_no", keep=False)]
    planned = {*demo.scenarios["payables"]["same_number_two_suppliers"].numbers, *demo.scenarios["payables"]["same_supplier_repeats_number"].numbers}
    assert set(repeated["receipt_no"]) == planned


def test_goods_returned_is_a_negative_receipt(demo):
    [number] = demo.scenarios["payables"]["goods_returned"].numbers
    receipt, lines = demo.receipt(number), demo.receipt_lines(number)
    assert receipt["status"] == "FINAL" and receipt["total_excl_cents"] < 0 and receipt["total_gst_cents"] < 0
    assert (lines["quantity_x1000"] < 0).all() and (lines["line_total_excl_cents"] < 0).all() and (lines["line_gst_cents"] < 0).all()


def test_a_held_and_a_void_receipt(demo):
    [held] = demo.scenarios["payables"]["held_receipt"].numbers
    [void] = demo.scenarios["payables"]["void_receipt"].numbers
    assert demo.receipt(held)["status"] == "HELD"
    voided = demo.receipt(void)
    assert voided["status"] == "VOID" and voided["updated_at"].strftime("%Y-%m-%d") == voided["business_date"]
    assert voided["updated_at"].hour >= 14  # voided hours after it was received (09:50)


def test_standard_and_zero_rated_lines_on_one_receipt(demo):
    [number] = demo.scenarios["payables"]["zero_rated_lines"].numbers
    lines = demo.receipt_lines(number)
    assert set(lines["gst_code"]) == {"S", "Z"}
    zero = lines[lines["gst_code"] == "Z"]
    assert (zero["line_gst_cents"] == 0).all() and (zero["line_total_excl_cents"] > 0).all() and zero["sku"].isna().all()


def test_every_receipt_follows_cis_own_rules(demo):
    receipts, lines = demo.goods.receipts, demo.goods.lines
    assert receipts["supplier_code"].nunique() >= 5 and {"FINAL", "HELD", "VOID"} <= set(receipts["status"])
    for line in lines.itertuples():
        assert line.line_total_excl_cents == half_up(line.quantity_x1000 * line.unit_cost_excl_x10000, 100_000), line
        assert line.line_gst_cents == (half_up(line.line_total_excl_cents * 15, 100) if line.gst_code == "S" else 0), line
    sums = lines.groupby("receipt_no")[["line_total_excl_cents", "line_gst_cents"]].sum()
    header = receipts.set_index("receipt_no")
    assert (header["total_excl_cents"] == sums["line_total_excl_cents"].reindex(header.index)).all()
    assert (header["total_gst_cents"] == sums["line_gst_cents"].reindex(header.index)).all()
    assert set(lines["analysis_code"]) == DEMO_ANALYSIS_CODES  # what the demo's mapping covers, no more
    numbers = [number for scenario in demo.scenarios["payables"].values() for number in scenario.numbers]
    assert set(lines.loc[lines["receipt_no"].isin(numbers), "analysis_code"]) == DEMO_ANALYSIS_CODES
    assert {"S", "Z"} == set(lines["gst_code"]) and receipts["branch_name"].notna().all()
    assert demo.goods.excess_decimals.empty and demo.goods.orphan_lines.empty


# -- cost of goods sold ----------------------------------------------------------------------------------

def final_lines_of_day(demo: Demo, branch: str, day: str) -> pd.DataFrame:
    invoices, lines = demo.everything.documents.invoices, demo.everything.documents.lines
    chosen = invoices[(invoices["status"] == "FINAL") & (invoices["branch_code"] == branch) & (invoices["business_date"] == day)]
    return lines[lines["invoice_no"].isin(chosen["invoice_no"])]


def test_stock_lines_without_a_cost_are_in_one_known_branch_day(demo):
    scenario = demo.scenarios["cogs"]["missing_cost"]
    lines = demo.lines_of(*scenario.numbers)
    stock = lines[lines["sku"].notna()]
    assert stock["unit_cost_excl_x10000"].isna().sum() >= 2 and stock["unit_cost_excl_x10000"].notna().any()
    # across the database, FINAL stock lines without a cost are in that branch-day only
    invoices, every = demo.everything.documents.invoices, demo.everything.documents.lines
    final = every[every["invoice_no"].isin(invoices.loc[invoices["status"] == "FINAL", "invoice_no"])]
    costless = final[final["sku"].notna() & final["unit_cost_excl_x10000"].isna()]
    branch_of = invoices.set_index("invoice_no")["branch_code"]
    assert {(branch_of[number], day) for number, day in zip(costless["invoice_no"], costless["business_date"])} == {scenario.branch_day}
    assert len(final_lines_of_day(demo, *scenario.branch_day)["invoice_no"].unique()) > 1  # the day has other sales too


def test_non_stock_lines_have_no_cost_and_stock_lines_have_theirs(demo):
    scenario = demo.scenarios["cogs"]["freight_not_cogs"]
    lines = demo.lines_of(*scenario.numbers)
    freight = lines[lines["sku"].isna()]
    assert len(freight) == 1 and freight["analysis_code"].tolist() == ["FREIGHT"] and freight["unit_cost_excl_x10000"].isna().all()
    assert lines.loc[lines["sku"].notna(), "unit_cost_excl_x10000"].notna().all()
    # the rule holds across the database: a line without a sku has no cost
    every = demo.everything.documents.lines
    assert every.loc[every["sku"].isna(), "unit_cost_excl_x10000"].isna().all()
    assert every["unit_cost_excl_x10000"].notna().sum() > len(every) / 2
    assert demo.everything.documents.cost_excess_decimals.empty
