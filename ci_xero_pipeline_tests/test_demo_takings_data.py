"""The demo CI database's end-of-day takings (issue 11, item 9: the data).

The tills sell gift vouchers (VOUCHER lines, exempt), round cash to 10 cents (ROUNDING lines), are
over and short, and hold the named scenarios of TAKINGS_SCENARIOS. Each scenario is found here with the
extraction's own figures (extract_sales_with_tenders), in the demo month (the demo_ci_url fixture) and
in a build of other arguments (where DemoSummary.takings_scenarios says it is); the web store's
documents are the same rows whether the tills are built or not. Then the demo's takings validate
(nothing quarantined: the demo plants no bad POS data) and become the documents processes.md §1 says,
and the sandbox Xero, whose seeded chart now holds 481 Till over/short and 482 Cash rounding, takes
them over HTTP and holds every one PAID, with the voucher sold at a branch and the one redeemed on the
web meeting in the liability account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from ci_xero_pipeline.books.eretailer import build_eretailer_documents
from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.takings import (
    TakingsBooks,
    TakingsRules,
    ValidatedTakings,
    build_takings_documents,
    check_takings_books,
    takings_number,
    validate_takings,
)
from ci_xero_pipeline.books.tenders import TenderMapping, build_eretailer_tender_payments
from ci_xero_pipeline.books.validation import validate_sales_documents
from ci_xero_pipeline.ci.demo import (
    DEMO_MONTH_END,
    TAKINGS_SCENARIO_PLAN,
    TAKINGS_SCENARIOS,
    create_demo_database,
    takings_scenarios,
)
from ci_xero_pipeline.ci.extract import SalesWithTenders, engine_for, extract_sales_documents, extract_sales_with_tenders
from ci_xero_pipeline.resources import takings_rules
from ci_xero_pipeline.sandbox.seed import NZ_ACCOUNTS
from ci_xero_pipeline.sandbox.server import SandboxOrganisation
from ci_xero_pipeline.settings import load_settings

from .conftest import DEMO_DAYS, DEMO_END_DAY, PROJECT_ROOT
from .test_sandbox_accounting import _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
SCENARIOS = ("negative_tender", "net_negative", "over_short", "voucher_sold", "voucher_redeemed_online")
SALES_ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"}
OVER_SHORT, ROUNDING_ACCOUNT, LIABILITY = "481", "482", "835"
# the demo's takings rules (as test_books_takings builds them; site.yaml says the same)
DEMO_RULES = TakingsRules(
    sales_accounts=SALES_ACCOUNTS,
    tender_accounts={"CASH": "611", "EFTPOS": "612", "VISA": "613", "MASTERCARD": "613", "AMEX": "614", "GIFT_VOUCHER": LIABILITY},
    over_short_account=OVER_SHORT, rounding_account=ROUNDING_ACCOUNT, rounding_analysis_codes=("ROUNDING",),
    voucher_analysis_codes=("VOUCHER",), voucher_liability_account=LIABILITY,
)
# another build: other days, seed and branches, so that nothing holds by the demo month's luck alone
OTHER_BUILD = dict(days=12, end_day=date(2026, 11, 30), branches=7, invoices_per_day=(30, 60), seed=7)


@dataclass(frozen=True)
class Demo:
    read: SalesWithTenders  # every source, the database's days
    scenarios: dict[str, tuple[str, str]]

    def pos_tenders(self, branch: str, day: str) -> pd.DataFrame:
        tenders = self.read.tenders
        return tenders[(tenders["source"] == "POS") & (tenders["status"] == "FINAL")
                       & (tenders["branch_code"] == branch) & (tenders["business_date"] == day)]

    def pos_documents(self, branch: str, day: str) -> pd.DataFrame:
        invoices = self.read.documents.invoices
        return invoices[(invoices["source"] == "POS") & (invoices["status"] == "FINAL")
                        & (invoices["branch_code"] == branch) & (invoices["business_date"] == day)]


@pytest.fixture(scope="module")
def demo_month(demo_ci_url) -> Demo:
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    return Demo(extract_sales_with_tenders(engine_for(demo_ci_url), first, DEMO_END_DAY), dict(TAKINGS_SCENARIOS))


@pytest.fixture(scope="module")
def other_build(tmp_path_factory) -> Demo:
    url = f"sqlite:///{tmp_path_factory.mktemp('other') / 'ci.sqlite'}"
    summary = create_demo_database(url, **OTHER_BUILD)
    return Demo(extract_sales_with_tenders(engine_for(url), summary.first_day, summary.last_day), dict(summary.takings_scenarios))


@pytest.fixture(params=["demo month", "other build"])
def demo(request) -> Demo:
    return request.getfixturevalue("demo_month" if request.param == "demo month" else "other_build")


def tender_sums(tenders: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in tenders.groupby("tender_type")["amount_cents"].sum().items()}


# -- where the scenarios are --------------------------------------------------------------------------

def test_the_scenarios_are_named_with_their_branch_and_day():
    assert tuple(TAKINGS_SCENARIOS) == SCENARIOS == tuple(TAKINGS_SCENARIO_PLAN)
    assert TAKINGS_SCENARIOS == takings_scenarios(DEMO_MONTH_END) and DEMO_MONTH_END == DEMO_END_DAY
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    for name, (branch, day) in TAKINGS_SCENARIOS.items():
        assert first.isoformat() <= day <= DEMO_END_DAY.isoformat(), name
    # the voucher sold at a branch and the one redeemed on the web are on the same day
    assert TAKINGS_SCENARIOS["voucher_sold"][1] == TAKINGS_SCENARIOS["voucher_redeemed_online"][1]
    assert TAKINGS_SCENARIOS["voucher_redeemed_online"][0] == "WEB"


def test_a_build_holds_every_scenario_its_summary_names(demo):
    assert tuple(demo.scenarios) == SCENARIOS
    branches = set(demo.read.branches["branch_code"])
    days = set(demo.read.documents.invoices["business_date"])
    assert all(branch in branches and day in days for branch, day in demo.scenarios.values())


def test_negative_tender_a_large_cash_refund_on_a_day_of_net_sales(demo):
    branch, day = demo.scenarios["negative_tender"]
    by_type = tender_sums(demo.pos_tenders(branch, day))
    assert by_type["CASH"] < 0 < sum(by_type.values())
    assert int(demo.pos_documents(branch, day)["total_incl_cents"].sum()) == sum(by_type.values())
    # the refund is a credit of an earlier sale of the branch, refunded in cash
    invoices = demo.read.documents.invoices.set_index("invoice_no")
    credits = demo.pos_documents(branch, day)
    credits = credits[credits["doc_type"] == "CREDIT"]
    refunds = demo.read.tenders[demo.read.tenders["invoice_no"].isin(credits["invoice_no"]) & (demo.read.tenders["tender_type"] == "CASH")]
    biggest = refunds.sort_values("amount_cents").iloc[0]
    original = invoices.loc[invoices.loc[biggest["invoice_no"], "original_invoice_no"]]
    assert (original["branch_code"], original["doc_type"]) == (branch, "INVOICE") and original["business_date"] < day


def test_net_negative_refunds_exceed_the_days_sales(demo):
    branch, day = demo.scenarios["net_negative"]
    by_type = tender_sums(demo.pos_tenders(branch, day))
    assert sum(by_type.values()) < 0
    assert int(demo.pos_documents(branch, day)["total_incl_cents"].sum()) == sum(by_type.values())
    assert any(amount < 0 for amount in by_type.values())


def test_over_short_the_cash_counted_differs_from_the_cash_expected(demo):
    branch, day = demo.scenarios["over_short"]
    cash_ups = demo.read.cash_ups
    [cash] = cash_ups[(cash_ups["branch_code"] == branch) & (cash_ups["business_date"] == day)
                      & (cash_ups["tender_type"] == "CASH")].itertuples(index=False)
    assert int(cash.counted_cents) - int(cash.expected_cents) == -500  # $5.00 short
    assert int(cash.expected_cents) == tender_sums(demo.pos_tenders(branch, day))["CASH"]


def test_a_voucher_sold_at_a_branch_on_the_day_a_web_order_is_paid_in_part_by_voucher(demo):
    branch, day = demo.scenarios["voucher_sold"]
    lines = demo.read.documents.lines
    sold = lines[lines["invoice_no"].isin(demo.pos_documents(branch, day)["invoice_no"]) & (lines["analysis_code"] == "VOUCHER")]
    assert len(sold) >= 1
    assert (sold["gst_code"] == "E").all() and (sold["line_gst_cents"] == 0).all()
    assert sold["sku"].isna().all() and sold["unit_cost_excl_x10000"].isna().all() and (sold["line_total_incl_cents"] > 0).all()

    web_branch, web_day = demo.scenarios["voucher_redeemed_online"]
    assert web_day == day
    tenders, invoices = demo.read.tenders, demo.read.documents.invoices
    web = tenders[(tenders["source"] == "ERETAILER") & (tenders["status"] == "FINAL") & (tenders["business_date"] == day)
                  & (tenders["branch_code"] == web_branch)]
    paid_by_voucher = set(web.loc[web["tender_type"] == "GIFT_VOUCHER", "invoice_no"])
    in_part = {number for number in paid_by_voucher if (web["invoice_no"] == number).sum() > 1}
    assert in_part, "no web order of the day paid in part by gift voucher"
    assert (invoices.set_index("invoice_no").loc[sorted(in_part), "doc_type"] == "INVOICE").all()
    # the pair is findable: a voucher sold for what one was redeemed for
    redeemed = set(web.loc[web["tender_type"] == "GIFT_VOUCHER", "amount_cents"].astype(int))
    assert set(sold["line_total_incl_cents"].astype(int)) & redeemed


# -- every POS document and cash-up ---------------------------------------------------------------------

def test_every_pos_document_adds_up_and_its_cash_is_whole_ten_cents(demo):
    invoices, lines, tenders = demo.read.documents.invoices, demo.read.documents.lines, demo.read.tenders
    pos = invoices[invoices["source"] == "POS"].set_index("invoice_no")
    pos_lines = lines[lines["invoice_no"].isin(pos.index)]
    pos_tenders = tenders[tenders["source"] == "POS"]
    totals = pos["total_incl_cents"].astype(int)
    assert (pos_lines.groupby("invoice_no")["line_total_incl_cents"].sum().reindex(pos.index) == totals).all()
    assert (pos_lines.groupby("invoice_no")["line_gst_cents"].sum().reindex(pos.index) == pos["total_gst_cents"]).all()
    assert (pos_tenders.groupby("invoice_no")["amount_cents"].sum().reindex(pos.index) == totals).all()  # Σ tenders = total
    cash = pos_tenders[pos_tenders["tender_type"] == "CASH"]
    assert len(cash) and (cash["amount_cents"] % 10 == 0).all()

    rounding = pos_lines[pos_lines["analysis_code"] == "ROUNDING"]
    assert len(rounding) and rounding["invoice_no"].is_unique
    assert set(rounding["invoice_no"]) <= set(cash["invoice_no"])  # only cash is rounded
    assert rounding["line_total_incl_cents"].between(-5, 5).all() and (rounding["line_total_incl_cents"] != 0).all()
    assert (rounding["gst_code"] == "E").all() and (rounding["line_gst_cents"] == 0).all() and rounding["sku"].isna().all()
    # a cash document without a rounding line was whole ten cents already
    unrounded = sorted(set(cash["invoice_no"]) - set(rounding["invoice_no"]))
    assert (totals.loc[unrounded] % 10 == 0).all()

    vouchers = pos_lines[pos_lines["analysis_code"] == "VOUCHER"]
    assert len(vouchers) > 1  # the tills sell them now and then, not only in the scenario
    assert (vouchers["gst_code"] == "E").all() and (vouchers["line_gst_cents"] == 0).all()
    assert vouchers["sku"].isna().all() and vouchers["unit_cost_excl_x10000"].isna().all()
    assert (vouchers["quantity_x1000"] == 1000).all() and (vouchers["line_total_incl_cents"] > 0).all()


def test_cash_ups_expect_what_the_final_pos_documents_were_paid(demo):
    tenders = demo.read.tenders
    final = tenders[(tenders["source"] == "POS") & (tenders["status"] == "FINAL")]
    tendered = final.groupby(["branch_code", "business_date", "tender_type"])["amount_cents"].sum().astype(int)
    cash_ups = demo.read.cash_ups.set_index(["branch_code", "business_date", "tender_type"])
    assert cash_ups["expected_cents"].astype(int).sort_index().to_dict() == tendered.to_dict()
    counted_cash = cash_ups.xs("CASH", level="tender_type")["counted_cents"]
    assert (counted_cash % 10 == 0).all()  # coins and notes make whole ten cents
    others = cash_ups.drop(index="CASH", level="tender_type")
    assert (others["counted_cents"] == others["expected_cents"]).all()  # card settlements are what they are
    assert (cash_ups["counted_cents"] != cash_ups["expected_cents"]).sum() > 1  # tills over and short besides the scenario


def test_the_web_store_is_the_same_with_or_without_the_tills(tmp_path):
    arguments = dict(days=5, end_day=DEMO_END_DAY, branches=5, invoices_per_day=(30, 50))
    alone, everything = (f"sqlite:///{tmp_path / name}.sqlite" for name in ("alone", "everything"))
    create_demo_database(alone, include_other_processes=False, **arguments)
    summary = create_demo_database(everything, **arguments)
    assert set(summary.takings_scenarios) == set(SCENARIOS)
    first = DEMO_END_DAY - timedelta(days=4)
    web, full = (extract_sales_with_tenders(engine_for(url), first, DEMO_END_DAY, source="ERETAILER") for url in (alone, everything))
    pd.testing.assert_frame_equal(web.documents.invoices, full.documents.invoices)
    pd.testing.assert_frame_equal(web.documents.lines, full.documents.lines)
    pd.testing.assert_frame_equal(web.tenders, full.tenders)
    pos = extract_sales_documents(engine_for(everything), first, DEMO_END_DAY, source="POS")
    assert len(pos.invoices) and pos.invoices["invoice_no"].is_monotonic_increasing
    assert list(pos.invoices.sort_values(["business_date", "created_at"], kind="stable")["invoice_no"]) == list(pos.invoices["invoice_no"])


# -- the demo's takings as books ---------------------------------------------------------------------------

def takings_books(demo: Demo, rules: TakingsRules = DEMO_RULES) -> tuple[ValidatedTakings, TakingsBooks]:
    validated = validate_takings(demo.read, rules)
    # the demo plants no bad POS data: no branch-day of it is held back
    assert validated.quarantine.empty, validated.quarantine[["business_date", "branch_code", "check", "reason"]].to_dict("records")
    assert not validated.branch_days["quarantined"].any() and validated.unmapped.empty
    books = build_takings_documents(validated, rules)
    problems = check_takings_books(validated, books, rules)
    assert problems.empty, problems.to_dict("records")
    return validated, books


def document_of(books: TakingsBooks, branch: str, day: str) -> pd.Series:
    found = books.documents[(books.documents["branch_code"] == branch) & (books.documents["business_date"] == day)]
    assert len(found) == 1, found
    return found.iloc[0]


def test_the_demos_takings_become_the_documents_of_processes_md(demo):
    validated, books = takings_books(demo)
    assert len(books.documents) + len(books.no_document) == len(validated.branch_days)

    # net negative: a takings credit note, refunded by the negative tenders, the positive ones as lines
    branch, day = demo.scenarios["net_negative"]
    by_type = tender_sums(demo.pos_tenders(branch, day))
    note = document_of(books, branch, day)
    assert (note["endpoint"], note["number"]) == ("CreditNotes", takings_number(DEMO_RULES, branch, day, credit=True))
    assert note["total_cents"] == -sum(amount for amount in by_type.values() if amount < 0)  # = Σ refunds
    refunds = books.payments[books.payments["document_key"] == note["document_key"]]
    assert dict(zip(refunds["tender_type"], refunds["amount_cents"])) == {t: -a for t, a in by_type.items() if a < 0}
    lines = books.tender_lines[books.tender_lines["document_key"] == note["document_key"]]
    assert dict(zip(lines["tender_type"], lines["amount_cents"])) == {t: a for t, a in by_type.items() if a > 0}

    # negative tender: an invoice with the cash refunded as a positive line to the cash account, no cash payment
    branch, day = demo.scenarios["negative_tender"]
    by_type = tender_sums(demo.pos_tenders(branch, day))
    invoice = document_of(books, branch, day)
    assert invoice["endpoint"] == "Invoices" and invoice["total_cents"] > 0
    lines = books.tender_lines[books.tender_lines["document_key"] == invoice["document_key"]]
    assert dict(zip(lines["tender_type"], lines["amount_cents"])) == {"CASH": -by_type["CASH"]}
    cash_line = [item for item in invoice["payload"]["LineItems"] if item["AccountCode"] == "611"]
    assert [(item["LineAmount"], item["TaxType"]) for item in cash_line] == [(D(-by_type["CASH"]) / 100, "NONE")]
    paid = books.payments[books.payments["document_key"] == invoice["document_key"]]
    assert "CASH" not in set(paid["tender_type"]) and int(paid["amount_cents"].sum()) == invoice["total_cents"]

    # over/short: the cash counted less expected, a NONE line to the over/short account
    branch, day = demo.scenarios["over_short"]
    invoice = document_of(books, branch, day)
    short = [item for item in invoice["payload"]["LineItems"] if item["AccountCode"] == OVER_SHORT]
    assert [(item["LineAmount"], item["TaxType"], item["TaxAmount"]) for item in short] == [(D("-5.00"), "NONE", D("0.00"))]
    assert "Till short CASH" in short[0]["Description"]

    # a voucher sold: to the liability, NONE, for what CI sold
    branch, day = demo.scenarios["voucher_sold"]
    invoice = document_of(books, branch, day)
    lines = demo.read.documents.lines
    sold = lines[lines["invoice_no"].isin(demo.pos_documents(branch, day)["invoice_no"]) & (lines["analysis_code"] == "VOUCHER")]
    liability = [item for item in invoice["payload"]["LineItems"] if item["AccountCode"] == LIABILITY]
    assert [(item["LineAmount"], item["TaxType"]) for item in liability] == [(D(int(sold["line_total_incl_cents"].sum())) / 100, "NONE")]

    # cash rounding: Σ each branch-day's ROUNDING lines on a NONE line to the rounding account
    rounding = lines[lines["analysis_code"] == "ROUNDING"].merge(
        validated.invoices[["invoice_no", "branch_code"]], on="invoice_no")  # (lines carry their business_date)
    wanted = {key: D(int(cents)) / 100 for key, cents in
              rounding.groupby(["branch_code", "business_date"])["line_total_incl_cents"].sum().items() if cents}
    shown = {}
    for document in books.documents.itertuples(index=False):
        sign = -1 if document.endpoint == "CreditNotes" else 1
        for item in document.payload["LineItems"]:
            if item["AccountCode"] == ROUNDING_ACCOUNT:
                assert item["TaxType"] == "NONE" and item["TaxAmount"] == 0
                shown[(document.branch_code, document.business_date)] = sign * item["LineAmount"]
    assert shown == wanted and wanted


def test_the_sites_own_takings_settings_take_the_demo_month_whole(demo_month):
    rules = takings_rules(load_settings(PROJECT_ROOT / "site.yaml"))
    assert (rules.over_short_account, rules.rounding_account, rules.voucher_liability_account) == (OVER_SHORT, ROUNDING_ACCOUNT, LIABILITY)
    assert "VOUCHER" in rules.voucher_analysis_codes and "ROUNDING" in rules.rounding_analysis_codes
    takings_books(demo_month, rules)


# -- against the sandbox Xero, over HTTP --------------------------------------------------------------------

def test_the_seeded_chart_holds_the_takings_accounts():
    seeded = {account.code: account for account in NZ_ACCOUNTS}
    for code, name in ((OVER_SHORT, "Till over/short"), (ROUNDING_ACCOUNT, "Cash rounding")):
        account = seeded[code]
        assert (account.name, account.type, account.account_class, account.tax_type, account.status) == (
            name, "OVERHEADS", "EXPENSE", "NONE", "ACTIVE")
    assert len({account.name.lower() for account in NZ_ACCOUNTS}) == len(NZ_ACCOUNTS)  # Xero wants names unique


def test_the_sandbox_takes_the_demo_months_takings_and_each_ends_paid(make_api, demo_month):
    validated, books = takings_books(demo_month)
    names = dict(zip(demo_month.read.branches["branch_code"], demo_month.read.branches["branch_name"]))
    api = make_api(SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"CI Branches": list(names.values())}))
    accounts = {account["Code"]: account for account in api.get("Accounts")["Accounts"]}
    assert (accounts[OVER_SHORT]["Name"], accounts[OVER_SHORT]["Type"], accounts[OVER_SHORT]["TaxType"]) == ("Till over/short", "OVERHEADS", "NONE")
    assert (accounts[ROUNDING_ACCOUNT]["Name"], accounts[ROUNDING_ACCOUNT]["Type"]) == ("Cash rounding", "OVERHEADS")

    for endpoint in ("Invoices", "CreditNotes"):
        api.create(endpoint, *books.documents.loc[books.documents["endpoint"] == endpoint, "payload"])
    made = api.create("Payments", *books.payments["payload"])
    assert [payment["Reference"] for payment in made] == list(books.payments["payment_key"])

    invoices = {doc["InvoiceNumber"]: doc for doc in api.get("Invoices")["Invoices"]}
    notes = {doc["CreditNoteNumber"]: doc for doc in api.get("CreditNotes")["CreditNotes"]}
    for document in books.documents.itertuples(index=False):
        shown = invoices.get(document.number) if document.endpoint == "Invoices" else notes.get(document.number)
        assert shown is not None, document.number
        assert (shown["Status"], shown["Total"], shown["TotalTax"]) == (
            "PAID", D(document.total_cents) / 100, D(document.tax_cents) / 100), document.number
    branch, day = demo_month.scenarios["net_negative"]
    note = notes[takings_number(DEMO_RULES, branch, day, credit=True)]
    assert (note["RemainingCredit"], note["Type"]) == (D("0.00"), "ACCRECCREDIT")
    branch, day = demo_month.scenarios["negative_tender"]
    cash = api.get("Payments", where=f'Reference=="{takings_number(DEMO_RULES, branch, day)}/CASH"')["Payments"]
    assert cash == []  # the cash refunded is a line, not a (negative) payment

    # the voucher redeemed on the web that day is a payment out of the same liability, for the same amount
    _, day = demo_month.scenarios["voucher_redeemed_online"]
    web = demo_month.read.of_source("ERETAILER")
    tenders = web.tenders
    redeemed = tenders[(tenders["tender_type"] == "GIFT_VOUCHER") & (tenders["business_date"] == day) & (tenders["status"] == "FINAL")]
    branch, _ = demo_month.scenarios["voucher_sold"]
    lines = demo_month.read.documents.lines
    sold = lines[lines["invoice_no"].isin(demo_month.pos_documents(branch, day)["invoice_no"]) & (lines["analysis_code"] == "VOUCHER")]
    number = redeemed[redeemed["amount_cents"].isin(set(sold["line_total_incl_cents"]))]["invoice_no"].iloc[0]
    site = EretailerRules(mode="detail", status="AUTHORISED", sales_accounts=SALES_ACCOUNTS)
    checked = validate_sales_documents(web.documents, site)
    order = checked.invoices[checked.invoices["invoice_no"] == number]
    documents = build_eretailer_documents(order, checked.lines[checked.lines["invoice_no"] == number], site)
    paid = build_eretailer_tender_payments(documents, order, tenders[tenders["invoice_no"] == number],
                                           TenderMapping(accounts={"ONLINE": "615", "VISA": "613", "MASTERCARD": "613",
                                                                   "PAYPAL": "616", "AFTERPAY": "617"},
                                                         voucher_liability_account=LIABILITY))
    assert paid.problems.empty
    api.create("Invoices", *documents["payload"], unitdp=4)  # as the posting path sends Detail documents
    api.create("Payments", *paid.payments["payload"])
    out_of_liability = api.get("Payments", where=f'Reference=="{number}/GIFT_VOUCHER"')["Payments"]
    voucher_cents = int(redeemed.loc[redeemed["invoice_no"] == number, "amount_cents"].iloc[0])
    assert [(p["Account"]["Code"], p["Amount"]) for p in out_of_liability] == [(LIABILITY, D(voucher_cents) / 100)]
    assert api.get("Invoices", InvoiceNumbers=number)["Invoices"][0]["Status"] == "PAID"
