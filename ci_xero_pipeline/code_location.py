"""Builds the Dagster code location (assets, checks, jobs, schedules, sensors) from a settings file."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from dagster import (
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)

from .alerts import alerter_for
from .assets.eretailer import GROUP as ERETAILER_GROUP
from .assets.eretailer import build_eretailer_assets
from .io_manager import DailyFrameIOManager
from .planning import eretailer_plan
from .resources import CISourceResource, SiteResource, XeroResource
from .sensors import (
    build_connection_expiry_sensor,
    build_eretailer_change_sensor,
    build_failed_posting_sensor,
    build_quarantine_sensor,
    xero_keep_alive,
)
from .settings import NZ_TIMEZONE, SiteSettings, load_settings, settings_file


def trading_days(settings: SiteSettings) -> DailyPartitionsDefinition:
    """One partition per NZ trading day; the newest is yesterday (today is still trading)."""
    return DailyPartitionsDefinition(
        start_date=settings.first_trading_day.isoformat(), timezone=NZ_TIMEZONE
    )


def xero_pool_name(settings: SiteSettings) -> str:
    """The Dagster concurrency pool of the site's Xero organisation (limit 1: see dagster.yaml)."""
    organisation = settings.xero.tenant_id or settings.xero.tenant_name or settings.site_name
    return "xero-" + re.sub(r"[^A-Za-z0-9_-]+", "-", organisation).strip("-").lower()


def build_definitions(path: str | Path | None = None) -> Definitions:
    path = Path(path).resolve() if path else settings_file()
    settings = load_settings(path)
    partitions = trading_days(settings)
    eretailer_assets = build_eretailer_assets(partitions, xero_pool=xero_pool_name(settings))

    eretailer_job = define_asset_job(
        "eretailer_to_xero",
        selection=AssetSelection.groups(ERETAILER_GROUP),
        description="E-Retailer invoices from CI to Xero for the chosen NZ trading days.",
        # the machine a run started on, so a later `ci-xero run` can tell whether its process died
        tags={"ci-xero/host": socket.gethostname()},
    )
    hour, minute = settings.eretailer.schedule_hour_minute
    eretailer_schedule = build_schedule_from_partitioned_job(
        eretailer_job,
        name="eretailer_daily",
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"Posts yesterday's E-Retailer invoices at {settings.eretailer.schedule_time} NZ time.",
    )
    schedules = [eretailer_schedule]
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
    # alerts (site.yaml `alerts:`): a failed run of any job, money left in quarantine, the connection's state
    alerter = alerter_for(settings)
    sensor_defs = [
        build_eretailer_change_sensor(eretailer_job, settings.eretailer.sensor_interval_seconds),
        build_connection_expiry_sensor(settings.xero.refresh_warning_days, alerter),
        build_failed_posting_sensor(None, settings.data_path / "reports", alerter),
    ]
    if alerter is not None:
        sensor_defs.append(build_quarantine_sensor(alerter))
    return Definitions(
        assets=eretailer_assets,
        jobs=[eretailer_job, eretailer_plan, xero_keep_alive],
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

