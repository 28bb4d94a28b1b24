"""Runs that nobody watches: one Dagster instance per site for every way of running, and a run killed in
the middle (SIGKILL) never blocks the next one on the organisation's pool slot.

The runs here are real `ci-xero run` processes, without DAGSTER_HOME (as cron or a person would start
them), posting into the sandbox; a `slow` fault holds one batch's answer so that a run can be killed
while it holds the `xero-<organisation>` slot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from ci_xero_pipeline import runner
from ci_xero_pipeline.code_location import xero_pool_name
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.settings import load_settings

from .conftest import DEMO_DAYS, DEMO_END_DAY, PROJECT_ROOT
from .pipeline_helpers import connect_site

FIRST, LAST = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1), DEMO_END_DAY
FAST_XERO = {"time_scale": 30}  # Xero's minute lasts two seconds here
FAST_CLIENT = {"rate_window_seconds": 2}

def hold(seconds: float) -> FaultPlan:
    """The third invoice batch is saved by Xero, and its answer held back `seconds`."""
    return FaultPlan(script=("ok", "ok", "slow"), methods=("PUT",), collections=("Invoices",), slow_seconds=seconds)


RUN_TIMEOUT = 120  # a run that hangs fails the test instead of blocking CI


def start_run(site: Path, log: Path, home: Path | None = None) -> subprocess.Popen:
    """`ci-xero run` as cron would start it: no DAGSTER_HOME (or the one given)."""
    command = [str(Path(sys.executable).parent / "ci-xero"), "--settings", str(site), "run",
               "--first", FIRST.isoformat(), "--last", LAST.isoformat()]
    environment = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    if home is not None:
        environment["DAGSTER_HOME"] = str(home)
    return subprocess.Popen(command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until(condition, process: subprocess.Popen, what: str, seconds: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.1)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def finish(process: subprocess.Popen) -> int:
    try:
        return process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        pytest.fail(f"the next run did not finish within {RUN_TIMEOUT} s: it waits for the dead run's slot")


def site_instance(site: Path, home: Path | None = None) -> DagsterInstance:
    home = home or site.parent / ".dagster_home"
    assert (home / "dagster.yaml").is_file(), "ci-xero run uses the site's .dagster_home beside site.yaml"
    return DagsterInstance.from_config(str(home))


@pytest.fixture
def held_site(sandbox_factory, demo_ci_url, make_site):
    sandbox = sandbox_factory(**FAST_XERO)
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "detail"}, "xero": {"batch_size": 10, **FAST_CLIENT}})
    connect_site(site)
    return sandbox, site


def the_held_run(instance: DagsterInstance, pool: str) -> str:
    holders = {slot.run_id for slot in instance.event_log_storage.get_concurrency_info(pool).claimed_slots}
    assert len(holders) == 1, f"the killed run holds the pool {pool!r} slot (limit 1 in the site's instance)"
    return holders.pop()


@pytest.mark.parametrize("dagster_home", ["site's .dagster_home", "DAGSTER_HOME"])
def test_a_run_killed_while_it_holds_the_pool_slot_never_blocks_the_next_run(dagster_home, held_site, tmp_path):
    sandbox, site = held_site
    pool = xero_pool_name(load_settings(site))
    home = None
    if dagster_home == "DAGSTER_HOME":  # an instance made by hand with the repository's dagster.yaml
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    sandbox.faults.set(hold(10))  # killed at once: a short hold lets the sandbox stop sooner
    killed = start_run(site, tmp_path / "killed.log", home)
    try:
        wait_until(lambda: sandbox.faults.stats()["holding"] > 0, killed, "the held batch")
    finally:
        kill(killed)
    sandbox.faults.clear()

    instance = site_instance(site, home)
    dead_run = the_held_run(instance, pool)
    assert instance.get_run_by_id(dead_run).status == DagsterRunStatus.STARTED  # nobody knows it is dead yet

    log = tmp_path / "next.log"
    assert finish(start_run(site, log, home)) == 0, log.read_text()[-3000:]

    shown = log.read_text()
    said = [line for line in shown.splitlines() if "WARNING" in line and dead_run in line]
    assert said and "FAILED" in said[0] and "freed" in said[0], shown[-3000:]
    assert instance.get_run_by_id(dead_run).status == DagsterRunStatus.FAILURE
    failure = [e for e in instance.all_logs(dead_run) if e.dagster_event and e.dagster_event.is_run_failure]
    assert failure and "process" in failure[0].message and "gone" in failure[0].message
    assert instance.event_log_storage.get_concurrency_info(pool).claimed_slots == []
    runs = instance.get_run_records(RunsFilter(job_name=runner.JOB_NAME))
    assert [r.dagster_run.status for r in runs] == [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]


def test_a_run_waiting_for_the_slot_says_which_run_holds_it_and_goes_on_when_that_run_dies(held_site, tmp_path):
    sandbox, site = held_site
    pool = xero_pool_name(load_settings(site))
    sandbox.faults.set(hold(300))
    holder = start_run(site, tmp_path / "holder.log")
    waiting = None
    try:
        wait_until(lambda: sandbox.faults.stats()["holding"] > 0, holder, "the held batch")
        instance = site_instance(site)
        holder_run = the_held_run(instance, pool)

        log = tmp_path / "waiting.log"
        waiting = start_run(site, log)
        # the pool is respected without DAGSTER_HOME, and the wait is said plainly, naming the holder
        wait_until(lambda: "waits for the slot" in log.read_text(), waiting, "the WARNING about the wait", 90)
        line = next(line for line in log.read_text().splitlines() if "waits for the slot" in line)
        assert "WARNING" in line and holder_run in line and pool in line and "alive" in line
        assert waiting.poll() is None and holder.poll() is None
        sandbox.faults.clear()
    finally:
        kill(holder)  # the holder dies while the other run waits for its slot
    assert finish(waiting) == 0, log.read_text()[-3000:]

    shown = log.read_text()
    assert any("WARNING" in line and holder_run in line and "FAILED" in line for line in shown.splitlines()), shown[-3000:]
    assert instance.get_run_by_id(holder_run).status == DagsterRunStatus.FAILURE
    waited = [r for r in instance.get_run_records(RunsFilter(job_name=runner.JOB_NAME)) if r.dagster_run.run_id != holder_run]
    assert [r.dagster_run.status for r in waited] == [DagsterRunStatus.SUCCESS]
    # the wait is in the run's own log too, for whoever opens it in the UI
    assert any("waits for the slot" in e.message for e in instance.all_logs(waited[0].dagster_run.run_id))


def test_every_way_of_running_uses_the_sites_instance(tmp_path, monkeypatch):
    site = tmp_path / "site" / "site.yaml"
    site.parent.mkdir()
    values = yaml.safe_load((PROJECT_ROOT / "site.yaml").read_text())
    site.write_text(yaml.safe_dump({**values, "data_dir": str(tmp_path / "data")}))
    settings = load_settings(site)

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = runner.dagster_instance(settings)
    home = site.parent / ".dagster_home"
    assert Path(instance.root_directory) == home  # beside site.yaml, not a throw-away or a data/ copy
    assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
    assert instance.event_log_storage.get_concurrency_info("xero-any").limit == 1
    assert instance.run_monitoring_enabled and instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    assert 0 < instance.run_monitoring_settings["max_runtime_seconds"] <= 6 * 3600
    instance.dispose()

    # DAGSTER_HOME, when set, is the one (what `dagster dev` and `dagster asset materialize` use)
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    instance = runner.dagster_instance(settings)
    assert Path(instance.root_directory) == elsewhere and (elsewhere / "dagster.yaml").is_file()
    instance.dispose()

    # without the repository (an installed package) a new instance gets the same settings
    assert yaml.safe_load(runner.FALLBACK_DAGSTER_YAML) == yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    # scripts/demo leaves the choice to ci-xero (DAGSTER_HOME, else the site's .dagster_home)
    assert "DAGSTER_HOME=" not in (PROJECT_ROOT / "scripts" / "demo").read_text()
