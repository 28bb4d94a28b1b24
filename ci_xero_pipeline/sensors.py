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

The run-failure report and the quarantine notice watch every run of the site, however it was started: the
job `eretailer_to_xero` (its page in the UI, the schedule, the change sensor), the implicit asset job
`__ASSET_JOB` that Dagster uses for what is launched from the asset graph, the group or an asset's page
(a backfill included), and `ci-xero run` (runs made in the command's own process, which Dagster's own
run-status sensors skip because they carry no code location). Each failed run gets its summary in its
tags (ci-xero/failure, ci-xero/fix, ci-xero/failure-report: shown on the run's page and in the runs
list), an observation of the site asset `failed_runs`, a line in the sensor's tick log and the JSON report.
"""

import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterInvariantViolationError,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    JsonMetadataValue,
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
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARENT_RUN_ID_TAG,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
    SCHEDULE_NAME_TAG,
    SENSOR_NAME_TAG,
)

from .alerts import Alerter, connection_notice, failure_notice, quarantine_left, quarantine_notice
from .assets.site import connection_observation, failed_run_observation
from .ci.extract import changed_documents_since
from .resources import CISourceResource, XeroResource
from .settings import NZ_TIMEZONE
from .xero.health import connection_health
from .xero.ledger import LEDGER, PostingLedger
from .xero.posting import _base_number
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
SITE_TAG = "ci-xero/site"  # on every run of the site's jobs: which site it is for
FAILURE_TAG = "ci-xero/failure"  # added to a failed run by report_failed_posting: its headline
FIX_TAG = "ci-xero/fix"  # ... the fix
REPORT_TAG = "ci-xero/failure-report"  # ... where the JSON report is
TAG_VALUE_LIMIT = 300  # a tag is a one-line summary; the report and the step failure have the rest


def posting_job_names(job_name: str) -> list[str]:
    """The jobs whose runs post the site's days: its own job, and the implicit asset job Dagster runs
    launches from the asset graph, a group or an asset's page under."""
    return [job_name, IMPLICIT_ASSET_JOB_NAME]


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
        for name in posting_job_names(job_name):
            latest = instance.get_run_records(
                RunsFilter(job_name=name, statuses=[DagsterRunStatus.SUCCESS], tags={PARTITION_NAME_TAG: day}), limit=1
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


def retries_due(instance: DagsterInstance, job_name: str, now: float,
                sensor_name: str = CHANGE_SENSOR_NAME) -> tuple[list[RunRequest], list[str]]:
    """Run requests for changes whose last run (asked for by this sensor) failed; and what was given up."""
    failed = instance.get_run_records(
        RunsFilter(
            job_name=job_name, statuses=[DagsterRunStatus.FAILURE], tags={SENSOR_NAME_TAG: sensor_name},
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
    running = [
        record
        for name in posting_job_names(job_name)  # a backfill launched from the asset graph runs as __ASSET_JOB
        for record in instance.get_run_records(
            RunsFilter(job_name=name, statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]), limit=100
        )
    ]
    starts = [s for s in (_started(r) for r in running) if s >= now - RUNNING_PIN_LIMIT_SECONDS]
    return min([now, *starts])


def build_eretailer_change_sensor(job: JobDefinition, interval_seconds: int):
    return build_change_sensor(job, interval_seconds, "eretailer", "ERETAILER", "E-Retailer")


def build_change_sensor(job: JobDefinition, interval_seconds: int, process: str, source: Any, words: str,
                        read_changes: Callable[..., pd.DataFrame] | None = None):
    """A process's sensor: re-runs a posted day when CI's documents of the process's source (E-Retailer: the
    web store's; takings: the tills'; cost of goods sold: every source's) are added, edited or voided after
    the day was posted. `read_changes(engine, since, names)` reads another view's changes (the payables
    sensor: goods receipts); it returns business_date and updated_at as changed_documents_since does."""

    sensor_name = CHANGE_SENSOR_NAME if process == "eretailer" else f"{process}_changes_after_posting"

    @sensor(
        name=sensor_name,
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Re-runs a posted day when CI {words} documents of that day are added, edited "
        "or voided after it was posted (posted: the posting ledger says so), and runs it again when such "
        "a run failed.",
    )
    def changes_after_posting(context: SensorEvaluationContext, ci: CISourceResource, xero: XeroResource):
        now = clock()  # when CI is read: the reference of the next read
        cursor = ChangeCursor.parse(context.cursor)
        try:
            connection = xero.token_store().load()
        except TokenStoreError as error:
            return SkipReason(f"The stored Xero connection cannot be read, so the posted days are unknown: {error}")
        if connection is None:
            return SkipReason("The site is not connected to Xero (`ci-xero connect`): no day is posted yet.")
        ledger = xero.ledger(connection.tenant_id, process=process)
        instance = context.instance

        since = None if cursor.read_at is None else float(cursor.read_at) - CHANGE_OVERLAP_SECONDS
        start = wall_time_window_start(since) if since is not None else None
        changes = (read_changes(ci.engine(), start, names=ci.names()) if read_changes is not None
                   else changed_documents_since(ci.engine(), start, source=source, names=ci.names()))
        posted = set(ledger.posted_partitions())
        changed_posted = sorted({str(day) for day in changes["business_date"].unique()} & posted) if not changes.empty else []
        references = posting_references(instance, ledger, changed_posted, job.name) if changed_posted else {}
        stale = days_changed_after_posting(changes, references)

        requested = dict(cursor.requested)
        requests: list[RunRequest] = []
        for day, changed in sorted(stale.items()):
            key = f"{process}-changed:{day}:{_utc(changed)}:after:{_utc(references[day])}"
            if key not in requested and not _has_run(instance, key):
                requests.append(RunRequest(partition_key=day, run_key=key, tags={CHANGE_TAG: key}))
                context.log.info(f"{day}: CI changed it at {nz_wall(changed)} NZ, after it was posted; run requested.")
            requested[key] = changed
        retries, given_up = retries_due(instance, job.name, now, sensor_name)
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
        what = f"no {words} document changed in CI" if changes.empty else (
            f"{len(changes)} {words} document change(s) in CI, none after its day was posted")
        return SensorResult(skip_reason=SkipReason(f"Since {nz_wall(since) if since else 'the start'} NZ: {what}."),
                            cursor=new_cursor)

    return changes_after_posting


UNREADABLE = "unreadable"  # the expiry sensor's state when the stored connection cannot be read


def instance_of(context) -> DagsterInstance | None:
    """The sensor's instance; None for a context built without one (a sensor called by hand)."""
    try:
        return context.instance
    except DagsterInvariantViolationError:
        return None


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
        f"token dies within {warn_days} days unless something refreshes it (any posting run or the keep-alive). "
        "Each tick records the connection's health on the asset xero_connection (group site)." + told,
    )
    def xero_connection_expiry(context: SensorEvaluationContext, xero: XeroResource):
        details: dict = {}
        try:
            connection = xero.token_store().load()
        except TokenStoreError as error:
            healthy, state = False, UNREADABLE
            headline = f"RECONNECT NEEDED? The stored Xero connection cannot be read: {error}"
            details = {"state": UNREADABLE}
            context.log.error(headline)
        else:
            healthy, headline, details = connection_health(connection, warn_days)
            state = details["state"]
            (context.log.info if healthy else context.log.warning)(headline)
        instance = instance_of(context)
        if instance is not None:
            instance.report_runless_asset_event(connection_observation(healthy, headline, details))
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


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[`'\"])")


def first_sentence(text: str | None) -> str:
    """The headline of a failure description: its first sentence, on one line."""
    flat = " ".join(str(text or "").split())
    return _SENTENCE_END.split(flat, maxsplit=1)[0] if flat else ""


def _is_more_row(document: dict) -> bool:
    return any(str(value).startswith("…") for value in document.values() if value is not None)


def fixes_of(documents: list[dict], description: str | None) -> list[str]:
    """What to change, most common first: the `fix` of each failed document, else the description's "Fix:"."""
    counted = Counter(str(d["fix"]).strip() for d in documents if d.get("fix") and not _is_more_row(d))
    if counted:
        return [fix for fix, _count in counted.most_common()]
    flat = " ".join(str(description or "").split())
    at = flat.find("Fix:")
    return [first_sentence(flat[at:])] if at >= 0 else []


def _run_days(tags: dict) -> list[str]:
    if tags.get(PARTITION_NAME_TAG):
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end or start)
    except (TypeError, ValueError):
        return [start] if start else []
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def started_by(run: DagsterRun) -> str:
    """How the run was started, in the words of the place a person started it from."""
    from .runner import HOST_TAG, PID_TAG  # the runner imports the code location, which imports this module

    tags = run.tags
    if tags.get(BACKFILL_ID_TAG):
        return f"backfill {tags[BACKFILL_ID_TAG]}" + (" (launched from the asset graph)" if run.job_name.startswith(
            IMPLICIT_ASSET_JOB_NAME) else "")
    if tags.get(SCHEDULE_NAME_TAG):
        return f"schedule {tags[SCHEDULE_NAME_TAG]}"
    if tags.get(SENSOR_NAME_TAG):
        return f"sensor {tags[SENSOR_NAME_TAG]}"
    if tags.get(PID_TAG):
        return f"`ci-xero run` (process {tags[PID_TAG]} on {tags.get(HOST_TAG, 'this machine')})"
    if tags.get(PARENT_RUN_ID_TAG):
        return f"a re-execution of run {tags[PARENT_RUN_ID_TAG]}"
    if run.remote_job_origin is not None:
        return "the Dagster UI"
    return "a Python process (execute_in_process)"


def _short(text: str) -> str:
    return text if len(text) <= TAG_VALUE_LIMIT else text[: TAG_VALUE_LIMIT - 1] + "…"


def _step_failure(event) -> dict:
    """One failed step: why (the whole description; its first sentence is the headline), the fixes, the days
    and the documents of its failed_documents table (the posting assets put them there)."""
    failure = event.step_failure_data
    user = failure.user_failure_data
    metadata = user.metadata if user is not None else {}
    documents = [dict(record.data) for record in metadata["failed_documents"].value.records] if "failed_documents" in metadata else []
    failed_days = [str(day) for day in metadata["failed_days"].value or []] if "failed_days" in metadata else []
    reason = (user.description if user is not None else None) or (failure.error.message.strip() if failure.error else "")
    # the rest the posting assets attach (every CI key per document, the settings to check), in full
    details = {key: value.value for key, value in metadata.items() if isinstance(value, JsonMetadataValue)}
    return {
        "step": event.step_key,
        "headline": first_sentence(reason),
        "fixes": fixes_of(documents, reason),
        "reason": reason,
        "failed_days": failed_days or sorted({str(d["business_date"]) for d in documents
                                              if d.get("business_date") and not _is_more_row(d)}),
        "documents": documents,
        "details": details,
    }


def step_failures(instance: DagsterInstance, run_id: str) -> list[dict]:
    """Each failed step of a run, read from the instance (`ci-xero run` prints their headlines and fixes)."""
    return [_step_failure(entry.dagster_event) for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)]


def failure_report(context: RunFailureSensorContext) -> dict:
    """What a person needs from a failed run: how it was started, which step failed and why (the headline:
    Xero's reason, the CI code, the setting), the fix, and each document left out with its CI rows."""
    run = context.dagster_run
    steps = [_step_failure(event) for event in context.get_step_failure_events()]
    message = context.failure_event.message if context.failure_event else None
    fixes = [fix for step in steps for fix in step["fixes"]]
    if len(steps) == 1:
        headline = steps[0]["headline"]
    else:  # several steps failed (or none: the run failed around them): each says its own
        headline = "; ".join(f"{step['step']}: {step['headline']}" for step in steps if step["headline"])
    headline = headline or first_sentence(message) or f"Run {run.run_id} failed."
    more = f" (and {len(fixes) - 1} other fix(es): see the documents)" if len(fixes) > 1 else ""
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "started_by": started_by(run),
        "days": _run_days(run.tags),
        "failed_days": sorted({day for step in steps for day in step["failed_days"]}),
        "headline": headline,
        "fix": fixes[0] + more if fixes else None,
        "fixes": fixes,
        "settings_to_check": sorted({str(setting) for step in steps
                                     for setting in step["details"].get("settings_to_check") or []}),
        "message": message,
        "partition_range": [run.tags.get(ASSET_PARTITION_RANGE_START_TAG) or run.tags.get(PARTITION_NAME_TAG),
                            run.tags.get(ASSET_PARTITION_RANGE_END_TAG) or run.tags.get(PARTITION_NAME_TAG)],
        "steps": steps,
    }


def is_site_run(run: DagsterRun, site_name: str, job_names: list[str]) -> bool:
    """A run of this site: tagged with it, or (untagged: launched from the asset graph) one of its jobs.
    One Dagster instance serves one site (runner.py), so an untagged __ASSET_JOB run is the site's own."""
    site = run.tags.get(SITE_TAG)
    if site is not None:
        return site == site_name
    return run.job_name in job_names or run.job_name.startswith(IMPLICIT_ASSET_JOB_NAME)


def fix_sentence(fix: str) -> str:
    fix = fix.strip()
    return (fix if fix.lower().startswith("fix") else f"Fix: {fix}") + ("" if fix.endswith(".") else ".")


def summary_line(report: dict) -> str:
    """The failure in the sensor's tick log: the run, how it was started, the headline and the fix."""
    left_out = sum(len([d for d in step["documents"] if not _is_more_row(d)]) for step in report["steps"])
    days = report["days"]
    return (f"Run {report['run_id']} of {report['job']}"
            + (f" for {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else "") if days else "")
            + f" (started by {report['started_by']}) failed: {report['headline']}"
            + (f" {fix_sentence(report['fix'])}" if report.get("fix") and report["fix"] not in report["headline"] else "")
            + (f" ({left_out} document(s) not in Xero" if left_out else " (")
            + (f"; report: {report['report_file']})" if report.get("report_file") else ")"))


def show_failure_in_the_ui(instance: DagsterInstance, report: dict) -> None:
    """The summary on the failed run's page (its tags) and on the site asset failed_runs."""
    tags = {FAILURE_TAG: _short(report["headline"])}
    if report.get("fix"):
        tags[FIX_TAG] = _short(report["fix"])
    if report.get("report_file"):
        tags[REPORT_TAG] = report["report_file"]
    instance.add_run_tags(report["run_id"], tags)
    instance.report_runless_asset_event(failed_run_observation(report))


def build_failed_posting_sensor(site_name: str, job_names: list[str], report_dir: Path, alerter: Alerter | None = None):
    """Watches every run of the site (see the module's docstring), whichever job and however started."""
    told = (f" With alerts on, the same summary is sent ({alerter.describe()}): the e-mail by Dagster's "
            "run-failure e-mail sensor.") if alerter else ""
    @run_failure_sensor(
        monitor_all_code_locations=True,  # runs of `ci-xero run` have no code location: see is_site_run
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports every failed run of the site, however it was started (the UI, a backfill, the "
        "schedule, a sensor, `ci-xero run`): the headline (Xero's reason, the CI code and the setting) and the fix "
        "on the run's tags and on the asset failed_runs, a summary in this sensor's log, and a JSON report with "
        "every document left out of Xero and where its CI rows are." + told,
    )
    def report_failed_posting(context: RunFailureSensorContext):
        if not is_site_run(context.dagster_run, site_name, job_names):
            context.log.info(f"Run {context.dagster_run.run_id} of {context.dagster_run.job_name} is not this site's.")
            return
        report = failure_report(context)
        path = report_dir / f"failed-run-{report['run_id']}.json"
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2, default=str))
            report["report_file"] = str(path)
        except OSError as error:  # the notice still goes: the report is not on this disk alone
            context.log.error(f"The failure report could not be written to {path}: {error}")
        show_failure_in_the_ui(context.instance, report)
        if alerter is None:
            context.log.error(summary_line(report))
            return
        held = quarantine_left(context.instance, report["run_id"])
        notice = failure_notice(report, alerter.site_name, held or None, alerter.run_link(report["run_id"]))
        alerter.send(notice, context.log, failure_context=context)  # the summary goes into the log too

    return report_failed_posting


def build_quarantine_sensor(alerter: Alerter, site_name: str, job_names: list[str]):
    """Tells the site when a run that succeeded left money in quarantine (its no_quarantined_rows checks
    failed: the day's other documents went to Xero, these did not). Every run of the site, as above."""
    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="tell_money_left_in_quarantine",
        monitor_all_code_locations=True,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"After a successful run whose no_quarantined_rows check failed, tells the site "
        f"({alerter.describe()}) how many documents and how much money are held back from Xero.",
    )
    def tell_money_left_in_quarantine(context: RunStatusSensorContext):
        run = context.dagster_run
        if not is_site_run(run, site_name, job_names):
            return
        held = quarantine_left(context.instance, run.run_id)
        if not held:
            context.log.info(f"Run {run.run_id} left nothing in quarantine.")
            return
        alerter.send(quarantine_notice(run, held, alerter.site_name, alerter.run_link(run.run_id)), context.log)

    return tell_money_left_in_quarantine


# -- credits waiting for the invoice they reverse ------------------------------------------------------------
ALLOCATION_SENSOR_NAME = "receivables_allocations_waiting"
ALLOCATION_TAG = "ci-xero/allocation"


def credits_with_originals(engine: sa.Engine, names: Any = None) -> pd.DataFrame:
    """CI's FINAL credits that name the invoice they reverse: invoice_no, business_date, original_invoice_no."""
    from .ci.tables import build_ci_tables

    invoices = build_ci_tables(names).sales_invoices
    statement = sa.select(invoices.c.invoice_no, invoices.c.business_date, invoices.c.original_invoice_no).where(
        (invoices.c.doc_type == "CREDIT") & (invoices.c.status == "FINAL") & invoices.c.original_invoice_no.is_not(None))
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame([(str(a), str(b)[:10], str(c)) for a, b, c in rows],
                        columns=["invoice_no", "business_date", "original_invoice_no"])


def allocations_to_retry(credits: pd.DataFrame, documents: PostingLedger, allocations: PostingLedger,
                         document_key: Callable[[str], str], allocation_key: Callable[[str], str]) -> list[tuple[str, str, str]]:
    """(credit's day, run key, why) for each credit that is in Xero, whose original invoice is now in Xero
    too, and whose allocation the ledger does not hold as made: the credit's day is run again, once per
    appearance of the original (the key carries the original's Xero id)."""
    if credits.empty:
        return []
    keys = {row.invoice_no: (document_key(row.invoice_no), document_key(row.original_invoice_no), row)
            for row in credits.itertuples(index=False)}
    held = documents.entries(sorted({k for pair in keys.values() for k in pair[:2]}))
    wanted: list[tuple[str, str, str, str]] = []
    for credit, (credit_key, original_key, row) in sorted(keys.items()):
        credit_entry, original_entry = held.get(credit_key), held.get(original_key)
        if not (credit_entry and original_entry and credit_entry.state == original_entry.state == "posted"):
            continue
        # the books key a pair by the documents' base numbers (a revision `-R1` keeps its pair)
        wanted.append((allocation_key(f"{_base_number(credit_entry)}>{_base_number(original_entry)}"), row.business_date,
                       credit, f"{original_entry.xero_id}"))
    made = allocations.entries([key for key, *_rest in wanted])
    return [(day, f"allocation:{credit}:{original_id}", f"credit {credit}: the invoice it reverses is now in Xero")
            for key, day, credit, original_id in wanted if (made.get(key) is None or made[key].state != "posted")]


def build_allocation_retry_sensor(job: JobDefinition, interval_seconds: int, process: str = "receivables"):
    """Runs a credit's day again when the invoice it reverses has since reached Xero (a later day, another
    run), so that the credit is allocated (processes.md §2: an original not in Xero yet is retried later)."""
    from .books.receivables import document_key
    from .xero.allocations import allocation_ledger_key

    @sensor(
        name=ALLOCATION_SENSOR_NAME, job=job, minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.STOPPED,
        description="Runs an account-customer credit's day again when the invoice it reverses has reached Xero "
        "since (posted on a later day or by a later run), so the credit is allocated to it.",
    )
    def allocations_waiting(context: SensorEvaluationContext, ci: CISourceResource, xero: XeroResource):
        try:
            connection = xero.token_store().load()
        except TokenStoreError as error:
            return SkipReason(f"The stored Xero connection cannot be read: {error}")
        if connection is None:
            return SkipReason("The site is not connected to Xero (`ci-xero connect`).")
        due = allocations_to_retry(
            credits_with_originals(ci.engine(), ci.names()), xero.ledger(connection.tenant_id, process=process),
            xero.ledger(connection.tenant_id, process=f"{process}-allocation"), document_key,
            lambda key: allocation_ledger_key(process, key))
        requests = [RunRequest(partition_key=day, run_key=key, tags={ALLOCATION_TAG: key}) for day, key, _why in due]
        for day, key, why in due:
            context.log.info(f"{day}: {why}; run requested ({key}).")
        if not requests:
            return SkipReason("No credit waits for an invoice that has reached Xero since.")
        return SensorResult(run_requests=requests)

    return allocations_waiting
