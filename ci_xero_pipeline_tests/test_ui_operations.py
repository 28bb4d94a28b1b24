"""What a person finds in the Dagster UI: a failure report for every failed run however it was started,
a schedule that says which day each tick posts, a broken site.yaml shown where one looks first, and the
settings and the connection's health on the site's assets.

The launches are Dagster's own: a backfill of the asset group run by the backfill daemon (as the UI asks
for one), `ci-xero run`, the scheduler daemon's tick, the sensor daemon's tick of the change sensor. They
run against a persistent instance (sqlite, the repository's dagster.yaml) and a code location loaded as
`dagster dev` loads it, in process. The run-failure sensor is evaluated as the sensor daemon evaluates
it (through the code location, which gives it its origin), and its tick log is read back from the
instance, where the UI reads it."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dagster import AssetKey, DagsterRunStatus, RunsFilter, SkipReason
from dagster import build_schedule_context, build_sensor_context
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.instance_for_test import instance_for_test
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, BACKFILL_ID_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs
from dagster._serdes import serialize_value
from dagster._utils.schedules import cron_string_iterator

from ci_xero_pipeline import cli, sensors
from ci_xero_pipeline.assets.eretailer import ERETAILER
from ci_xero_pipeline.code_location import POSTS_DAY_TAG, build_definitions, day_posted_by_tick
from ci_xero_pipeline.runner import repository_dagster_yaml, run_days
from ci_xero_pipeline.settings import load_settings

from .conftest import DEMO_END_DAY, PROJECT_ROOT
from .pipeline_helpers import connect_site, xero_totals_by_day
from .test_unattended_sensors import nz_now, revoke_and_refuse, stamp

NZ = ZoneInfo("Pacific/Auckland")
ERETAILER_ASSETS = [AssetKey(name) for name in ERETAILER.asset_names()]  # the asset group's, payments included
ARCHIVED = "209"  # the sandbox's "Sales - old range", archived in Xero
LOG = logging.getLogger("test_ui_operations")
pytestmark = [  # raised inside Dagster's own backfill daemon and in-process executor, not by our calls
    pytest.mark.filterwarnings("ignore:Function `AssetSelection.sources` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited:RuntimeWarning"),
]


def set_mapping(site: Path, code: str, account: str) -> None:
    values = yaml.safe_load(site.read_text())
    values["mapping"]["sales_accounts"][code] = account
    site.write_text(yaml.safe_dump(values))


class Deployment:
    """The site as `dagster dev` runs it: a persistent instance and the code location loaded from a file,
    runs launched through the instance's run launcher (synchronous here, so the test can wait on them)."""

    def __init__(self, site: Path, instance, folder: Path):
        self.instance = instance
        code = folder / "site_location.py"
        # Dagster's default executor starts a process per step; in one process the runs are the same, faster
        code.write_text(
            "from dagster import Definitions, in_process_executor\n"
            "from ci_xero_pipeline.code_location import build_definitions\n"
            f"defs = Definitions.merge(build_definitions({str(site)!r}), Definitions(executor=in_process_executor))\n"
        )
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(executable_path=sys.executable, python_file=str(code), working_directory=str(folder)),
            location_name="ci_xero_site",
        )
        self.process = WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))
        entry = next(iter(self.process.create_request_context().get_code_location_entries().values()))
        assert entry.code_location is not None, entry.load_error
        self.location = entry.code_location
        self.repository = self.location.get_repository("__repository__")

    def close(self) -> None:
        self.process.__exit__(None, None, None)

    def backfill_from_the_asset_group(self, first: date, last: date) -> str:
        """What the UI's "Materialize" on the asset group asks for: an asset backfill of its assets."""
        backfill_id = f"bf{int(time.time() * 1000) % 10**8}"
        request = self.process.create_request_context()
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id, asset_graph=request.asset_graph,
            partition_names=[(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)],
            asset_selection=ERETAILER_ASSETS, backfill_timestamp=time.time(), tags={},
            dynamic_partitions_store=self.instance, all_partitions=False, title=None, description=None, run_config=None,
        )
        self.instance.add_backfill(backfill)
        for _ in range(6):  # the backfill daemon's iterations: request the run, see it end, close the backfill
            list(execute_backfill_iteration(self.process, LOG))
            if self.instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
                break
        return backfill_id

    def schedule_tick(self, name: str, at: datetime) -> None:
        """The scheduler daemon, running since a minute before `at`, reaches `at`."""
        schedule = self.repository.get_schedule(name)
        self.instance.add_instigator_state(InstigatorState(
            schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
            ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=(at - timedelta(minutes=1)).timestamp()),
        ))
        list(launch_scheduled_runs(self.process, LOG, end_datetime_utc=at.astimezone(timezone.utc), iteration_times={}))

    def sensor_daemon_tick(self, running: list[str]) -> None:
        """One iteration of the sensor daemon with only `running` sensors on."""
        for sensor in self.repository.get_sensors():
            if sensor.name in running:
                self.instance.start_sensor(sensor)
            else:
                self.instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
        list(execute_sensor_iteration(self.process, LOG, threadpool_executor=None, submit_threadpool_executor=None))

    def evaluate_sensor(self, name: str, cursor: str | None, log_key: list[str] | None = None):
        """The sensor's evaluation as the daemon asks the code location for it (with its origin)."""
        return self.location.get_sensor_execution_data(
            self.instance, self.repository.handle, name, None, None, cursor, log_key, None
        )

    def tick_log(self, log_key: list[str]) -> str:
        data = self.instance.compute_log_manager.get_log_data(log_key)
        return "\n".join(json.loads(line).get("msg", "") for line in (data.stderr or b"").decode().splitlines() if line.strip())


