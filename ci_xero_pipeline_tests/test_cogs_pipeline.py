"""Cost of goods sold through real Dagster runs against the sandbox Xero: a branch-day posts one POSTED manual
journal (COGS debited per account, inventory credited, nets to 0.00); a re-run writes nothing; a lost answer on
the journal batch is resolved by a lookup by Narration; a CI change after posting updates the journal in place,
and the same change in a locked period is reported with the journal left as it was; an inventory account Xero
would refuse (its INVENTORY type, a bank account) stops the run at the mapping check, naming the setting."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance

from ci_xero_pipeline.ci.demo import create_ci_tables, insert_documents
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sandbox.faults import FaultPlan

from ci_xero_pipeline.ci.demo import COGS_SCENARIOS

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import connect_site, xero_client

DAY, NEXT_DAY = date(2026, 3, 2), date(2026, 3, 3)
COGS_ACCOUNTS = {"APPAREL": "310", "FOOTWEAR": "300", "ACCESSORIES": "310", "GIFTS": "310"}
INVENTORY = "631"
NARRATION = "CI cost of goods sold {branch} {day} [ci-xero cogs/{branch}/{day}]"


def sale(number: str, day: date, lines: list[tuple], source: str = "POS", branch: str = "AKL01", status: str = "FINAL",
         credit: bool = False) -> dict:
    """A CI document; lines: (analysis code, quantity, unit price incl GST, unit cost excl or None, sku or None)."""
    created = datetime.combine(day, datetime.min.time()) + timedelta(hours=11)
    invoice = {"invoice_no": number, "branch_code": branch, "business_date": day, "created_at": created, "source": source,
               "status": status, "doc_type": "CREDIT" if credit else "INVOICE"}
    if source == "ERETAILER":
        invoice |= {"customer_code": "C1", "customer_name": "Web Customer", "order_ref": f"W{number}"}
    rows = [{"invoice_no": number, "line_no": n, "description": f"{code} item", "analysis_code": code, "sku": sku,
             "quantity": Decimal(quantity), "unit_price_incl": Decimal(price),
             "unit_cost_excl": None if cost is None else Decimal(cost)}
            for n, (code, quantity, price, cost, sku) in enumerate(lines, start=1)]
    return {"invoice": invoice, "lines": rows}


DOCUMENTS = [
    # AKL01: APPAREL 2 × 18.5000 + 1.333 × 2.2222 (= 2.9621926) and FOOTWEAR 55.2500, less a FOOTWEAR pair
    # returned at 55.2500; a freight line (no stock) and a HELD sale are not costed
    sale("P100", DAY, [("APPAREL", "2", "49.00", "18.5000", "TEE-1"), ("APPAREL", "1.333", "5.00", "2.2222", "YARN-1"),
                       ("FOOTWEAR", "1", "120.00", "55.2500", "SHOE-1"), ("FREIGHT", "1", "9.00", None, None)]),
    sale("P101", DAY, [("FOOTWEAR", "-1", "120.00", "55.2500", "SHOE-1")], credit=True),
    sale("P102", DAY, [("APPAREL", "5", "49.00", "18.5000", "TEE-1")], status="HELD"),
    # an account customer's invoice at the same branch: every source is costed
    sale("A100", DAY, [("GIFTS", "3", "10.00", "4.0000", "CARD-1")], source="ACCOUNT"),
    # the web store: its own branch, its own journal
    sale("W100", DAY, [("ACCESSORIES", "1", "35.00", "12.1000", "BAG-1")], source="ERETAILER", branch="WEB"),
]


def fill(url: str, documents=DOCUMENTS) -> None:
    engine = sa.create_engine(url)
    create_ci_tables(engine, drop=True)
    insert_documents(
        engine, [d["invoice"] for d in documents], [line for d in documents for line in d["lines"]],
        branches=[{"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True},
                  {"branch_code": "WEB", "branch_name": "Online Store", "active": True}],
    )
    engine.dispose()


def set_cost(url: str, invoice_no: str, line_no: int, cost: str | None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE ci_sales_invoice_lines SET unit_cost_excl = :c WHERE invoice_no = :i AND line_no = :n"),
                           {"c": cost, "i": invoice_no, "n": line_no})
        connection.execute(sa.text("UPDATE ci_sales_invoices SET updated_at = :t WHERE invoice_no = :i"),
                           {"t": datetime(2026, 3, 3, 9, 0), "i": invoice_no})
    engine.dispose()


def cogs_site(sandbox, make_site, url: str, **cogs) -> object:
    path = make_site(sandbox, url, {"cogs": {"enabled": True, "cogs_accounts": COGS_ACCOUNTS, "inventory_account": INVENTORY,
                                             **cogs}})
    connect_site(path)
    return path


@pytest.fixture
def ci_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    return url


@pytest.fixture
def site(sandbox, make_site, ci_url):
    return cogs_site(sandbox, make_site, ci_url)


def journals(path) -> list[dict]:
    """Every manual journal the organisation holds (any status)."""
    return xero_client(path).get_all("ManualJournals", "ManualJournals", {"page": 1})


def live(path) -> dict[str, dict]:
    """Narration → the journal Xero holds in the books (not voided or deleted); a Narration twice fails."""
    found: dict[str, dict] = {}
    for journal in journals(path):
        if journal.get("Status") in ("VOIDED", "DELETED"):
            continue
        assert journal["Narration"] not in found, f"two journals with one Narration: {journal['Narration']}"
        found[journal["Narration"]] = journal
    return found


def by_account(journal: dict) -> dict[str, int]:
    moved: dict[str, int] = defaultdict(int)
    for line in journal["JournalLines"]:
        moved[line["AccountCode"]] += decimal_to_cents(line["LineAmount"])
    return dict(moved)


def narration(branch: str, day: date) -> str:
    return NARRATION.format(branch=branch, day=day.isoformat())


def half_up(value: Decimal) -> int:
    return decimal_to_cents(value.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP"))


# CI's cost, worked out here from the rows above: rounded once per account
AKL_APPAREL = half_up(2 * Decimal("18.5000") + Decimal("1.333") * Decimal("2.2222") + 3 * Decimal("4.0000"))  # 310: + GIFTS
AKL_FOOTWEAR = half_up(Decimal("55.2500") - Decimal("55.2500"))


def latest(instance: DagsterInstance, asset: str, day: date) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day.isoformat()]), limit=1).records
    return records[0].asset_materialization.metadata


def step_failure(instance: DagsterInstance, run_id: str) -> str:
    events = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    return " ".join(str(e.dagster_event.step_failure_data.user_failure_data.description or "") for e in events
                    if e.dagster_event.step_failure_data.user_failure_data)


def test_a_branch_day_posts_one_posted_journal_that_nets_to_zero_and_a_rerun_writes_nothing(site):
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="cogs")
    assert outcome.success, outcome.failed_checks
    held = live(site)
    assert set(held) == {narration("AKL01", DAY), narration("WEB", DAY)}
    akl = held[narration("AKL01", DAY)]
    assert akl["Status"] == "POSTED" and akl["LineAmountTypes"] == "NoTax"
    assert (AKL_APPAREL, AKL_FOOTWEAR) == (5196, 0)  # 37.00 + 2.9621926 + 12.00, rounded once
    assert by_account(akl) == {"310": AKL_APPAREL, INVENTORY: -AKL_APPAREL}  # FOOTWEAR sold and returned: nothing
    web = held[narration("WEB", DAY)]
    assert by_account(web) == {"310": 1210, INVENTORY: -1210}
    for journal in held.values():
        assert sum(by_account(journal).values()) == 0
        options = {(t["Name"], t["Option"]) for line in journal["JournalLines"] for t in line["Tracking"]}
        assert options == {("CI Branches", "Auckland Queen Street" if journal is akl else "Online Store")}
    assert set(outcome.results["outcome"]) == {"posted"}

    again = run_days(site, DAY, DAY, instance, process="cogs")
    assert again.success, again.failed_checks
    assert set(again.results["outcome"]) == {"already_posted"}
    assert latest(instance, "posted_cogs", DAY)["xero_writes"].value == 0
    assert live(site) == held


def test_a_lost_answer_on_the_journal_batch_leaves_one_journal_found_by_its_narration(site, sandbox):
    sandbox.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("ManualJournals",)))
    outcome = run_days(site, DAY, DAY, DagsterInstance.ephemeral(), process="cogs")
    assert outcome.success, outcome.failed_checks
    assert sandbox.faults.stats()["injected"] == {"drop": 1}  # the batch was saved, and its answer lost
    assert len(journals(site)) == 2 and set(live(site)) == {narration("AKL01", DAY), narration("WEB", DAY)}
    assert set(outcome.results["outcome"]) == {"posted"}  # confirmed by the lookup, not sent again


def test_a_ci_change_after_posting_updates_the_journal_in_place(site, ci_url):
    instance = DagsterInstance.ephemeral()
    run_days(site, DAY, DAY, instance, process="cogs")
    before = live(site)[narration("AKL01", DAY)]
    set_cost(ci_url, "P100", 1, "19.2500")  # CI revalued the tee: 2 × 0.75 more
    changed = run_days(site, DAY, DAY, instance, process="cogs")
    assert changed.success, changed.failed_checks
    outcomes = dict(zip(changed.results["number"], changed.results["outcome"]))
    assert outcomes == {narration("AKL01", DAY): "updated", narration("WEB", DAY): "already_posted"}
    after = live(site)[narration("AKL01", DAY)]
    assert after["ManualJournalID"] == before["ManualJournalID"] and len(journals(site)) == 2
    assert by_account(after) == {"310": AKL_APPAREL + 150, INVENTORY: -(AKL_APPAREL + 150)}


def test_the_same_change_in_a_locked_period_is_reported_and_the_journal_left_as_it_was(site, sandbox, ci_url):
    instance = DagsterInstance.ephemeral()
    run_days(site, DAY, DAY, instance, process="cogs")
    before = live(site)
    sandbox.store.execute("UPDATE organisations SET period_lock_date = ? WHERE tenant_id = ?",
                          (DAY.isoformat(), xero_client(site).tenant_id))
    set_cost(ci_url, "P100", 1, "19.2500")
    again = run_days(site, DAY, DAY, instance, process="cogs")
    outcomes = dict(zip(again.results["number"], again.results["outcome"]))
    assert outcomes[narration("AKL01", DAY)] == "locked"
    assert "lock date" in again.results.set_index("number").loc[narration("AKL01", DAY), "message"]
    assert live(site) == before
    # the day is not green: Xero's journal is 1.50 short of CI's cost until a person adjusts it in an open period
    assert not again.success
    assert {"posted_cogs:every_document_in_xero", "posted_cogs:xero_matches_ci",
            "posted_cogs:every_dollar_accounted_for"} <= set(again.failed_checks)


def test_a_stock_line_without_a_cost_holds_its_branch_day_back_and_the_others_post(sandbox, make_site, ci_url):
    set_cost(ci_url, "P100", 2, None)
    site = cogs_site(sandbox, make_site, ci_url)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="cogs")
    assert "validated_cogs:no_quarantined_rows" in outcome.failed_checks
    assert set(live(site)) == {narration("WEB", DAY)}
    reasons = str(latest(instance, "validated_cogs", DAY)["quarantine"].value.records)
    assert "P100 line 2" in reasons and "YARN-1" in reasons and "unit_cost_excl" in reasons


@pytest.mark.parametrize("account", ["630", "090"])  # Xero's INVENTORY type; a bank account
def test_an_inventory_account_journals_cannot_use_stops_the_run_at_the_mapping_check(sandbox, make_site, ci_url, account):
    site = cogs_site(sandbox, make_site, ci_url, inventory_account=account)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process="cogs")
    assert not outcome.success
    assert journals(site) == []  # nothing was sent
    failure = step_failure(instance, outcome.run_id)
    assert "cogs.inventory_account" in failure and account in failure and "nothing was posted" in failure


def test_a_branch_day_whose_documents_ci_voids_has_its_journal_voided(site, ci_url):
    instance = DagsterInstance.ephemeral()
    run_days(site, DAY, DAY, instance, process="cogs")
    engine = sa.create_engine(ci_url)
    with engine.begin() as connection:  # the web store's only sale is voided in CI after posting
        connection.execute(sa.text("UPDATE ci_sales_invoices SET status = 'VOID', updated_at = :t WHERE invoice_no = 'W100'"),
                           {"t": datetime(2026, 3, 3, 9, 0)})
    engine.dispose()
    again = run_days(site, DAY, DAY, instance, process="cogs")
    assert again.success, again.failed_checks
    outcomes = dict(zip(again.results["number"], again.results["outcome"]))
    assert outcomes == {narration("AKL01", DAY): "already_posted", narration("WEB", DAY): "withdrawn"}
    statuses = {journal["Narration"]: journal["Status"] for journal in journals(site)}
    assert statuses == {narration("AKL01", DAY): "POSTED", narration("WEB", DAY): "VOIDED"}


def ci_cost_by_branch_day(url: str) -> dict[tuple[str, str], int]:
    """(branch, day) → Σ quantity × unit_cost_excl of the FINAL stock lines, straight from CI's tables with Decimal,
    rounded once (the demo site maps every analysis code to one COGS account)."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT i.branch_code, i.business_date, CAST(l.quantity AS TEXT), CAST(l.unit_cost_excl AS TEXT) "
            "FROM ci_sales_invoice_lines l JOIN ci_sales_invoices i ON i.invoice_no = l.invoice_no "
            "WHERE i.status = 'FINAL' AND l.sku IS NOT NULL")).all()
    engine.dispose()
    exact: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for branch, day, quantity, cost in rows:
        exact[(branch, str(day)[:10])] += Decimal(quantity) * (Decimal(cost) if cost is not None else Decimal(0))
    return {key: half_up(value) for key, value in exact.items()}


