"""Sensors: E-Retailer documents that changed in CI after their day was posted; a Xero connection
about to expire; a run that left documents out of Xero. And the optional keep-alive job that
refreshes an idle connection."""

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    OpExecutionContext,
    RunFailureSensorContext,
    SkipReason,
    job,
    op,
    run_failure_sensor,
    sensor,
)

from .ci.extract import changed_documents_since
from .resources import CISourceResource, XeroResource
from .xero.health import expiry_warning
from .settings import NZ_TIMEZONE

NZ = ZoneInfo(NZ_TIMEZONE)


def days_changed_after_posting(
    changes: pd.DataFrame, posted_at: dict[str, float]
) -> dict[str, pd.Timestamp]:
    """Days whose newest CI change (NZ local time) is later than that day's posting (epoch seconds)."""
    stale: dict[str, pd.Timestamp] = {}
    if changes.empty:
        return stale
    newest = changes.groupby("business_date")["updated_at"].max()
    for day, updated_at in newest.items():
        if day not in posted_at:
            continue  # never posted: the schedule or a backfill will take it
        changed = pd.Timestamp(updated_at).tz_localize(NZ).timestamp()
        if changed > posted_at[day]:
            stale[str(day)] = pd.Timestamp(updated_at)
    return stale


def build_eretailer_change_sensor(job: JobDefinition, interval_seconds: int):
    posted_key = AssetKey("posted_eretailer")

    @sensor(
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="Re-runs a posted day when CI E-Retailer documents of that day are added, edited "
        "or voided after it was posted.",
    )
    def eretailer_changes_after_posting(context: SensorEvaluationContext, ci: CISourceResource):
        since = datetime.fromisoformat(context.cursor) if context.cursor else None
        changes = changed_documents_since(ci.engine(), since, source="ERETAILER")
        if changes.empty:
            return SkipReason("No E-Retailer document changed in CI since the last look.")
        days = sorted(changes["business_date"].unique())
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=posted_key, asset_partitions=list(days)), limit=10_000
        ).records
        posted_at: dict[str, float] = {}
        for record in records:
            day = record.partition_key
            posted_at[day] = max(posted_at.get(day, 0.0), record.timestamp)
        stale = days_changed_after_posting(changes, posted_at)
        newest = pd.Timestamp(changes["updated_at"].max()).isoformat()
        requests = [
            RunRequest(partition_key=day, run_key=f"eretailer-changed:{day}:{changed.isoformat()}")
            for day, changed in sorted(stale.items())
        ]
        return SensorResult(run_requests=requests, cursor=newest)

    return eretailer_changes_after_posting


def build_connection_expiry_sensor(warn_days: int):
    @sensor(
        minimum_interval_seconds=6 * 3600,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Warns {warn_days} days before the Xero refresh token's 60-day expiry when nothing "
        "has refreshed it (any posting run or the keep-alive does).",
    )
    def xero_connection_expiry(context: SensorEvaluationContext, xero: XeroResource):
        connection = xero.token_store().load()
        if connection is None:
            message = "WARNING: the site is not connected to Xero. Run `ci-xero connect`."
            context.log.warning(message)
            return SkipReason(message)
        warning = expiry_warning(connection, warn_days)
        if warning:
            context.log.warning(warning)
            return SkipReason(f"WARNING: {warning}")
        return SkipReason(f"The Xero connection to {connection.tenant_name!r} is healthy.")

    return xero_connection_expiry


@op(description="Refreshes the Xero tokens once, so an idle connection never reaches its 60-day expiry.")
def refresh_xero_connection(context: OpExecutionContext, xero: XeroResource) -> None:
    keeper = xero.keeper()
    keeper.refresh(force=True)
    context.log.info(f"Refreshed the Xero connection to {keeper.connection.tenant_name!r}.")


@job(description="Keeps the Xero connection alive on days nothing is posted.")
def xero_keep_alive():
    refresh_xero_connection()


def failure_report(context: RunFailureSensorContext) -> dict:
    """What a person needs from a failed run: which step, why, and each document left out with its CI rows."""
    steps = []
    for event in context.get_step_failure_events():
        failure = event.step_failure_data
        user = failure.user_failure_data
        documents = []
        if user is not None and "failed_documents" in user.metadata:
            documents = [record.data for record in user.metadata["failed_documents"].value.records]
        steps.append({
            "step": event.step_key,
            "reason": (user.description if user is not None else None) or failure.error.message.strip(),
            "documents": documents,
        })
    return {"run_id": context.dagster_run.run_id, "job": context.dagster_run.job_name,
            "partition_range": [context.dagster_run.tags.get("dagster/asset_partition_range_start"),
                                context.dagster_run.tags.get("dagster/asset_partition_range_end")],
            "steps": steps}


def build_failed_posting_sensor(jobs: list, report_dir: Path):
    @run_failure_sensor(
        monitored_jobs=jobs,
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports a failed posting run: a summary in the sensor's log and a JSON report with "
        "every document left out of Xero and where its CI rows are.",
    )
    def report_failed_posting(context: RunFailureSensorContext):
        report = failure_report(context)
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / f"failed-run-{report['run_id']}.json"
        path.write_text(json.dumps(report, indent=2, default=str))
        left_out = sum(len(step["documents"]) for step in report["steps"])
        context.log.error(
            f"Run {report['run_id']} of {report['job']} failed: "
            + "; ".join(f"{step['step']}: {step['reason']}" for step in report["steps"])
            + (f" ({left_out} document(s) not in Xero; report: {path})" if left_out else f" (report: {path})")
        )

    return report_failed_posting