@pytest.fixture
def deployment_instance(tmp_path: Path):
    overrides = yaml.safe_load(repository_dagster_yaml())
    (tmp_path / "dagster_home").mkdir()
    with instance_for_test(overrides=overrides, temp_dir=str(tmp_path / "dagster_home"),
                           synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        yield instance  # DAGSTER_HOME is this folder: `ci-xero run` uses the same instance


def test_every_failed_run_is_reported_in_the_ui_however_it_was_started(
    sandbox, ci_copy, make_site, deployment_instance, tmp_path, capsys
):
    instance = deployment_instance
    site = make_site(sandbox, ci_copy)  # Summary mode: one invoice a day, every day sells footwear
    connect_site(site)
    days = [DEMO_END_DAY - timedelta(days=n) for n in range(4, -1, -1)]  # 10-27 … 10-31
    by_cli, backfill_first, backfill_last, by_sensor, by_schedule = days
    assert run_days(site, by_sensor, by_sensor, instance).success  # posted; CI changes it afterwards
    stamp(load_settings(site).resolved_ci_database_url, by_sensor, nz_now())
    # from now on every run stops before sending anything: the mapping check finds account 209 archived
    set_mapping(site, "FOOTWEAR", ARCHIVED)

    deployment = Deployment(site, instance, tmp_path)
    try:
        failure_sensor = deployment.evaluate_sensor("report_failed_posting", None)  # starts watching now
        cursor = failure_sensor.cursor

        assert cli.main(["--settings", str(site), "run", "--first", by_cli.isoformat(), "--last", by_cli.isoformat()]) == 1
        printed = capsys.readouterr().out  # the command says why, too
        assert "FAILED" in printed and "mapping.sales_accounts.FOOTWEAR" in printed and "Fix: " in printed
        backfill_id = deployment.backfill_from_the_asset_group(backfill_first, backfill_last)
        deployment.schedule_tick("eretailer_daily", datetime(2026, 11, 1, 2, 0, tzinfo=NZ))
        deployment.sensor_daemon_tick(running=[sensors.CHANGE_SENSOR_NAME])

        failed = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
        assert len(failed) == 4
        runs = {}
        for record in failed:
            run = record.dagster_run
            runs[run.tags.get(POSTS_DAY_TAG) or run.tags.get("dagster/partition") or run.tags.get(ASSET_PARTITION_RANGE_START_TAG)] = run
        assert runs[backfill_first.isoformat()].job_name == IMPLICIT_ASSET_JOB_NAME  # Dagster's name for the group's launch
        assert runs[backfill_first.isoformat()].tags[BACKFILL_ID_TAG] == backfill_id
        assert runs[backfill_first.isoformat()].tags[ASSET_PARTITION_RANGE_END_TAG] == backfill_last.isoformat()
        assert {runs[d.isoformat()].job_name for d in (by_cli, by_schedule, by_sensor)} == {"eretailer_to_xero"}

        log_key = ["report_failed_posting", "tick1"]
        evaluated = deployment.evaluate_sensor("report_failed_posting", cursor, log_key)
        assert len(evaluated.dagster_run_reactions) == 4 and not any(r.error for r in evaluated.dagster_run_reactions)
        tick_log = deployment.tick_log(log_key)
    finally:
        deployment.close()

    started = {
        by_cli: "`ci-xero run`",
        backfill_first: f"backfill {backfill_id} (launched from the asset graph)",
        by_schedule: "schedule eretailer_daily",
        by_sensor: f"sensor {sensors.CHANGE_SENSOR_NAME}",
    }
    observations = {
        record.event_log_entry.asset_observation.metadata["run"].run_id: record.event_log_entry.asset_observation
        for record in instance.fetch_observations(AssetKey("failed_runs"), limit=20).records
    }
    for day, how in started.items():
        run = instance.get_run_by_id(runs[day.isoformat()].run_id)
        headline, fix = run.tags[sensors.FAILURE_TAG], run.tags[sensors.FIX_TAG]
        # the failure's headline says nothing was posted and names the setting and the account; its fix, the
        # account to restore and the setting to change
        assert headline.startswith("E-Retailer invoices: nothing was posted, the mapping does not fit the Xero "
                                   f"organisation: mapping.sales_accounts.FOOTWEAR → account {ARCHIVED} "), headline
        assert "ARCHIVED" in headline
        assert f"restore account {ARCHIVED}" in fix and "mapping.sales_accounts.FOOTWEAR" in fix
        report = json.loads(Path(run.tags[sensors.REPORT_TAG]).read_text())
        assert report["started_by"].startswith(how) and report["headline"].startswith(headline.rstrip("…"))
        assert day.isoformat() in report["failed_days"]  # nothing of the run's days was posted
        assert report["settings_to_check"] == ["mapping.sales_accounts.FOOTWEAR"]
        [step] = report["steps"]
        assert step["step"] == "posted_eretailer" and step["documents"] == []  # none was sent, so none refused
        observation = observations[run.run_id]
        assert observation.metadata["headline"].value == report["headline"]
        assert observation.metadata["started_by"].value == report["started_by"]
        assert observation.metadata["settings_to_check"].value == "mapping.sales_accounts.FOOTWEAR"
        assert f"Run {run.run_id}" in tick_log and report["started_by"] in tick_log
    assert "mapping.sales_accounts.FOOTWEAR" in tick_log
    # nothing was sent: only the day posted before the mapping changed is in Xero, as it was posted
    assert set(xero_totals_by_day(site)) == {by_sensor.isoformat()}
    # the scheduler's run names the day it posts, and is keyed by it
    scheduled = instance.get_run_by_id(runs[by_schedule.isoformat()].run_id)
    assert scheduled.tags[POSTS_DAY_TAG] == by_schedule.isoformat() == scheduled.tags["dagster/partition"]
    assert scheduled.tags["dagster/run_key"] == f"eretailer_daily:{by_schedule.isoformat()}"


# -------------------------------------------------------------------------------------------- the schedule


def plain_site(folder: Path, changes: dict | None = None, text_after: str = "") -> Path:
    """The project's site.yaml with its data under `folder` (nothing connects to Xero or CI)."""
    from .conftest import deep_merge

    values = deep_merge(yaml.safe_load((PROJECT_ROOT / "site.yaml").read_text()),
                        {"data_dir": str(folder / "data"), "first_trading_day": "2026-01-01", **(changes or {})})
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(values) + text_after)
    return path


