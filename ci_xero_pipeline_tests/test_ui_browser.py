"""The accountant's path through the Dagster UI, in Debian's Chromium: `dagster dev` on a small demo,
a day that Xero refuses because account 202 (mapping.sales_accounts.FOOTWEAR) was archived, the red
partition, the failure's headline and its table, the CI rows, the fix and the re-run that turns the day
green.

Screenshots go to tmp_path; with CI_XERO_UPDATE_SCREENSHOTS=1 they replace docs/ui/*.png (the README's
walk-through). Skipped, with the reason, where /usr/bin/chromium is absent (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.runner import ensure_dagster_home, nz_yesterday, run_days
from ci_xero_pipeline.xero.client import XeroApiError

from .pipeline_helpers import connect_site, xero_documents
from .ui_driver import CHROMIUM_ARGS, PROJECT_ROOT, VIEWPORT, DagsterDev, set_account_status, system_chromium

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
expect = sync_api.expect

# the demo's three days end yesterday (NZ), so that the UI shows just them: its partitions end there too;
# the demo's rows depend on the day's index, not its date, so the days hold the same documents every time
LAST_DAY = nz_yesterday()
FIRST_DAY, SECOND_DAY = LAST_DAY - timedelta(days=2), LAST_DAY - timedelta(days=1)
FAILING_DAY = LAST_DAY.isoformat()
FAILING_NUMBER = f"ER-{LAST_DAY:%Y%m%d}"  # Summary mode: one invoice a day
LOCATION = "ci_xero_pipeline.definitions"  # the code location workspace.yaml loads
SETTING = "mapping.sales_accounts.FOOTWEAR"
RUN_TIMEOUT_MS = 150_000  # a run of `dagster dev` on a busy 2-core machine: a process per step
PAGE_TIMEOUT_MS = 30_000
SCREENSHOTS_ENV_VAR = "CI_XERO_UPDATE_SCREENSHOTS"


@pytest.fixture
def browser():
    executable = system_chromium()
    if executable is None:
        pytest.skip("Debian's Chromium is not installed (/usr/bin/chromium): "
                    "apt-get install chromium chromium-driver (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as error:
            pytest.skip(f"Playwright cannot start {executable}: {str(error).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path: Path):
    """A tab of the fixed size; what it showed last is kept in tmp_path (last-page.png) for a failure."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.set_default_timeout(PAGE_TIMEOUT_MS)
    expect.set_options(timeout=PAGE_TIMEOUT_MS)  # the UI's pages take seconds to fill on a busy machine
    yield tab
    tab.screenshot(path=str(tmp_path / "last-page.png"))
    tab.close()


@pytest.fixture
def screenshots(tmp_path: Path):
    """Save a page as NN-name.png: into docs/ui when asked to update the README's pictures."""
    folder = PROJECT_ROOT / "docs" / "ui" if os.environ.get(SCREENSHOTS_ENV_VAR) == "1" else tmp_path / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    started = time.monotonic()

    def take(page, name: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{name}.png"
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(path))
        taken.append(path)
        print(f"{time.monotonic() - started:5.1f} s  {path.name}")
        return path

    take.taken = taken
    return take


@pytest.fixture
def demo_site(tmp_path: Path, sandbox, make_site):
    """Three trading days of demo CI data, a sandbox Xero organisation connected to the site, and the
    site's Dagster instance (DAGSTER_HOME) holding the repository's dagster.yaml."""
    ci_path = tmp_path / "ci.sqlite"
    create_demo_database(f"sqlite:///{ci_path}", days=3, end_day=LAST_DAY, branches=2, invoices_per_day=(4, 8))
    site = make_site(sandbox, f"sqlite:///{ci_path}", {"first_trading_day": FIRST_DAY.isoformat()})
    connect_site(site)
    home = ensure_dagster_home(tmp_path / "dagster_home")
    # the instance's databases exist before dagster dev starts: two processes creating them at once
    # leave SQLite's migration table with two heads
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_events([])
    return site, home


@pytest.fixture
def dagster_dev(demo_site, tmp_path: Path):
    site, home = demo_site
    server = DagsterDev(site, home, tmp_path / "dagster_dev.log")
    server.start()
    yield server
    server.stop()


