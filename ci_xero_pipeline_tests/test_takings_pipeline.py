"""End-of-day takings through real Dagster runs against the sandbox Xero: the sign rule's cases, over/short,
a voucher sold at a till and redeemed on the web, an unmapped tender quarantined, a day changed in CI after
posting, a lost answer on a payment batch, the mapping checked before anything is sent, and a re-run that
writes nothing. Every clearing account must move by exactly what CI counted."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from ci_xero_pipeline.ci.demo import create_ci_tables, insert_documents
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.xero.client import parse_xero_date

from .pipeline_helpers import connect_site, xero_client

NORMAL, CASH_OUT, NET_NEGATIVE, UNMAPPED, VOUCHERS = (date(2026, 3, d) for d in (2, 3, 4, 5, 6))
BRANCH = "AKL01"


def document(number: str, day: date, lines: list[tuple[str, str]], tenders: list[tuple[str, str]], source: str = "POS",
             branch: str = BRANCH, credit: bool = False) -> dict:
    """A FINAL CI document: lines (analysis code, amount incl GST; a negative amount is a refund line)."""
    created = datetime.combine(day, datetime.min.time()) + timedelta(hours=11)
    invoice = {"invoice_no": number, "branch_code": branch, "business_date": day, "created_at": created, "source": source,
               "doc_type": "CREDIT" if credit else "INVOICE"}
    if source == "ERETAILER":
        invoice |= {"customer_code": "C1", "customer_name": "Web Customer", "order_ref": f"W{number}"}
    rows = []
    for n, (code, amount) in enumerate(lines, start=1):
        value = Decimal(amount)
        rows.append({"invoice_no": number, "line_no": n, "description": f"{code} item", "analysis_code": code,
                     "quantity": Decimal("-1.000") if value < 0 else Decimal("1.000"), "unit_price_incl": abs(value),
                     "line_total_incl": value, "gst_code": "E" if code == "VOUCHER" else "S",
                     **({"line_gst": Decimal("0.00")} if code == "VOUCHER" else {})})
    return {"invoice": invoice, "lines": rows,
            "tenders": [{"invoice_no": number, "tender_no": n, "tender_type": t, "amount": Decimal(a), "paid_at": created}
                        for n, (t, a) in enumerate(tenders, start=1)]}


DOCUMENTS = [
    # a plain day, with the till 0.50 short
    document("P100", NORMAL, [("APPAREL", "60.00"), ("FOOTWEAR", "40.00")], [("CASH", "60.00"), ("EFTPOS", "40.00")]),
    # net positive, but cash out: the CASH tender nets −50 → a line of 50.00 to the cash clearing account
    document("P200", CASH_OUT, [("APPAREL", "200.00")], [("EFTPOS", "200.00")]),
    document("P201", CASH_OUT, [("APPAREL", "-50.00")], [("CASH", "-50.00")], credit=True),
    # refunds beyond sales: a takings credit note, refunded from EFTPOS, the cash sale as a line
    document("P300", NET_NEGATIVE, [("FOOTWEAR", "30.00")], [("CASH", "30.00")]),
    document("P301", NET_NEGATIVE, [("FOOTWEAR", "-100.00")], [("EFTPOS", "-100.00")], credit=True),
    # a tender nobody mapped: the branch-day is quarantined
    document("P400", UNMAPPED, [("APPAREL", "25.00")], [("BITCOIN", "25.00")]),
    # a voucher sold at the till, and one redeemed on the web the same day
    document("P500", VOUCHERS, [("VOUCHER", "50.00"), ("GIFTS", "20.00")], [("CASH", "70.00")]),
    document("W500", VOUCHERS, [("APPAREL", "80.00")], [("GIFT_VOUCHER", "50.00"), ("ONLINE", "30.00")], source="ERETAILER",
             branch="WEB"),
]
# (day, tender) → (expected, counted)
CASH_UPS = {
    (NORMAL, "CASH"): ("60.00", "59.50"), (NORMAL, "EFTPOS"): ("40.00", "40.00"),
    (CASH_OUT, "CASH"): ("-50.00", "-50.00"), (CASH_OUT, "EFTPOS"): ("200.00", "200.00"),
    (NET_NEGATIVE, "CASH"): ("30.00", "30.00"), (NET_NEGATIVE, "EFTPOS"): ("-100.00", "-100.00"),
    (UNMAPPED, "BITCOIN"): ("25.00", "25.00"),
    (VOUCHERS, "CASH"): ("70.00", "70.00"),
}


def fill(url: str, documents=DOCUMENTS, cash_ups=CASH_UPS) -> None:
    engine = sa.create_engine(url)
    tables = create_ci_tables(engine, drop=True)
    insert_documents(
        engine, [d["invoice"] for d in documents], [line for d in documents for line in d["lines"]],
        tenders=[tender for d in documents for tender in d["tenders"]],
        branches=[{"branch_code": BRANCH, "branch_name": "Auckland Queen Street", "active": True},
                  {"branch_code": "WEB", "branch_name": "Online Store", "active": True}],
    )
    with engine.begin() as connection:
        if cash_ups:
            connection.execute(tables.cash_ups.insert(), [
                {"branch_code": BRANCH, "business_date": day, "tender_type": tender, "expected_amount": Decimal(expected),
                 "counted_amount": Decimal(counted)} for (day, tender), (expected, counted) in cash_ups.items()
            ])
    engine.dispose()


def set_counted(url: str, day: date, tender: str, counted: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE ci_cash_ups SET counted_amount = :c WHERE business_date = :d AND tender_type = :t"),
                           {"c": counted, "d": day.isoformat(), "t": tender})
    engine.dispose()


@pytest.fixture
def site(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    path = make_site(sandbox, url, {"eretailer": {"pay_tenders": True, "mode": "detail"}, "mapping": {"create_missing_accounts": True}})
    connect_site(path)
    return path


def takings_documents(path) -> dict[str, dict]:
    client = xero_client(path)
    found = {}
    for endpoint, number_field in (("Invoices", "InvoiceNumber"), ("CreditNotes", "CreditNoteNumber")):
        for doc in client.get_all(endpoint, endpoint, {"page": 1, "unitdp": 4}):
            found[doc[number_field]] = doc
    return found


def movements(path) -> dict[tuple[str, str], int]:
    """(day, account) → how Xero's payments moved the account (a payment of an invoice debits it, a refund
    of a credit note credits it), from GET /Payments."""
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for payment in xero_client(path).get_all("Payments", "Payments", {"page": 1}):
        if payment.get("Status") == "DELETED":
            continue
        sign = -1 if payment.get("CreditNote") or payment.get("PaymentType") == "ARCREDITPAYMENT" else 1
        moved[(parse_xero_date(payment["Date"]).isoformat(), payment["Account"]["Code"])] += sign * decimal_to_cents(payment["Amount"])
    return dict(moved)


def latest(instance: DagsterInstance, asset: str, day: date) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day.isoformat()]), limit=1).records
    return records[0].asset_materialization.metadata


def line_amounts(doc: dict) -> dict[str, int]:
    by_account: dict[str, int] = defaultdict(int)
    for line in doc["LineItems"]:
        by_account[line["AccountCode"]] += decimal_to_cents(line["LineAmount"])
    return dict(by_account)


def test_takings_post_by_the_sign_rule_and_every_clearing_account_moves_by_what_ci_counted(site):
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, NORMAL, VOUCHERS, instance, process="takings")
    held = takings_documents(site)

    normal = held["EOD-AKL01-20260302"]
    assert normal["Status"] == "PAID" and normal["Total"] == Decimal("99.50")
    assert line_amounts(normal) == {"201": 6000, "202": 4000, "481": -50}  # the till 0.50 short
    cash_out = held["EOD-AKL01-20260303"]
    assert cash_out["Status"] == "PAID" and line_amounts(cash_out) == {"201": 15000, "611": 5000}
    refund_day = held["EODCR-AKL01-20260304"]
    assert refund_day["Type"] == "ACCRECCREDIT" and refund_day["Status"] == "PAID"
    assert line_amounts(refund_day) == {"202": 7000, "611": 3000} and refund_day["Total"] == Decimal("100.00")
    assert "EOD-AKL01-20260305" not in held  # the unmapped tender's day is quarantined
    assert held["EOD-AKL01-20260306"]["Status"] == "PAID"
    assert line_amounts(held["EOD-AKL01-20260306"]) == {"835": 5000, "204": 2000}

    moved = movements(site)
    assert moved[("2026-03-02", "611")] == 5950 and moved[("2026-03-02", "612")] == 4000
    assert moved[("2026-03-03", "612")] == 20000 and ("2026-03-03", "611") not in moved  # cash out is the line
    assert moved[("2026-03-04", "612")] == -10000  # the refund from EFTPOS
    assert moved[("2026-03-06", "611")] == 7000

    # the quarantined day names the tender and the setting; every other check passed
    # the quarantine fails its (non-blocking) checks, and nothing else fails
    assert sorted(outcome.failed_checks) == ["validated_takings:every_code_mapped", "validated_takings:no_quarantined_rows"]
    reasons = str(latest(instance, "validated_takings", UNMAPPED)["quarantine"].value.records)
    assert "BITCOIN" in reasons and "tender_accounts" in reasons
    dollars = latest(instance, "posted_takings", NORMAL)
    assert dollars["payments_in_xero"].value == 2

    # a re-run writes nothing
    again = run_days(site, NORMAL, VOUCHERS, instance, process="takings")
    assert set(again.results["outcome"]) == {"already_posted"}
    assert latest(instance, "posted_takings", NORMAL)["xero_writes"].value == 0
    assert movements(site) == moved


def test_a_voucher_sold_at_a_till_and_redeemed_on_the_web_leaves_the_liability_at_zero(site):
    instance = DagsterInstance.ephemeral()
    run_days(site, VOUCHERS, VOUCHERS, instance, process="takings")
    web = run_days(site, VOUCHERS, VOUCHERS, instance)  # E-Retailer, Detail mode, tenders paid
    assert web.success, web.failed_checks
    held = takings_documents(site)
    web_invoice = next(doc for number, doc in held.items() if number.startswith("W500") or doc.get("Reference") == "WW500")
    assert web_invoice["Status"] == "PAID"
    moved = movements(site)
    sold = line_amounts(held["EOD-AKL01-20260306"])["835"]  # credited by the voucher sold
    redeemed = moved[("2026-03-06", "835")]  # debited by the web order's GIFT_VOUCHER payment
    assert sold == redeemed == 5000
    assert moved[("2026-03-06", "615")] == 3000


def test_a_day_changed_in_ci_after_posting_removes_our_payments_reposts_and_pays_again(site, tmp_path):
    instance = DagsterInstance.ephemeral()
    run_days(site, NORMAL, NORMAL, instance, process="takings")
    set_counted(f"sqlite:///{tmp_path / 'ci.sqlite'}", NORMAL, "CASH", "60.00")  # the short till was recounted
    changed = run_days(site, NORMAL, NORMAL, instance, process="takings")
    assert changed.success, changed.failed_checks
    assert set(changed.results["outcome"]) == {"reposted"}
    held = takings_documents(site)
    assert held["EOD-AKL01-20260302"]["Status"] == "VOIDED" and not held["EOD-AKL01-20260302"].get("Payments")
    new = held["EOD-AKL01-20260302-R1"]
    assert new["Status"] == "PAID" and new["Total"] == Decimal("100.00") and "481" not in line_amounts(new)
    moved = movements(site)
    assert moved[("2026-03-02", "611")] == 6000 and moved[("2026-03-02", "612")] == 4000


def test_a_lost_answer_on_the_payment_batch_is_looked_up_and_nothing_is_paid_twice(site, sandbox):
    instance = DagsterInstance.ephemeral()
    sandbox.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("Payments",)))
    outcome = run_days(site, NORMAL, CASH_OUT, instance, process="takings")
    assert outcome.success, outcome.failed_checks
    payments = [p for p in xero_client(site).get_all("Payments", "Payments", {"page": 1}) if p.get("Status") != "DELETED"]
    references = [p["Reference"] for p in payments]
    assert sorted(references) == sorted(set(references)) and len(references) == 3  # 2 + 1, none twice
    for number in ("EOD-AKL01-20260302", "EOD-AKL01-20260303"):
        assert takings_documents(site)[number]["Status"] == "PAID"


def test_an_archived_clearing_account_stops_the_takings_run_before_anything_is_sent(site):
    client = xero_client(site)
    account = next(a for a in client.accounts() if a["Code"] == "612")
    client.request("POST", f"Accounts/{account['AccountID']}", body={"Accounts": [{"Status": "ARCHIVED"}]})
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, NORMAL, NORMAL, instance, process="takings")
    assert not outcome.success
    assert not any(n.startswith("EOD-") for n in takings_documents(site))
    assert not xero_client(site).get_all("Payments", "Payments", {"page": 1})
    failure = step_failure(instance, outcome.run_id)
    assert "mapping.tender_accounts.EFTPOS" in failure and "612" in failure and "nothing was posted" in failure


def step_failure(instance: DagsterInstance, run_id: str) -> str:
    from dagster import DagsterEventType

    events = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    return " ".join(str(e.dagster_event.step_failure_data.user_failure_data.description or "") for e in events
                    if e.dagster_event.step_failure_data.user_failure_data)


def test_a_draft_site_posts_zero_balance_takings_with_the_tenders_as_lines_and_no_payments(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    site = make_site(sandbox, url, {"takings": {"status": "DRAFT", "zero_balance": True}})
    connect_site(site)
    outcome = run_days(site, NORMAL, NET_NEGATIVE, DagsterInstance.ephemeral(), process="takings")
    assert outcome.success, outcome.failed_checks
    held = takings_documents(site)
    for number in ("EOD-AKL01-20260302", "EOD-AKL01-20260303", "EOD-AKL01-20260304"):
        assert held[number]["Status"] == "DRAFT" and held[number]["Total"] == Decimal("0.00")
    # every tender's account takes CI's counted amount on a line (a negative line debits it)
    assert line_amounts(held["EOD-AKL01-20260302"]) == {"201": 6000, "202": 4000, "481": -50, "611": -5950, "612": -4000}
    assert line_amounts(held["EOD-AKL01-20260304"]) == {"202": -7000, "611": -3000, "612": 10000}
    assert not xero_client(site).get_all("Payments", "Payments", {"page": 1})


def set_lock_date(sandbox, site, day: date) -> None:
    sandbox.store.execute("UPDATE organisations SET period_lock_date = ? WHERE tenant_id = ?",
                          (day.isoformat(), xero_client(site).tenant_id))


def payments_held(site) -> list[tuple[str, str, int]]:
    return sorted((p["Reference"], p.get("Status"), decimal_to_cents(p["Amount"]))
                  for p in xero_client(site).get_all("Payments", "Payments", {"page": 1}))


def test_a_ci_change_to_a_locked_day_removes_no_payment_and_changes_nothing(site, sandbox, tmp_path):
    instance = DagsterInstance.ephemeral()
    run_days(site, NORMAL, NORMAL, instance, process="takings")
    before, documents_before = payments_held(site), takings_documents(site)
    set_lock_date(sandbox, site, NORMAL)
    set_counted(f"sqlite:///{tmp_path / 'ci.sqlite'}", NORMAL, "CASH", "60.00")
    again = run_days(site, NORMAL, NORMAL, instance, process="takings")
    assert set(again.results["outcome"]) == {"locked"}
    assert "lock date" in again.results["message"].iloc[0]
    assert payments_held(site) == before and takings_documents(site) == documents_before
    # ... and the day is not green: the cash clearing account holds 0.50 less than CI now counted (the sales are
    # unchanged), until a person adjusts it in an open period
    assert not again.success
    assert set(again.failed_checks) == {"posted_takings:every_document_in_xero", "posted_takings:every_tender_paid_as_counted"}


def test_a_short_ci_read_of_a_posted_day_stops_it_and_keeps_its_payments(site, tmp_path):
    """Absence is not evidence: a till document missing from CI's read (a view being rebuilt) stops the day."""
    instance = DagsterInstance.ephemeral()
    run_days(site, CASH_OUT, CASH_OUT, instance, process="takings")
    before, documents_before = payments_held(site), takings_documents(site)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}")
    with engine.begin() as connection:  # the refund document and its rows vanish from the read
        for table in ("ci_sales_tenders", "ci_sales_invoice_lines", "ci_sales_invoices"):
            connection.execute(sa.text(f"DELETE FROM {table} WHERE invoice_no = 'P201'"))
        connection.execute(sa.text("UPDATE ci_cash_ups SET expected_amount = 0, counted_amount = 0 "
                                   "WHERE business_date = :d AND tender_type = 'CASH'"), {"d": CASH_OUT.isoformat()})
    engine.dispose()
    again = run_days(site, CASH_OUT, CASH_OUT, instance, process="takings")
    assert not again.success
    from dagster import DagsterEventType

    [failure] = [e.dagster_event.step_failure_data.user_failure_data
                 for e in instance.all_logs(again.run_id, of_type=DagsterEventType.STEP_FAILURE)]
    stopped = [row.data for row in failure.metadata["failed_documents"].value.records]
    assert [(row["number"], row["outcome"]) for row in stopped] == [("EOD-AKL01-20260303", "stopped")]
    assert payments_held(site) == before and takings_documents(site) == documents_before