def posted_by(schedule, tick: datetime):
    result = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick))
    return result.skip_message if not result.run_requests else result.run_requests


def test_each_schedule_tick_names_the_nz_trading_day_it_posts(tmp_path):
    schedule = build_definitions(plain_site(tmp_path)).resolve_schedule_def("eretailer_daily")
    assert schedule.description.startswith(
        "At 02:00 NZ time, posts the previous NZ trading day: the tick of 2 Dec posts 1 Dec.")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "Pacific/Auckland")

    tick = datetime(2026, 12, 2, 2, 0, tzinfo=NZ)  # 13:00 UTC on 1 Dec: the UTC date is the day posted
    for same_instant in (tick, tick.astimezone(timezone.utc)):
        [request] = posted_by(schedule, same_instant)
        assert request.partition_key == "2026-12-01" and request.run_key == "eretailer_daily:2026-12-01"
        assert request.tags[POSTS_DAY_TAG] == "2026-12-01" and request.tags["ci-xero/tick"] == "2026-12-02 02:00 NZDT"

    # the ticks Dagster's scheduler makes around the DST nights, each evaluated: one tick per NZ day, each
    # posting the day before it
    for start, night, at in ((date(2026, 9, 25), date(2026, 9, 27), "03:00 NZDT"),  # 02:00 does not exist
                             (date(2027, 4, 2), date(2027, 4, 4), "02:00 NZST")):  # 02:00 happens twice
        ticks = cron_string_iterator(datetime(*start.timetuple()[:3], tzinfo=NZ).timestamp(), schedule.cron_schedule,
                                     schedule.execution_timezone)
        seen = [next(ticks) for _ in range(5)]
        assert [t.astimezone(NZ).date() for t in seen] == [start + timedelta(days=n) for n in range(5)]
        for t in seen:
            [request] = posted_by(schedule, t)
            assert request.partition_key == (t.astimezone(NZ).date() - timedelta(days=1)).isoformat()
            if t.astimezone(NZ).date() == night:
                assert request.tags["ci-xero/tick"] == f"{night.isoformat()} {at}"
        assert day_posted_by_tick(datetime(*night.timetuple()[:3], 2, 30, tzinfo=NZ)) == night - timedelta(days=1)

    # a day before the first trading day is not asked for
    assert "before first_trading_day 2026-01-01" in posted_by(schedule, datetime(2026, 1, 1, 2, 0, tzinfo=NZ))