def break_footwear_account(site: Path):
    """Make the FOOTWEAR lines unpostable the way a bookkeeper would: archive account 202 in Xero.
    Returns how the test fixes it and which re-execution the fix needs."""
    try:
        set_account_status(site, "202", "ARCHIVED")
        return "202", lambda: set_account_status(site, "202", "ACTIVE"), "From failure"
    except XeroApiError as error:
        if error.status != 404:
            raise
    # until the sandbox writes accounts: point the setting at an account the organisation does not have;
    # the documents are built anew with the fixed mapping, so every step runs again
    values = yaml.safe_load(site.read_text())
    values["mapping"]["sales_accounts"]["FOOTWEAR"] = "299"
    site.write_text(yaml.safe_dump(values))

    def restore_mapping() -> None:
        values["mapping"]["sales_accounts"]["FOOTWEAR"] = "202"
        site.write_text(yaml.safe_dump(values))

    return "299", restore_mapping, "All steps in root run"


def pick_partition(page, day: str) -> None:
    """On an asset's Partitions tab: find the day in the list and open it."""
    page.get_by_placeholder("Filter by name").fill(day)
    page.get_by_title(day, exact=True).click()  # the list's entry (the bar's end label shows the day too)
    expect(page).to_have_url(re.compile(f"partition={day}"))


def open_partition(page, url: str, asset: str, day: str) -> None:
    """The asset's page → Partitions → the day."""
    page.goto(f"{url}/assets/{asset}?view=partitions")
    pick_partition(page, day)
    expect(page.get_by_text("Latest materialization")).to_be_visible()


