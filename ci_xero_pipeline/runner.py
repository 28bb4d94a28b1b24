"""Running the pipeline outside the UI: a range of trading days as one Dagster run, and its results."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from .code_location import build_definitions
from .io_manager import DailyFrameIOManager
from .settings import NZ_TIMEZONE, SiteSettings, load_settings

JOB_NAME = "eretailer_to_xero"


def nz_yesterday() -> date:
    return datetime.now(ZoneInfo(NZ_TIMEZONE)).date() - timedelta(days=1)


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def dagster_instance(settings: SiteSettings, prefer_dagster_home: bool = True) -> DagsterInstance:
    """The instance in DAGSTER_HOME (what `dagster dev` shows), else one in the site's data folder."""
    if prefer_dagster_home and os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    home = settings.data_path / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.from_config(str(home))


@dataclass(frozen=True)
class RangeRun:
    success: bool
    run_id: str
    results: pd.DataFrame  # the posted_eretailer rows of the range
    failed_checks: list[str]


def stored_asset_days(settings: SiteSettings, asset_name: str, first: date, last: date):
    return DailyFrameIOManager(base_dir=str(settings.data_path / "assets")).read_days(
        [asset_name], days_between(first, last)
    )


def run_days(
    settings_path: str | Path, first: date, last: date, instance: DagsterInstance, log_level: str = "WARNING"
) -> RangeRun:
    """Materialise the E-Retailer assets for first..last as ONE run (documents batched across days).
    Every event still reaches the instance (the UI shows it); log_level only sets what the console prints."""
    job = build_definitions(settings_path).resolve_job_def(JOB_NAME)
    outcome = job.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        tags={ASSET_PARTITION_RANGE_START_TAG: first.isoformat(), ASSET_PARTITION_RANGE_END_TAG: last.isoformat()},
        raise_on_error=False,
    )
    failed_checks = [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in outcome.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    results = pd.DataFrame()
    posted = [e for e in outcome.all_events if e.is_successful_output and e.step_key == "posted_eretailer"]
    if posted:  # the step answered (a blocking check may still have failed it afterwards)
        results = stored_asset_days(load_settings(settings_path), "posted_eretailer", first, last)
    return RangeRun(outcome.success, outcome.run_id, results, failed_checks)