@pytest.mark.parametrize("schedule_time, tick, day", [
    ("00:30", datetime(2026, 12, 2, 0, 30, tzinfo=NZ), "2026-12-01"),  # 11:30 UTC on 1 Dec
    ("23:45", datetime(2026, 12, 2, 23, 45, tzinfo=NZ), "2026-12-01"),  # 2 Dec is still trading
])
def test_a_tick_at_any_time_of_the_nz_day_posts_the_day_before_it(schedule_time, tick, day, tmp_path):
    schedule = build_definitions(plain_site(tmp_path, {"eretailer": {"schedule_time": schedule_time}})).resolve_schedule_def(
        "eretailer_daily")
    assert schedule.description.startswith(f"At {schedule_time} NZ time, posts the previous NZ trading day")
    [request] = posted_by(schedule, tick)
    assert request.partition_key == day


# ------------------------------------------------------------------------------------- a broken site.yaml

PASTED_PASSWORD = "Pasted-Pw-8e1f"


def test_a_broken_site_yaml_is_shown_in_the_ui_and_every_command_refuses_it(tmp_path, capsys):
    site = plain_site(tmp_path, {"eretailer": {"mode": "sumary"}, "xero": {"tenant": "Demo Retail Ltd"}})
    definitions = build_definitions(site)
    repository = definitions.get_repository_def()
    [key] = repository.assets_defs_by_key
    spec = repository.assets_defs_by_key[key].specs_by_key[key]
    assert key == AssetKey("fix_site_yaml") and spec.group_name == "fix_site_yaml"
    for text in (spec.description, spec.metadata["error"].value):
        assert str(site) in text and "eretailer.mode" in text and "xero.tenant: is not a known setting" in text
    assert {r.data["setting"] for r in spec.metadata["settings_to_fix"].value.records} == {"eretailer.mode", "xero.tenant"}
    assert repository.job_names == [] or set(repository.job_names) <= {IMPLICIT_ASSET_JOB_NAME}  # nothing can run
    [sensor] = repository.sensor_defs
    tick = sensor(build_sensor_context())
    assert isinstance(tick, SkipReason) and "SITE.YAML NEEDS FIXING" in tick.skip_message
    assert "eretailer.mode" in tick.skip_message and str(site) in tick.skip_message

    # the code location loads as `dagster dev` loads it: the error is in the asset graph, not under Deployment
    code = tmp_path / "location.py"
    code.write_text(f"from ci_xero_pipeline.code_location import build_definitions\ndefs = build_definitions({str(site)!r})\n")
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(code), working_directory=str(tmp_path)),
                                         location_name="broken_site")
    with instance_for_test() as instance, \
            WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
        [entry] = process.create_request_context().get_code_location_entries().values()
        assert entry.load_error is None
        nodes = entry.code_location.get_repository("__repository__").get_asset_node_snaps()
        assert [(n.asset_key, n.group_name) for n in nodes] == [(AssetKey("fix_site_yaml"), "fix_site_yaml")]

    # every command refuses, with the same error
    for command in (["run", "--first", "2026-10-30"], ["plan"], ["status"], ["connect", "--no-browser"]):
        assert cli.main(["--settings", str(site), *command]) == 2
        err = capsys.readouterr().err
        assert "eretailer.mode" in err and str(site) in err

    # a line YAML cannot read, with a password pasted into it: named by its line, never shown
    site = plain_site(tmp_path, text_after=f'ci_database_url: "postgresql://reader:{PASTED_PASSWORD}@db.example/ci\n')
    repository = build_definitions(site).get_repository_def()
    [key] = repository.assets_defs_by_key
    description = repository.assets_defs_by_key[key].specs_by_key[key].description
    assert "is not valid YAML" in description and "line" in description
    tick = repository.sensor_defs[0](build_sensor_context()).skip_message
    assert cli.main(["--settings", str(site), "run"]) == 2
    err = capsys.readouterr().err
    assert "is not valid YAML" in err
    for text in (description, tick, err, serialize_value(RepositorySnap.from_def(repository))):
        assert PASTED_PASSWORD not in text


