"""Sensors: E-Retailer documents that changed in CI after their day was posted; a Xero connection
about to expire or refused; a run that left documents out of Xero; money a successful run left in
quarantine. And the optional keep-alive job that refreshes an idle connection.

With `alerts:` on in site.yaml the site is told (alerts.py: e-mail through Dagster's run-failure e-mail
sensor and helpers, a webhook): a failed run with its documents' reasons (the subject says so plainly when
Xero's daily call limit stopped it), money left in quarantine, and each change of the connection's state
(once per change: the expiry sensor keeps the state it last told in its cursor).

The change sensor misses nothing:
- which days are posted comes from the posting ledger (what this site holds in Xero, whichever run put it
  there, even one that failed on another day), not from Dagster's materialisations;
- a day is re-run when CI changed it after the newest run that posted it *started* (a run reads CI after
  it starts, so a change made while it ran is never taken for one it saw);
- the sensor reads CI from a little before the time it last read CI (CHANGE_OVERLAP_SECONDS), so a CI
  transaction stamped before a tick and committed after it is still seen, and never from later than the
  start of a posting run still going; a change seen twice asks for its run once (run keys, kept in the
  cursor and in the run records);
- CI's `updated_at` is NZ wall time: a wall time the DST night shows twice is taken as its later instant,
  one it skips as the instant after the jump, and the window is widened by the repeated hour, so the
  night the clocks go back neither raises nor hides a change;
- a run it asked for that failed is asked for again (MAX_ATTEMPTS in all, further and further apart),
  unless a later run of that day succeeded.
"""

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    OpExecutionContext,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

from .alerts import Alerter, connection_notice, failure_notice, quarantine_left, quarantine_notice
from .ci.extract import changed_documents_since
from .resources import CISourceResource, XeroResource
from .settings import NZ_TIMEZONE
from .xero.health import connection_health
from .xero.ledger import LEDGER, PostingLedger
from .xero.tokens import TokenStoreError

NZ = ZoneInfo(NZ_TIMEZONE)
CHANGE_SENSOR_NAME = "eretailer_changes_after_posting"
# CI stamps a change when its transaction writes it and shows it when the transaction commits: each read
# of CI starts this long before the previous one, and run keys keep a change seen twice to one run
CHANGE_OVERLAP_SECONDS = 15 * 60
CHANGE_TAG = "ci-xero/change"  # on every run the sensor asks for: the change it is for (its first run key)
MAX_ATTEMPTS = 4  # runs asked for one change, the first included
RETRY_AFTER_SECONDS = 5 * 60  # after the 1st failure; then 10, 20 minutes (a Xero outage has time to pass)
RETRY_LOOKBACK_SECONDS = 7 * 86_400
# a posting run shown running longer than this (dead, before run monitoring failed it) stops holding back
# the window the sensor reads
RUNNING_PIN_LIMIT_SECONDS = 86_400
clock = time.time  # the sensor's "now" (tests move it to the DST night)


