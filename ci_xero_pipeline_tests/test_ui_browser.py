"""The accountant's path through the Dagster UI, in Debian's Chromium: `dagster dev` on a small demo,
a day that cannot be posted because account 202 (mapping.sales_accounts.FOOTWEAR) was archived in Xero
(the mapping is checked against the organisation before anything is sent, so nothing of the day goes),
the red partition, the failure's headline and its mapping_problems table, the CI rows, the failure report
and the mapping in force, the fix and the re-run that turns the day green, and the invoice in Xero with
its way back to the day.

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
from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.runner import ensure_dagster_home, nz_yesterday, run_days
from ci_xero_pipeline.settings import load_settings

from .pipeline_helpers import connect_site, xero_documents
from .ui_driver import CHROMIUM_ARGS, PROJECT_ROOT, VIEWPORT, DagsterDev, free_port, set_account_status, system_chromium

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
def chromium() -> str:
    """Asked first, so that a machine without it skips before anything starts."""
    executable = system_chromium()
    if executable is None:
        pytest.skip("Debian's Chromium is not installed (/usr/bin/chromium): "
                    "apt-get install chromium chromium-driver (.ci/run does)")
    return executable


@pytest.fixture
def browser(chromium: str, days_before):
    """Started after the days before are posted: Dagster's in-process run wants the thread's event loop,
    which Playwright's sync API holds while it runs."""
    executable = chromium
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
    ui_port = free_port()
    site = make_site(sandbox, f"sqlite:///{ci_path}", {
        "first_trading_day": FIRST_DAY.isoformat(),
        # links both ways: each posted document to its page in the sandbox Xero, each invoice back to its day
        "xero": {"document_link": f"{sandbox.base_url}/organisationlogin/default.aspx?shortcode={{short_code}}&redirecturl={{page}}"},
        "dagster_ui_url": f"http://127.0.0.1:{ui_port}",
    })
    connect_site(site)
    home = ensure_dagster_home(tmp_path / "dagster_home")
    # the instance's databases exist before dagster dev starts: two processes creating them at once
    # leave SQLite's migration table with two heads
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_events([])
    return site, home, ui_port