def web_site(sandbox, make_site, url: str, orders: list[dict], mode: str):
    """A site of web orders only, paying their tenders, connected."""
    fill(url, orders, {})
    site = make_site(sandbox, url, {"eretailer": {"pay_tenders": True, "mode": mode, "status": "AUTHORISED"}})
    connect_site(site)
    return site


def test_web_tenders_are_paid_per_tender_per_day_in_summary_mode(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    web = [
        document("W1", VOUCHERS, [("APPAREL", "80.00")], [("ONLINE", "50.00"), ("PAYPAL", "30.00")], source="ERETAILER", branch="WEB"),
        document("W2", VOUCHERS, [("FOOTWEAR", "120.00")], [("PAYPAL", "120.00")], source="ERETAILER", branch="WEB"),
        document("W3", VOUCHERS, [("GIFTS", "-20.00")], [("ONLINE", "-20.00")], source="ERETAILER", branch="WEB", credit=True),
    ]
    site = web_site(sandbox, make_site, url, web, "summary")
    outcome = run_days(site, VOUCHERS, VOUCHERS, DagsterInstance.ephemeral())
    assert outcome.success, outcome.failed_checks
    (invoice,) = takings_documents(site).values()
    assert invoice["Status"] == "PAID" and invoice["Total"] == Decimal("180.00")
    moved = movements(site)
    assert moved == {("2026-03-06", "615"): 3000, ("2026-03-06", "616"): 15000}  # ONLINE 50 − 20, PAYPAL 30 + 120
    references = sorted(p["Reference"] for p in xero_client(site).get_all("Payments", "Payments", {"page": 1}))
    assert references == ["ER-20260306/ONLINE", "ER-20260306/PAYPAL"]


def test_web_orders_the_books_must_leave_unpaid_turn_the_day_red(sandbox, make_site, tmp_path):
    """An unmapped web tender, or tenders that do not add up to the order: the order goes in unpaid (a part-paid
    one would be worse), and the day's blocking check says so instead of leaving the sale in receivables unseen."""
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    web = [
        document("W1", VOUCHERS, [("APPAREL", "80.00")], [("BITCOIN", "80.00")], source="ERETAILER", branch="WEB"),
        document("W2", VOUCHERS, [("FOOTWEAR", "120.00")], [("PAYPAL", "100.00")], source="ERETAILER", branch="WEB"),
        document("W3", VOUCHERS, [("GIFTS", "20.00")], [("ONLINE", "20.00")], source="ERETAILER", branch="WEB"),
    ]
    site = web_site(sandbox, make_site, url, web, "detail")
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, VOUCHERS, VOUCHERS, instance)
    assert not outcome.success and "posted_eretailer:every_tender_paid_as_counted" in outcome.failed_checks
    held = takings_documents(site)
    assert held["W3"]["Status"] == "PAID"
    assert held["W1"]["Status"] == held["W2"]["Status"] == "AUTHORISED"  # in Xero, unpaid, and said so
    from dagster import DagsterEventType

    [evaluation] = [e.event_log_entry.dagster_event.event_specific_data for e in instance.get_records_for_run(
        outcome.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
        if e.event_log_entry.dagster_event.event_specific_data.check_name == "every_tender_paid_as_counted"]
    unpaid = str(evaluation.metadata["left_unpaid"].value.records)
    assert "BITCOIN" in unpaid and "W2" in unpaid


def test_a_web_tender_with_more_decimals_than_the_contract_quarantines_its_order(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    web = [
        document("W1", VOUCHERS, [("APPAREL", "80.00")], [("ONLINE", "80.005"), ("PAYPAL", "-0.005")], source="ERETAILER", branch="WEB"),
        document("W2", VOUCHERS, [("GIFTS", "20.00")], [("ONLINE", "20.00")], source="ERETAILER", branch="WEB"),
    ]
    site = web_site(sandbox, make_site, url, web, "detail")
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, VOUCHERS, VOUCHERS, instance)
    assert "validated_eretailer:no_quarantined_rows" in outcome.failed_checks
    assert set(takings_documents(site)) == {"W2"}  # the other order still posts, paid
    reasons = str(latest(instance, "validated_eretailer", VOUCHERS)["quarantined_rows"].value.records)
    assert "W1" in reasons and "80.005" in reasons, reasons


def test_an_exchange_day_nets_to_nothing_in_sales_yet_moves_both_tenders(sandbox, make_site, tmp_path):
    """A jacket returned by EFTPOS refund and bought again in cash: sales net 0.00, but the cash account takes
    50.00 and the EFTPOS account gives 50.00 back. D = 0 is an invoice: the cash payment pays the EFTPOS line."""
    exchange = date(2026, 3, 9)
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url, [document("P600", exchange, [("APPAREL", "50.00")], [("CASH", "50.00")]),
               document("P601", exchange, [("APPAREL", "-50.00")], [("EFTPOS", "-50.00")], credit=True)],
         {(exchange, "CASH"): ("50.00", "50.00"), (exchange, "EFTPOS"): ("-50.00", "-50.00")})
    site = make_site(sandbox, url)
    connect_site(site)
    outcome = run_days(site, exchange, exchange, DagsterInstance.ephemeral(), process="takings")
    assert outcome.success, outcome.failed_checks
    invoice = takings_documents(site)["EOD-AKL01-20260309"]
    assert invoice["Status"] == "PAID" and invoice["Total"] == Decimal("50.00") and invoice["TotalTax"] == Decimal("0.00")
    assert line_amounts(invoice).get("612") == 5000 and sum(line_amounts(invoice).values()) == 5000
    assert movements(site) == {("2026-03-09", "611"): 5000}