def nz_instant(value) -> float:
    """Epoch seconds of a CI `updated_at` (NZ wall time without a zone; a zoned value is taken as it is).

    DST-safe and never earlier than the change: a wall time the clocks show twice (02:00–02:59 on the first
    Sunday of April) is its later instant, one they skip (02:00–02:59 on the last Sunday of September) the
    instant the clock shows it after the jump."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        return float(stamp.timestamp())
    wall = stamp.to_pydatetime(warn=False)
    return max(wall.replace(tzinfo=NZ, fold=0).timestamp(), wall.replace(tzinfo=NZ, fold=1).timestamp())


def nz_wall(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, NZ).replace(tzinfo=None)


def wall_time_window_start(since: float) -> datetime:
    """The earliest NZ wall time a change made at or after `since` can be stamped with: the wall time at
    `since`, an hour less when the clocks go back within the hour after it (the repeated hour)."""
    return min(nz_wall(since), nz_wall(since + 3600) - timedelta(hours=1))


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ChangeCursor:
    """The change sensor's cursor: when it last read CI, and the run keys it asked for that a later read
    may see again (key → the change's instant, forgotten once older than any read can reach)."""

    read_at: float | None = None
    requested: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "ChangeCursor":
        if not text:
            return cls()
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if isinstance(values, dict):
            return cls(values.get("read_at"), {str(k): float(v) for k, v in (values.get("requested") or {}).items()})
        try:  # an earlier version's cursor: the newest updated_at it had seen, NZ wall time
            return cls(nz_instant(text))
        except (ValueError, TypeError):
            return cls()

    def dumps(self) -> str:
        return json.dumps({"read_at": self.read_at, "requested": self.requested}, sort_keys=True)


def days_changed_after_posting(changes: pd.DataFrame, posted_since: dict[str, float]) -> dict[str, float]:
    """Days whose newest CI change (an instant, DST-safe) is later than that day's reference: when the
    newest run that posted the day started. Days not in `posted_since` were never posted: the schedule or a
    backfill will take them."""
    stale: dict[str, float] = {}
    if changes.empty:
        return stale
    instants = changes.assign(_instant=[nz_instant(value) for value in changes["updated_at"]])
    newest = instants.groupby("business_date")["_instant"].max()
    for day, changed in newest.items():
        day = str(day)
        if day in posted_since and changed > posted_since[day]:
            stale[day] = float(changed)
    return stale


def _started(record) -> float:
    return float(record.start_time or record.create_timestamp.timestamp())


def _ledger_runs(ledger: PostingLedger, days: list[str]) -> list[tuple[str, str | None, float]]:
    """(day, run id, when that run last wrote a row of the day) for the ledger rows of the days."""
    with ledger.engine.connect() as connection:
        rows = connection.execute(
            sa.select(LEDGER.c.partition_key, LEDGER.c.run_id, sa.func.max(LEDGER.c.updated_at))
            .where((LEDGER.c.site == ledger.site) & (LEDGER.c.tenant_id == ledger.tenant_id)
                   & LEDGER.c.partition_key.in_(days))
            .group_by(LEDGER.c.partition_key, LEDGER.c.run_id)
        )
        return [(str(day), run_id, float(updated)) for day, run_id, updated in rows]


def posting_references(
    instance: DagsterInstance, ledger: PostingLedger, days: list[str], job_name: str
) -> dict[str, float]:
    """Per day, when the newest run that posted it started (it read CI after that, never before): the runs
    of the day's ledger rows, and the newest successful run of the day. A run this instance does not hold
    counts from the time it wrote the day's rows, less the overlap."""
    rows = _ledger_runs(ledger, days)
    run_ids = sorted({run_id for _day, run_id, _when in rows if run_id})
    starts = {r.dagster_run.run_id: _started(r) for r in instance.get_run_records(RunsFilter(run_ids=run_ids))} if run_ids else {}
    reference: dict[str, float] = {}
    for day, run_id, written in rows:
        when = starts.get(run_id or "", written - CHANGE_OVERLAP_SECONDS)
        reference[day] = max(reference.get(day, -math.inf), when)
    for day in days:
        latest = instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.SUCCESS], tags={PARTITION_NAME_TAG: day}), limit=1
        )
        if latest:
            reference[day] = max(reference.get(day, -math.inf), _started(latest[0]))
    return reference


def _has_run(instance: DagsterInstance, run_key: str) -> bool:
    return instance.get_runs_count(RunsFilter(tags={SENSOR_NAME_TAG: CHANGE_SENSOR_NAME, RUN_KEY_TAG: run_key})) > 0


def _attempts(instance: DagsterInstance, job_name: str, change: str) -> list:
    records = {}
    for tags in ({CHANGE_TAG: change}, {RUN_KEY_TAG: change}):
        for record in instance.get_run_records(RunsFilter(job_name=job_name, tags=tags), limit=100):
            records[record.dagster_run.run_id] = record
    return list(records.values())


def retries_due(instance: DagsterInstance, job_name: str, now: float) -> tuple[list[RunRequest], list[str]]:
    """Run requests for changes whose last run (asked for by this sensor) failed; and what was given up."""
    failed = instance.get_run_records(
        RunsFilter(
            job_name=job_name, statuses=[DagsterRunStatus.FAILURE], tags={SENSOR_NAME_TAG: CHANGE_SENSOR_NAME},
            updated_after=datetime.fromtimestamp(now - RETRY_LOOKBACK_SECONDS, timezone.utc),
        ),
        limit=200,
    )
    requests: list[RunRequest] = []
    given_up: list[str] = []
    seen: set[str] = set()
    for record in failed:
        tags = record.dagster_run.tags
        change, day = tags.get(CHANGE_TAG) or tags.get(RUN_KEY_TAG), tags.get(PARTITION_NAME_TAG)
        if not change or not day or change in seen:
            continue
        seen.add(change)
        attempts = _attempts(instance, job_name, change)
        if any(a.dagster_run.status not in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED) for a in attempts):
            continue  # one succeeded, or one is on its way
        newest_attempt = max(attempts, key=lambda a: a.create_timestamp)
        later_success = instance.get_run_records(
            RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.SUCCESS], tags={PARTITION_NAME_TAG: day},
                       created_after=newest_attempt.create_timestamp),
            limit=1,
        )
        if later_success:
            continue  # the day was posted since (by the schedule, a person or another change)
        if len(attempts) >= MAX_ATTEMPTS:
            given_up.append(f"{day} ({change}: {len(attempts)} runs failed, the last {newest_attempt.dagster_run.run_id})")
            continue
        ended = max(float(a.end_time or _started(a)) for a in attempts)
        if now < ended + RETRY_AFTER_SECONDS * 2 ** (len(attempts) - 1):
            continue
        key = f"{change}#attempt{len(attempts) + 1}"
        if _has_run(instance, key):
            continue
        requests.append(RunRequest(partition_key=day, run_key=key, tags={CHANGE_TAG: change}))
    return requests, given_up