def test_the_demo_month_posts_a_journal_per_branch_day_with_cis_cost_but_the_one_missing_a_cost(sandbox, make_site, demo_ci_url):
    site = make_site(sandbox, demo_ci_url, {"cogs": {"enabled": True}})  # site.yaml's mapping: every code to 310, stock 631
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    outcome = run_days(site, first, DEMO_END_DAY, instance, process="cogs")
    assert outcome.failed_checks == ["validated_cogs:no_quarantined_rows"]  # the missing cost, and nothing else
    missing = COGS_SCENARIOS["missing_cost"]
    expected = {key: cents for key, cents in ci_cost_by_branch_day(demo_ci_url).items() if cents and key != missing.branch_day}
    held = {}
    for journal in live(site).values():
        branch, day = journal["Narration"].split(" [ci-xero cogs/")[1].rstrip("]").split("/")
        assert sum(by_account(journal).values()) == 0
        held[(branch, day)] = by_account(journal)["310"]
    assert held == expected and len(held) > 20
    reasons = str(latest(instance, "validated_cogs", date.fromisoformat(missing.day))["quarantine"].value.records)
    assert all(number in reasons for number in missing.numbers) and "unit_cost_excl" in reasons
    freight = COGS_SCENARIOS["freight_not_cogs"]
    assert freight.branch_day in held  # its freight line carries no cost and needs none