def test_accountant_follows_a_refused_day_to_its_fix_in_the_dagster_ui(
    demo_site, dagster_dev: DagsterDev, page, screenshots
):
    site, home = demo_site
    started = time.monotonic()
    # the days before: posted as `ci-xero run` does, into the instance the UI shows, while dagster dev starts
    instance = DagsterInstance.from_config(str(home))
    try:
        before = run_days(site, FIRST_DAY, SECOND_DAY, instance)
    finally:
        instance.dispose()
    assert before.success, before.run_id
    print(f"{time.monotonic() - started:5.1f} s  days before posted (run {before.run_id[:8]})")
    dagster_dev.wait_until_loaded()
    print(f"{time.monotonic() - started:5.1f} s  dagster dev loaded")
    dagster_dev.skip_welcome_prompt()
    url = dagster_dev.url

    # a bookkeeper archives the footwear sales account in Xero
    account, fix, re_execution = break_footwear_account(site)

    # 1. the data path: CI → validated → Xero documents → posted, two of three days filled
    page.goto(f"{url}/locations/{LOCATION}/asset-groups/eretailer/lineage")
    for asset in ("raw_eretailer", "validated_eretailer", "xero_eretailer_documents", "posted_eretailer"):
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+% filled$"))).to_have_count(4)  # the partitions page counts them
    expect(page.get_by_text("3 / 3 Passed")).to_be_visible()  # posted_eretailer's checks on the days posted
    screenshots(page, "asset-graph")

    # 2. post the new day from the job eretailer_to_xero: one partition, one run
    page.goto(f"{url}/locations/{LOCATION}/jobs/eretailer_to_xero")
    page.get_by_role("button", name="Materialize all").click()
    days = page.get_by_placeholder("No matching partitions")
    days.fill(FAILING_DAY)
    days.press("Enter")
    launch = page.get_by_role("button", name="Launch 1 run")
    expect(launch).to_be_enabled()
    screenshots(page, "launch-the-day")
    launch.click()
    page.get_by_role("link", name="View", exact=True).click()  # in the notice "Launched run …"
    page.mouse.move(700, 40)  # off the notice, which stays while the pointer rests on it
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    failed_run_url = page.url
    expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_text("Errored (1)")).to_be_visible()
    screenshots(page, "run-failed")

    # 3. the asset's partitions: the day is red, the others green
    page.goto(f"{url}/assets/posted_eretailer?view=partitions")
    expect(page.get_by_text("Failed (1)")).to_be_visible()
    expect(page.get_by_text("Materialized (2)")).to_be_visible()
    pick_partition(page, FAILING_DAY)
    expect(page.get_by_text(re.compile(r"Run \w+ failed, and did not materialize this asset"))).to_be_visible()
    screenshots(page, "red-partition")

    # 4. View logs → the step's failure: its headline names the day, the document, the account and the setting
    page.get_by_role("button", name="View logs").click()
    logs = page.get_by_role("dialog")
    log_filter = logs.get_by_placeholder("Filter…")
    log_filter.fill("type:STEP_FAILURE")
    log_filter.press("Enter")
    headline = logs.get_by_text(re.compile(re.escape(f"{FAILING_DAY} {FAILING_NUMBER}: Xero refused account {account}"))).first
    expect(headline).to_be_visible()
    expect(headline).to_contain_text(SETTING)
    expect(headline).to_contain_text("Fix:")
    screenshots(page, "failure-headline")

    # 5. the whole failure: the failed_documents table, short columns first, one row per document
    logs.get_by_text("View full message").first.click()
    error = page.get_by_role("dialog").filter(has=page.get_by_role("button", name="Copy error"))
    expect(error.get_by_text("failed_documents", exact=True)).to_be_visible()
    columns = ["business_date", "number", "outcome", "amount", "reason", "fix", "ci_documents", "failed_lines", "ci_rows"]
    # the table sits in a row of the failure's metadata table: the innermost table is the documents'
    documents = error.locator("table").filter(has=page.get_by_text("business_date", exact=True)).last
    expect(documents.locator("th").first).to_have_text(columns[0])
    assert documents.locator("th").all_inner_texts()[: len(columns)] == columns
    row = documents.locator("tr", has_text=FAILING_NUMBER)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"'{account}'")  # Xero's own words name the account
    expect(row).to_contain_text(SETTING)
    expect(row).to_contain_text(f"raw_eretailer / {FAILING_DAY}")
    expect(error.get_by_text("ci_invoice_nos_by_document", exact=True)).to_be_visible()  # every CI key, as JSON
    screenshots(page, "failed-documents")
    error.get_by_role("button", name="Done").click()
    expect(error).to_have_count(0)
    logs.get_by_role("button", name="Done").click()
    expect(logs).to_have_count(0)

    # 6. the CI rows of that day: as CI holds them, and what validation held back
    open_partition(page, url, "raw_eretailer", FAILING_DAY)
    for entry in ("documents", "lines", "documents_by_status", "final_total_incl"):
        expect(page.get_by_text(entry, exact=True).first).to_be_visible()
    screenshots(page, "ci-rows")
    open_partition(page, url, "validated_eretailer", FAILING_DAY)
    for entry in ("postable_documents", "quarantined_documents", "quarantined_rows"):
        expect(page.get_by_text(entry, exact=True).first).to_be_visible()
    screenshots(page, "validated-rows")

    # 7. the fix, then the re-run from the failed run's page
    fix()
    page.goto(failed_run_url)
    page.get_by_role("button", name="Re-execute all (*)").locator("xpath=following::button[1]").click()
    choice = page.get_by_role("menuitem", name=re_execution)
    expect(choice).to_be_visible()
    screenshots(page, "re-execute")
    choice.click()
    expect(page).not_to_have_url(failed_run_url)
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    screenshots(page, "re-run-succeeded")

    # 8. every day green, and the day's invoice is in Xero
    page.goto(f"{url}/assets/posted_eretailer?view=partitions")
    expect(page.get_by_text("Materialized (3)")).to_be_visible()
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    pick_partition(page, FAILING_DAY)
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.get_by_text("documents_in_xero", exact=True)).to_be_visible()
    screenshots(page, "day-posted")
    invoices, _credit_notes = xero_documents(site)
    assert {invoice["InvoiceNumber"] for invoice in invoices if invoice["Status"] == "AUTHORISED"} >= {
        f"ER-{day:%Y%m%d}" for day in (FIRST_DAY, SECOND_DAY, LAST_DAY)
    }
    print(f"UI walk-through: {time.monotonic() - started:.0f} s, {len(screenshots.taken)} screenshots in {screenshots.taken[0].parent}")