def _window_pin(instance: DagsterInstance, job_name: str, now: float) -> float:
    """The next read's reference: now, or the start of a posting run still going (it read CI before the
    changes since, and the days it posts are not in the ledger yet)."""
    running = instance.get_run_records(
        RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]), limit=100
    )
    starts = [s for s in (_started(r) for r in running) if s >= now - RUNNING_PIN_LIMIT_SECONDS]
    return min([now, *starts])


def build_eretailer_change_sensor(job: JobDefinition, interval_seconds: int):
    @sensor(
        name=CHANGE_SENSOR_NAME,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="Re-runs a posted day when CI E-Retailer documents of that day are added, edited "
        "or voided after it was posted (posted: the posting ledger says so), and runs it again when such "
        "a run failed.",
    )
    def eretailer_changes_after_posting(context: SensorEvaluationContext, ci: CISourceResource, xero: XeroResource):
        now = clock()  # when CI is read: the reference of the next read
        cursor = ChangeCursor.parse(context.cursor)
        try:
            connection = xero.token_store().load()
        except TokenStoreError as error:
            return SkipReason(f"The stored Xero connection cannot be read, so the posted days are unknown: {error}")
        if connection is None:
            return SkipReason("The site is not connected to Xero (`ci-xero connect`): no day is posted yet.")
        ledger = xero.ledger(connection.tenant_id)
        instance = context.instance

        since = None if cursor.read_at is None else float(cursor.read_at) - CHANGE_OVERLAP_SECONDS
        changes = changed_documents_since(
            ci.engine(), wall_time_window_start(since) if since is not None else None, source="ERETAILER", names=ci.names()
        )
        posted = set(ledger.posted_partitions())
        changed_posted = sorted({str(day) for day in changes["business_date"].unique()} & posted) if not changes.empty else []
        references = posting_references(instance, ledger, changed_posted, job.name) if changed_posted else {}
        stale = days_changed_after_posting(changes, references)

        requested = dict(cursor.requested)
        requests: list[RunRequest] = []
        for day, changed in sorted(stale.items()):
            key = f"eretailer-changed:{day}:{_utc(changed)}:after:{_utc(references[day])}"
            if key not in requested and not _has_run(instance, key):
                requests.append(RunRequest(partition_key=day, run_key=key, tags={CHANGE_TAG: key}))
                context.log.info(f"{day}: CI changed it at {nz_wall(changed)} NZ, after it was posted; run requested.")
            requested[key] = changed
        retries, given_up = retries_due(instance, job.name, now)
        for request in retries:
            if request.run_key not in requested:
                requests.append(request)
                requested[request.run_key] = now
                context.log.warning(f"{request.partition_key}: the run asked for {request.tags[CHANGE_TAG]} failed; "
                                    f"asked again ({request.run_key}).")
        for message in given_up:
            context.log.error(f"Not asked again after {MAX_ATTEMPTS} failed runs: {message}. Look at the failed run, "
                              "fix the cause, then run the day again.")

        read_at = _window_pin(instance, job.name, now)
        oldest_needed = read_at - CHANGE_OVERLAP_SECONDS - 3600  # the next read's earliest instant, DST hour included
        kept = {key: when for key, when in requested.items() if when >= oldest_needed}
        new_cursor = ChangeCursor(read_at, kept).dumps()
        if requests:
            return SensorResult(run_requests=requests, cursor=new_cursor)
        what = "no E-Retailer document changed in CI" if changes.empty else (
            f"{len(changes)} E-Retailer document change(s) in CI, none after its day was posted")
        return SensorResult(skip_reason=SkipReason(f"Since {nz_wall(since) if since else 'the start'} NZ: {what}."),
                            cursor=new_cursor)

    return eretailer_changes_after_posting