def test_an_account_xero_refuses_on_a_journal_is_named_by_the_cogs_setting_that_sends_it(sandbox, make_site, ci_url):
    import pandas as pd

    from ci_xero_pipeline.assets.cogs import build, explain, read, validate
    from ci_xero_pipeline.resources import CISourceResource, SiteResource

    site = SiteResource(settings_file=str(cogs_site(sandbox, make_site, ci_url)))
    validated = validate(read(CISourceResource(database_url=ci_url), site, DAY, DAY), site)
    documents = build(validated, site, [DAY.isoformat()]).documents
    journal = documents.iloc[0]
    refused = pd.DataFrame([{
        "document_key": journal["document_key"], "business_date": journal["business_date"], "number": journal["number"],
        "endpoint": "ManualJournals", "outcome": "failed", "total_cents": journal["total_cents"],
        "message": f"{journal['number']}: Account code '631' is not a valid code for this document.",
        "ci_invoice_nos": journal["ci_invoice_nos"],
    }])
    [row] = explain(refused, documents, site, validated).to_dict("records")
    assert row["settings"] == ("cogs.inventory_account",) and "631" in row["cause"] and "cogs.inventory_account" in row["fix"]
    assert "revenue" not in row["fix"]  # the words of a journal's accounts, not a sales invoice's


