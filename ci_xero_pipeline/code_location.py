"""Builds the Dagster code location (assets, checks, jobs, schedules, sensors) from a settings file.

When the settings file does not load, the code location still loads and shows the error where a person
looks first (assets/site.py: the asset `fix_site_yaml` and a sensor saying it at every tick); nothing can
run, and every `ci-xero` command refuses with the same error.
"""

from __future__ import annotations

import re
import socket
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    Definitions,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from dagster._core.storage.tags import PARTITION_NAME_TAG

from .alerts import alerter_for
from .ci.extract import changed_receipts_since, on_account_documents
from .assets.eretailer import ERETAILER
from .assets.process import Process, build_process_assets
from .assets.takings import TAKINGS
from .assets.receivables import RECEIVABLES
from .assets.payables import PAYABLES
from .assets.cogs import COGS
from .assets.site import broken_site_definitions, mode_words, organisation, site_asset_specs
from .io_manager import DailyFrameIOManager
from .planning import eretailer_plan
from .resources import CISourceResource, SiteResource, XeroResource
from .sensors import (
    SITE_TAG,
    build_connection_expiry_sensor,
    build_change_sensor,
    build_eretailer_change_sensor,
    build_allocation_retry_sensor,
    build_failed_posting_sensor,
    build_quarantine_sensor,
    xero_keep_alive,
)
from .settings import NZ_TIMEZONE, PROCESS_SECTIONS, SettingsError, SiteSettings, load_settings, settings_file

NZ = ZoneInfo(NZ_TIMEZONE)
ERETAILER_JOB = "eretailer_to_xero"
ERETAILER_SCHEDULE = "eretailer_daily"
PROCESSES: tuple[Process, ...] = (ERETAILER, TAKINGS, RECEIVABLES, PAYABLES, COGS)
if tuple(p.name for p in PROCESSES) != PROCESS_SECTIONS:  # a declaration for each section of site.yaml that posts
    raise RuntimeError(f"processes {[p.name for p in PROCESSES]} do not match settings.PROCESS_SECTIONS {PROCESS_SECTIONS}")
# each process's change sensor: the CI documents it watches (source, words[, how their changes are read])
CHANGES = {
    "takings": ("POS", "till (POS)"),
    "receivables": (on_account_documents, "account-customer"),
    "payables": (None, "goods receipt", changed_receipts_since),
    "cogs": (None, "sales (every source)"),
}
POSTS_DAY_TAG = "ci-xero/posts-day"  # on each run the schedule asks for: the NZ trading day it posts
TICK_TAG = "ci-xero/tick"  # ... and the NZ time of the tick


def trading_days(settings: SiteSettings) -> DailyPartitionsDefinition:
    """One partition per NZ trading day; the newest is yesterday (today is still trading)."""
    return DailyPartitionsDefinition(
        start_date=settings.first_trading_day.isoformat(), timezone=NZ_TIMEZONE
    )


def xero_pool_name(settings: SiteSettings) -> str:
    """The Dagster concurrency pool of the site's Xero organisation (limit 1: see dagster.yaml)."""
    organisation = settings.xero.tenant_id or settings.xero.tenant_name or settings.site_name
    return "xero-" + re.sub(r"[^A-Za-z0-9_-]+", "-", organisation).strip("-").lower()


# -- the daily schedule -----------------------------------------------------------------------------------

def day_posted_by_tick(tick: datetime) -> date:
    """The NZ trading day a tick posts: the day before the tick's NZ date (a tick at 02:00 NZ on 2 Dec is
    13:00 UTC on 1 Dec and posts 1 Dec). Daylight saving changes nothing: the date is taken in NZ."""
    when = tick if tick.tzinfo is not None else tick.replace(tzinfo=NZ)
    return when.astimezone(NZ).date() - timedelta(days=1)


def schedule_description(schedule_time: str) -> str:
    return (f"At {schedule_time} NZ time, posts the previous NZ trading day: the tick of 2 Dec posts 1 Dec. "
            "NZ time all year, daylight saving included: the night the clocks go forward a tick in the skipped "
            "hour runs at 03:00, the night they go back a tick in the repeated hour runs once. Each run is tagged "
            f"with the day it posts ({POSTS_DAY_TAG}) and keyed by it, so a day is asked for once.")


def process_named(name: str) -> Process:
    """The declaration of a process by its name (eretailer, takings)."""
    for process in PROCESSES:
        if process.name == name:
            return process
    raise ValueError(f"no process {name!r}: choose one of {', '.join(p.name for p in PROCESSES)}")


def process_job_name(process: str) -> str:
    """Each process's job: eretailer_to_xero, takings_to_xero, …"""
    return f"{process}_to_xero"


def process_settings(settings: SiteSettings, process: str):
    """The site.yaml section of a process (its schedule_time, sensor interval, posting policy)."""
    return getattr(settings, process)


def enabled_processes(settings: SiteSettings) -> list[Process]:
    """E-Retailer always; every other process when its section says enabled."""
    return [p for p in PROCESSES if p.name == ERETAILER.name or getattr(process_settings(settings, p.name), "enabled", False)]


def build_eretailer_schedule(job: JobDefinition, settings: SiteSettings) -> ScheduleDefinition:
    return build_process_schedule(job, settings, ERETAILER.name)