UNREADABLE = "unreadable"  # the expiry sensor's state when the stored connection cannot be read


def _told_state(cursor: str | None) -> str | None:
    """The connection state the expiry sensor last told the site about (its cursor)."""
    if not cursor:
        return None
    try:
        return json.loads(cursor).get("told")
    except (ValueError, AttributeError):
        return None


def build_connection_expiry_sensor(warn_days: int, alerter: Alerter | None = None):
    told = f" Tells the site ({alerter.describe()}) once each time the state changes." if alerter else ""
    @sensor(
        minimum_interval_seconds=6 * 3600,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Says when the Xero connection does not work (Xero refused it: reconnect) or its refresh "
        f"token dies within {warn_days} days unless something refreshes it (any posting run or the keep-alive)." + told,
    )
    def xero_connection_expiry(context: SensorEvaluationContext, xero: XeroResource):
        details: dict = {}
        try:
            connection = xero.token_store().load()
        except TokenStoreError as error:
            healthy, state = False, UNREADABLE
            headline = f"RECONNECT NEEDED? The stored Xero connection cannot be read: {error}"
            context.log.error(headline)
        else:
            healthy, headline, details = connection_health(connection, warn_days)
            state = details["state"]
            if not healthy:
                context.log.warning(headline)
        if alerter is not None:
            previous = _told_state(context.cursor)
            # once per change of state: a bad state when it starts, and the all-clear after one was told
            if state != previous and (not healthy or previous not in (None, "healthy")):
                alerter.send(connection_notice(state, headline, healthy, alerter.site_name, details), context.log)
            if state != previous:  # only once it was told (a send that failed raises: told next tick)
                context.update_cursor(json.dumps({"told": state}))
        return SkipReason(headline)

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
            "message": context.failure_event.message if context.failure_event else None,
            "partition_range": [context.dagster_run.tags.get("dagster/asset_partition_range_start"),
                                context.dagster_run.tags.get("dagster/asset_partition_range_end")],
            "steps": steps}


def build_failed_posting_sensor(jobs: list | None, report_dir: Path, alerter: Alerter | None = None):
    """`jobs` None: every job of the code location."""
    told = (f" With alerts on, the same summary is sent ({alerter.describe()}): the e-mail by Dagster's "
            "run-failure e-mail sensor.") if alerter else ""
    @run_failure_sensor(
        monitored_jobs=jobs,
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports a failed run: a summary in the sensor's log and a JSON report with "
        "every document left out of Xero and where its CI rows are." + told,
    )
    def report_failed_posting(context: RunFailureSensorContext):
        report = failure_report(context)
        path = report_dir / f"failed-run-{report['run_id']}.json"
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2, default=str))
            report["report_file"] = str(path)
        except OSError as error:  # the notice still goes: the report is not on this disk alone
            context.log.error(f"The failure report could not be written to {path}: {error}")
        left_out = sum(len(step["documents"]) for step in report["steps"])
        if alerter is None:
            context.log.error(
                f"Run {report['run_id']} of {report['job']} failed: "
                + "; ".join(f"{step['step']}: {step['reason']}" for step in report["steps"])
                + (f" ({left_out} document(s) not in Xero; report: {path})" if left_out else f" (report: {path})")
            )
            return
        held = quarantine_left(context.instance, report["run_id"])
        notice = failure_notice(report, alerter.site_name, held or None, alerter.run_link(report["run_id"]))
        alerter.send(notice, context.log, failure_context=context)  # the summary goes into the log too

    return report_failed_posting


def build_quarantine_sensor(alerter: Alerter, jobs: list | None = None):
    """Tells the site when a run that succeeded left money in quarantine (its no_quarantined_rows checks
    failed: the day's other documents went to Xero, these did not)."""
    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="tell_money_left_in_quarantine",
        monitored_jobs=jobs,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"After a successful run whose no_quarantined_rows check failed, tells the site "
        f"({alerter.describe()}) how many documents and how much money are held back from Xero.",
    )
    def tell_money_left_in_quarantine(context: RunStatusSensorContext):
        run = context.dagster_run
        held = quarantine_left(context.instance, run.run_id)
        if not held:
            context.log.info(f"Run {run.run_id} left nothing in quarantine.")
            return
        alerter.send(quarantine_notice(run, held, alerter.site_name, alerter.run_link(run.run_id)), context.log)

    return tell_money_left_in_quarantine