# -------------------------------------------------------------------- the settings and the connection


def rows(table) -> list[dict]:
    return [dict(record.data) for record in table.value.records]


def test_the_settings_in_force_and_the_connections_health_are_on_the_site_assets(sandbox, demo_ci_url, make_site, tmp_path):
    site = make_site(sandbox, demo_ci_url, {
        "eretailer": {"mode": "detail", "status": "DRAFT", "schedule_time": "05:30"},
        "xero": {"keep_alive_time": "03:30"}, "tracking": {"branch_options": {"WLG": "Wellington"}},
    })
    settings = load_settings(site)
    definitions = build_definitions(site)
    repository = definitions.get_repository_def()
    site_group = {key.to_user_string() for key, a in repository.assets_defs_by_key.items()
                  if a.specs_by_key[key].group_name == "site"}
    assert site_group == {"site_settings", "xero_connection", "failed_runs"}

    spec = repository.assets_defs_by_key[AssetKey("site_settings")].specs_by_key[AssetKey("site_settings")]
    metadata = spec.metadata
    assert metadata["organisation"] == "Test Retail Ltd" and metadata["status"] == "DRAFT"
    assert metadata["mode"].startswith("Detail") and metadata["schedule"].startswith("05:30 NZ time")
    assert rows(metadata["sales_accounts"]) == [
        {"ci_analysis_code": code, "xero_account": account, "setting": f"mapping.sales_accounts.{code}"}
        for code, account in sorted(settings.mapping.sales_accounts.items())
    ]
    assert {"ci_analysis_code": "FOOTWEAR", "xero_account": "202", "setting": "mapping.sales_accounts.FOOTWEAR"} in rows(
        metadata["sales_accounts"])
    assert {"ci_gst_code": "S", "xero_tax_type": "OUTPUT2", "gst_rate_percent": "15", "setting": "mapping.tax_types.S, "
            "mapping.gst_rates.S"} in rows(metadata["tax_types"])
    assert rows(metadata["branch_options"]) == [{"ci_branch_code": "WLG", "xero_tracking_option": "Wellington",
                                                  "setting": "tracking.branch_options.WLG"}]
    shown = {row["setting"]: row["value"] for row in rows(metadata["settings"])}
    assert shown["eretailer.mode"] == "detail" and shown["settings file"] == str(site)
    assert shown["xero.keep_alive_time"].startswith("03:30 NZ time")
    assert "Test Retail Ltd" in spec.description and "DRAFT" in spec.description
    assert "Test Retail Ltd" in definitions.resolve_job_def("eretailer_to_xero").description

    # the connection's health, as the expiry sensor records it at each tick
    sensor = definitions.resolve_sensor_def("xero_connection_expiry")
    xero = definitions.resources["xero"]
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        def tick() -> dict:
            sensor(build_sensor_context(instance=instance, resources={"xero": xero}))
            [latest] = instance.fetch_observations(AssetKey("xero_connection"), limit=1).records
            return {key: getattr(value, "value", value) for key, value in latest.asset_observation.metadata.items()}

        assert tick()["state"] == "not_connected"
        connect_site(site)
        healthy = tick()
        connection = xero.token_store().require()
        assert healthy["state"] == "healthy" and healthy["healthy"] is True and healthy["organisation"] == "Test Retail Ltd"
        assert healthy["tenant_id"] == connection.tenant_id
        assert 59.9 <= healthy["refresh_token_days_left"] <= 60
        assert healthy["refresh_token_expires"] == datetime.fromtimestamp(
            connection.refresh_token_expires_at, NZ).strftime("%Y-%m-%d %H:%M %Z")
        assert healthy["last_refresh"] == datetime.fromtimestamp(connection.refreshed_at, NZ).strftime("%Y-%m-%d %H:%M %Z")
        assert healthy["last_refusal"] == "none"

        revoke_and_refuse(sandbox, site)
        refused = tick()
        assert refused["state"] == "refused" and refused["healthy"] is False
        assert refused["headline"].startswith("RECONNECT NEEDED") and "invalid_grant" in refused["last_refusal"]
        assert refused["action"] == "ci-xero connect"
        events = serialize_value([r.event_log_entry for r in instance.fetch_observations(AssetKey("xero_connection"), limit=10).records])
        token = xero.token_store().require().token
        assert token["access_token"] not in events and token["refresh_token"] not in events