def test_the_takings_sensor_asks_again_for_a_posted_day_whose_till_documents_changed(site, tmp_path):
    from zoneinfo import ZoneInfo

    from dagster import SkipReason, build_sensor_context

    from ci_xero_pipeline.code_location import build_definitions
    from ci_xero_pipeline.runner import ensure_dagster_home

    instance = DagsterInstance.from_config(str(ensure_dagster_home(tmp_path / "dagster_home")))
    definitions = build_definitions(site)
    job = definitions.resolve_job_def("takings_to_xero")
    assert job.execute_in_process(instance=instance, partition_key=NORMAL.isoformat()).success
    sensor = definitions.resolve_sensor_def("takings_changes_after_posting")
    resources = {key: definitions.resources[key] for key in ("ci", "xero")}

    quiet = sensor(build_sensor_context(instance=instance, cursor=None, resources=resources))
    assert not quiet.run_requests  # nothing changed since the day was posted
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}")
    with engine.begin() as connection:  # the till document is corrected in CI after posting
        connection.execute(sa.text("UPDATE ci_sales_invoices SET updated_at = :now WHERE invoice_no = 'P100'"),
                           {"now": datetime.now(ZoneInfo("Pacific/Auckland")).replace(tzinfo=None)})
    engine.dispose()
    changed = sensor(build_sensor_context(instance=instance, cursor=quiet.cursor, resources=resources))
    assert not isinstance(changed, SkipReason)
    assert [request.partition_key for request in changed.run_requests] == [NORMAL.isoformat()]
    assert changed.run_requests[0].run_key.startswith("takings-changed:2026-03-02:")
    instance.dispose()