def build_process_schedule(job: JobDefinition, settings: SiteSettings, process: str) -> ScheduleDefinition:
    section = process_settings(settings, process)
    hour, minute = section.schedule_hour_minute
    first_day = settings.first_trading_day
    name = f"{process}_daily"

    @schedule(
        name=name,
        job=job,
        cron_schedule=f"{minute} {hour} * * *",
        execution_timezone=NZ_TIMEZONE,
        default_status=DefaultScheduleStatus.STOPPED,
        description=schedule_description(section.schedule_time),
    )
    def process_daily(context: ScheduleEvaluationContext):
        tick = context.scheduled_execution_time or datetime.now(NZ)  # "Test schedule" in the UI may give none
        day = day_posted_by_tick(tick)
        at = tick.astimezone(NZ).strftime("%Y-%m-%d %H:%M %Z")
        if day < first_day:
            return SkipReason(f"The tick of {at} would post {day}, before first_trading_day {first_day}.")
        context.log.info(f"The tick of {at} posts the NZ trading day {day}.")
        return RunRequest(
            partition_key=day.isoformat(),
            run_key=f"{name}:{day.isoformat()}",
            # the partition tag as Dagster would resolve it, so the request needs no repository to resolve it
            tags={PARTITION_NAME_TAG: day.isoformat(), POSTS_DAY_TAG: day.isoformat(), TICK_TAG: at},
        )

    return process_daily


# -- the code location ------------------------------------------------------------------------------------

def job_description(process: Process, settings: SiteSettings) -> str:
    what = (f"{mode_words(settings)}, as {settings.eretailer.status}" if process.name == ERETAILER.name
            else f"as {getattr(process_settings(settings, process.name), 'status', 'POSTED journals')}")
    return (f"{process.title} from CI to Xero for the chosen NZ trading days: to {organisation(settings)}, {what} (the "
            "asset site_settings shows every setting). Launched from this job's page a run carries the job's name and "
            "tags; launched from the asset graph, a group or an asset's page Dagster runs it as __ASSET_JOB (the same "
            "assets and failure report).")


def build_definitions(path: str | Path | None = None) -> Definitions:
    path = Path(path).resolve() if path else settings_file()
    try:
        settings = load_settings(path)
    except SettingsError as error:
        return broken_site_definitions(path, error)
    partitions = trading_days(settings)
    processes = enabled_processes(settings)
    process_assets = [a for p in processes for a in build_process_assets(p, partitions, xero_pool=xero_pool_name(settings))]
    process_jobs = {p.name: define_asset_job(
        process_job_name(p.name),
        selection=AssetSelection.groups(p.group),
        description=job_description(p, settings),
        tags={
            # the machine a run started on, so a later `ci-xero run` can tell whether its process died
            "ci-xero/host": socket.gethostname(),
            SITE_TAG: settings.site_name,
        },
    ) for p in processes}
    eretailer_job = process_jobs[ERETAILER.name]
    schedules: list[ScheduleDefinition] = [build_process_schedule(job, settings, name) for name, job in process_jobs.items()]
    if settings.xero.keep_alive_time:
        keep_hour, keep_minute = settings.xero.keep_alive_time.split(":")
        schedules.append(
            ScheduleDefinition(
                name="xero_keep_alive_daily",
                job=xero_keep_alive,
                cron_schedule=f"{int(keep_minute)} {int(keep_hour)} * * *",
                execution_timezone=NZ_TIMEZONE,
                default_status=DefaultScheduleStatus.RUNNING,
                description=f"Refreshes the Xero connection daily at {settings.xero.keep_alive_time} NZ time.",
            )
        )
    jobs = [*process_jobs.values(), eretailer_plan, xero_keep_alive]
    job_names = [job.name for job in jobs]
    # alerts (site.yaml `alerts:`): a failed run of any job, money left in quarantine, the connection's state
    alerter = alerter_for(settings)
    sensor_defs = [
        build_eretailer_change_sensor(eretailer_job, settings.eretailer.sensor_interval_seconds),
        *[build_change_sensor(job, process_settings(settings, name).sensor_interval_seconds, name, *CHANGES[name])
          for name, job in process_jobs.items() if name in CHANGES],
        *[build_allocation_retry_sensor(job, settings.receivables.sensor_interval_seconds)
          for name, job in process_jobs.items() if name == RECEIVABLES.name],
        build_connection_expiry_sensor(settings.xero.refresh_warning_days, alerter),
        build_failed_posting_sensor(settings.site_name, job_names, settings.data_path / "reports", alerter),
    ]
    if alerter is not None:
        sensor_defs.append(build_quarantine_sensor(alerter, settings.site_name, job_names))
    return Definitions(
        assets=[*process_assets, *site_asset_specs(settings, path, settings.xero.refresh_warning_days)],
        jobs=jobs,
        schedules=schedules,
        sensors=sensor_defs,
        resources={
            "site": SiteResource(settings_file=str(path)),
            "ci": CISourceResource(
                database_url=settings.ci_database_url_template,
                view_names=dict(settings.ci_names.views),
                column_names={view: dict(columns) for view, columns in settings.ci_names.columns.items()},
            ),
            "xero": XeroResource.from_settings(settings),
            "daily_io_manager": DailyFrameIOManager(base_dir=str(settings.data_path / "assets")),
        },
    )