def test_a_branch_day_whose_cost_ci_now_makes_zero_has_its_journal_voided_and_the_others_kept(site, ci_url):
    """A final document whose stock CI set to cost 0.0000 after posting: the branch-day now makes no journal, which
    is CI's own word that its cost is 0.00; the journal posted for it comes out (not `kept` as if a setting changed)."""
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process="cogs").success
    set_cost(ci_url, "W100", 1, "0.0000")
    again = run_days(site, DAY, DAY, instance, process="cogs")
    assert again.success, again.failed_checks
    outcomes = dict(zip(again.results["number"], again.results["outcome"]))
    assert outcomes == {narration("AKL01", DAY): "already_posted", narration("WEB", DAY): "withdrawn"}
    statuses = {journal["Narration"]: journal["Status"] for journal in journals(site)}
    assert statuses == {narration("AKL01", DAY): "POSTED", narration("WEB", DAY): "VOIDED"}


@pytest.mark.parametrize("lost", ["W100", "A100"], ids=["a branch-day's only stock document", "one of a branch-day's"])
def test_a_document_read_without_its_lines_holds_its_branch_day_and_never_lowers_or_voids_the_journal(site, ci_url, lost):
    """A FINAL document whose lines the read did not bring (CI writes a header before its lines, a view that lags):
    whether it carries stock is unknown, so its branch-day waits, quarantined, and the journal stays as posted."""
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process="cogs").success
    before = {journal["Narration"]: by_account(journal) for journal in live(site).values()}
    engine = sa.create_engine(ci_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM ci_sales_invoice_lines WHERE invoice_no = :n"), {"n": lost})
    engine.dispose()
    again = run_days(site, DAY, DAY, instance, process="cogs")
    assert "validated_cogs:no_quarantined_rows" in again.failed_checks
    branch = "WEB" if lost == "W100" else "AKL01"
    outcomes = dict(zip(again.results["number"], again.results["outcome"]))
    assert outcomes[narration(branch, DAY)] == "kept"
    assert {journal["Narration"]: by_account(journal) for journal in live(site).values()} == before
    assert {journal["Status"] for journal in journals(site)} == {"POSTED"}
    reasons = str(latest(instance, "validated_cogs", DAY)["quarantine"].value.records)
    assert lost in reasons and "no lines" in reasons