def test_the_plan_of_a_takings_day_says_what_a_run_would_do_and_writes_nothing(site, tmp_path):
    from ci_xero_pipeline.code_location import build_definitions
    from ci_xero_pipeline.planning import plan_days

    resources = build_definitions(site).resources
    run_days(site, NORMAL, NORMAL, DagsterInstance.ephemeral(), process="takings")
    set_counted(f"sqlite:///{tmp_path / 'ci.sqlite'}", NORMAL, "CASH", "60.00")
    before = payments_held(site), takings_documents(site)
    rows = plan_days(resources["site"], resources["ci"], resources["xero"], NORMAL, UNMAPPED, process="takings")
    plan = {row.number: (row.action, row.outcome) for row in rows.itertuples(index=False)}
    assert plan["EOD-AKL01-20260302"] == ("unpay, then change", "changed")  # the recount: our payments off first
    assert plan["EOD-AKL01-20260303"][1] == plan["EODCR-AKL01-20260304"][1] == "posted"
    assert plan["takings of AKL01"][1] == "quarantined"
    assert (payments_held(site), takings_documents(site)) == before  # nothing written


def test_ci_inconsistent_with_itself_quarantines_the_branch_day_with_the_figures(sandbox, make_site, tmp_path):
    """The cash-up expects 65.00 cash where the day's cash tenders add up to 60.00: CI disagrees with itself, so
    the branch-day waits (nothing of it is posted) and the quarantine gives both figures."""
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url, DOCUMENTS[:1], {(NORMAL, "CASH"): ("65.00", "65.00"), (NORMAL, "EFTPOS"): ("40.00", "40.00")})
    site = make_site(sandbox, url)
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, NORMAL, NORMAL, instance, process="takings")
    assert "validated_takings:no_quarantined_rows" in outcome.failed_checks
    assert takings_documents(site) == {} and not xero_client(site).get_all("Payments", "Payments", {"page": 1})
    reasons = str(latest(instance, "validated_takings", NORMAL)["quarantine"].value.records)
    assert "65.00" in reasons and "60.00" in reasons and "CASH" in reasons
    assert latest(instance, "posted_takings", NORMAL)["quarantined_amount"].value == "100.00"