@pytest.fixture
def dagster_dev(demo_site, tmp_path: Path):
    site, home, ui_port = demo_site
    server = DagsterDev(site, home, tmp_path / "dagster_dev.log", port=ui_port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def days_before(demo_site, dagster_dev):
    """The first two days, posted as `ci-xero run` posts them, into the instance the UI shows, while
    dagster dev starts."""
    site, home, _port = demo_site
    with DagsterInstance.from_config(str(home)) as instance:
        run = run_days(site, FIRST_DAY, SECOND_DAY, instance)
    assert run.success, run.run_id
    return run


def sandbox_address(site: Path) -> str:
    """The sandbox Xero's web address, as the site's document links name it."""
    return load_settings(site).xero.document_link.split("/organisationlogin")[0]


def scroll_to_top(locator) -> None:
    """Scroll the page so that the element is at the top of the view (for the screenshot)."""
    locator.evaluate("element => element.scrollIntoView({block: 'start', inline: 'nearest'})")


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


def test_accountant_follows_a_day_the_mapping_stops_to_its_fix_in_the_dagster_ui(
    chromium, demo_site, dagster_dev: DagsterDev, days_before, page, screenshots
):
    site, _home, _port = demo_site
    started = time.monotonic()
    dagster_dev.wait_until_loaded()
    print(f"{time.monotonic() - started:5.1f} s  dagster dev loaded")
    dagster_dev.skip_welcome_prompt()
    url = dagster_dev.url

    # a bookkeeper archives the footwear sales account in Xero, with Xero's own call
    account = "202"
    assert set_account_status(site, account, "ARCHIVED")["Status"] == "ARCHIVED"

    # 1. the data path: CI → validated → Xero documents and payments → posted, two of three days filled
    page.goto(f"{url}/locations/{LOCATION}/asset-groups/eretailer/lineage")
    assets = ("raw_eretailer", "validated_eretailer", "xero_eretailer_documents", "xero_eretailer_payments", "posted_eretailer")
    for asset in assets:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^\d+% filled$"))).to_have_count(len(assets))  # one per asset; step 3 counts the days
    expect(page.get_by_text("4 / 4 Passed")).to_be_visible()  # posted_eretailer's checks on the days posted
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

    # 4. View logs → the step's failure: nothing was posted; its headline names the setting, the account and
    # why it does not fit, then the fix
    page.get_by_role("button", name="View logs").click()
    logs = page.get_by_role("dialog")
    log_filter = logs.get_by_placeholder("Filter…")
    log_filter.fill("type:STEP_FAILURE")
    log_filter.press("Enter")
    headline = logs.get_by_text(re.compile(re.escape(
        f"E-Retailer invoices: nothing was posted, the mapping does not fit the Xero organisation: {SETTING} → account {account}"))).first
    expect(headline).to_be_visible()
    expect(headline).to_contain_text("is ARCHIVED in Xero")
    expect(headline).to_contain_text(f"Fix: restore account {account} in Xero")
    screenshots(page, "failure-headline")

    # 5. the whole failure: the mapping_problems table, every mapped setting against the organisation, the
    # archived one marked, and its fix
    logs.get_by_text("View full message").first.click()
    error = page.get_by_role("dialog").filter(has=page.get_by_role("button", name="Copy error"))
    expect(error.get_by_text("mapping_problems", exact=True)).to_be_visible()
    expect(error.get_by_text("failed_documents", exact=True)).to_have_count(0)  # none was sent, so none refused
    error.locator("tr", has=page.get_by_text("mapping_problems", exact=True)).last.get_by_text("Show Markdown").click()
    table = page.get_by_role("dialog").filter(has=page.get_by_role("button", name="Close"))
    expect(table).to_contain_text("PROBLEM: archived")
    expect(table).to_contain_text(f"fix: restore account {account} in Xero")
    # a table to read: one line per mapped setting, the archived one with its account, status and verdict
    lines = [" ".join(line.split()) for line in table.inner_text().splitlines()]
    footwear_line = [line for line in lines if line.startswith(f"{SETTING} {account} ")]
    assert len(footwear_line) == 1 and footwear_line[0].endswith("ARCHIVED PROBLEM: archived"), lines
    assert any(line.startswith("mapping.sales_accounts.APPAREL 201 ") and line.endswith(" ok") for line in lines), lines
    screenshots(page, "mapping-problems")
    table.get_by_role("button", name="Close").click()
    expect(table).to_have_count(0)
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

    # 7. the failure report, reachable from the UI: the sensor report_failed_posting records each failed run
    # on the site asset failed_runs (and on the run's tags)
    failed_run_id = failed_run_url.split("/runs/")[1].split("?")[0]
    assert SETTING in dagster_dev.wait_for_run_tag(failed_run_id, "ci-xero/failure")
    page.goto(f"{url}/assets/failed_runs")
    expect(page.get_by_text(failed_run_id).first).to_be_visible()
    report_headline = page.locator("tr", has=page.get_by_text("headline", exact=True)).first
    expect(report_headline).to_contain_text("nothing was posted")
    expect(report_headline).to_contain_text(f"{SETTING} → account {account}")
    expect(report_headline).to_contain_text("ARCHIVED")
    expect(page.locator("tr", has=page.get_by_text("settings_to_check", exact=True)).first).to_contain_text(SETTING)
    scroll_to_top(page.get_by_text("run", exact=True).first)
    screenshots(page, "failure-report")

    # 8. the mapping in force: which Xero account each CI code goes to, and the setting that changes it
    page.goto(f"{url}/assets/site_settings")
    footwear = page.locator("tr", has_text=SETTING).last
    expect(footwear).to_contain_text("FOOTWEAR")
    expect(footwear).to_contain_text(account)
    scroll_to_top(page.get_by_text("sales_accounts", exact=True))  # its key: the row is wider than the page
    screenshots(page, "mapping-in-force")

    # 9. the fix (the account restored in Xero), then the re-run from the failed run's page: from the failure,
    # since the documents the failed run built are still right
    assert set_account_status(site, account, "ACTIVE")["Status"] == "ACTIVE"
    page.goto(failed_run_url)
    page.get_by_role("button", name="Re-execute all (*)").locator("xpath=following::button[1]").click()
    choice = page.get_by_role("menuitem", name="From failure")
    expect(choice).to_be_visible()
    screenshots(page, "re-execute")
    choice.click()
    expect(page).not_to_have_url(failed_run_url)
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    screenshots(page, "re-run-succeeded")

    # 10. every day green, and the day's invoice is in Xero
    page.goto(f"{url}/assets/posted_eretailer?view=partitions")
    expect(page.get_by_text("Materialized (3)")).to_be_visible()
    expect(page.get_by_text("Failed (0)")).to_be_visible()
    pick_partition(page, FAILING_DAY)
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(page.get_by_text("documents_in_xero", exact=True)).to_be_visible()
    screenshots(page, "day-posted")

    # 11. the invoice in Xero, one click away (its xero_link), and from there back to its day (its Url)
    xero_link = page.locator(f'a[href^="{sandbox_address(site)}/organisationlogin/"]').first
    xero_link.scroll_into_view_if_needed()
    with page.context.expect_page() as opened:  # a metadata link opens in a new tab
        xero_link.click()
    invoice_page = opened.value
    invoice_page.set_viewport_size(VIEWPORT)
    expect(invoice_page.get_by_role("heading", name=re.compile(FAILING_NUMBER))).to_be_visible()
    expect(invoice_page.get_by_text("AUTHORISED").first).to_be_visible()
    source = invoice_page.locator("a#source")
    expect(source).to_have_attribute("href", re.compile(re.escape(f"{url}/assets/posted_eretailer") + f".*partition={FAILING_DAY}"))
    screenshots(invoice_page, "invoice-in-xero")
    source.click()
    expect(invoice_page).to_have_url(re.compile(f"partition={FAILING_DAY}"))
    expect(invoice_page.get_by_text("documents_in_xero", exact=True)).to_be_visible()
    invoice_page.close()
    invoices, _credit_notes = xero_documents(site)
    assert {invoice["InvoiceNumber"] for invoice in invoices if invoice["Status"] == "AUTHORISED"} >= {
        f"ER-{day:%Y%m%d}" for day in (FIRST_DAY, SECOND_DAY, LAST_DAY)
    }
    print(f"UI walk-through: {time.monotonic() - started:.0f} s, {len(screenshots.taken)} screenshots in {screenshots.taken[0].parent}")
