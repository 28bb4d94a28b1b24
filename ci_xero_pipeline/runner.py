"""Running the pipeline outside the UI: a range of trading days as one Dagster run, and its results.

Every way of running uses one Dagster instance per site, the one the UI shows: DAGSTER_HOME when it is
set, else the folder `.dagster_home` beside the site's site.yaml (created with the repository's
dagster.yaml when missing). In that instance the posting step is in the pool `xero-<organisation>`
(limit 1), so two runs never talk to one organisation at once.

A run killed in the middle (SIGKILL, power cut) still holds its pool slot, and Dagster cannot tell on
its own that its process is gone. So before a run starts, and for as long as it waits for the slot,
`run_days` looks at the runs that hold or wait for the slot: a run of this machine whose process is gone
is marked failed through Dagster's own API (`report_run_failed`) and its slots are freed; each such
release, and each wait for a run that is alive, is said in a WARNING naming the run.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.events import DagsterEventType, JobFailureData, RunFailureReason
from dagster._core.storage.dagster_run import DagsterRun, RunRecord
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from .code_location import build_definitions, process_job_name, xero_pool_name
from .io_manager import DailyFrameIOManager
from .settings import NZ_TIMEZONE, SiteSettings, load_settings

JOB_NAME = "eretailer_to_xero"
HOME_FOLDER = ".dagster_home"
REPOSITORY_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
# What a new instance folder gets when the package runs without its repository (an installed wheel);
# the same settings as the repository's dagster.yaml (a test keeps them equal)
FALLBACK_DAGSTER_YAML = """\
# The Dagster instance of a site (written by ci-xero; see the repository's dagster.yaml).
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 10800
  poll_interval_seconds: 60
  free_slots_after_run_end_seconds: 60
"""

# Which process runs a run started by `run_days`, so that a later run can tell a dead one from a live one
PID_TAG = "ci-xero/pid"
HOST_TAG = "ci-xero/host"
PROCESS_START_TAG = "ci-xero/process-start"  # the kernel's start time of that process: a reused pid is not it

ACTIVE_STATUSES = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)
FINISHED_STATUSES = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
WATCH_SECONDS = 1.0  # how often a run looks at the pool while it waits for the slot
REPEAT_WARNING_SECONDS = 60.0

LOG = logging.getLogger(__name__)


def nz_yesterday() -> date:
    return datetime.now(ZoneInfo(NZ_TIMEZONE)).date() - timedelta(days=1)


def days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


# -- the site's instance -------------------------------------------------------------------------------

def repository_dagster_yaml() -> str:
    return REPOSITORY_DAGSTER_YAML.read_text() if REPOSITORY_DAGSTER_YAML.is_file() else FALLBACK_DAGSTER_YAML


def site_dagster_home(settings: SiteSettings) -> Path:
    """The site's instance folder: `.dagster_home` beside its settings file."""
    return Path(settings.base_dir).resolve() / HOME_FOLDER


def dagster_home(settings: SiteSettings, prefer_dagster_home: bool = True) -> Path:
    """DAGSTER_HOME when set (what `dagster dev` shows), else the site's `.dagster_home`."""
    if prefer_dagster_home and os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve()
    return site_dagster_home(settings)


def ensure_dagster_home(home: Path) -> Path:
    """The folder, made with the repository's dagster.yaml when it has none (an existing one is kept)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(repository_dagster_yaml())
    return home


def dagster_instance(settings: SiteSettings, prefer_dagster_home: bool = True) -> DagsterInstance:
    """The site's persistent instance, the one the UI shows (see the module's docstring)."""
    return DagsterInstance.from_config(str(ensure_dagster_home(dagster_home(settings, prefer_dagster_home))))


# -- is a run's process alive? -------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from Linux's /proc; None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ("X", "") if Path("/proc/self/stat").exists() else None
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[0], fields[19]


def process_start_marker(pid: int | None = None) -> str | None:
    stat = _proc_stat(pid or os.getpid())
    return stat[1] if stat and stat[1] else None


def process_alive(pid: int, start_marker: str | None = None) -> bool:
    """Whether process `pid` of this machine is alive and is the one that started at `start_marker`."""
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        if state in ("X", "Z"):  # gone, or a zombie nobody reaped: dead either way
            return False
        return not (start_marker and started != start_marker)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_host() -> str:
    return socket.gethostname()


def process_tags() -> dict[str, str]:
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: this_host()}
    marker = process_start_marker()
    if marker:
        tags[PROCESS_START_TAG] = marker
    return tags


@dataclass(frozen=True)
class RunProcess:
    """A run that holds or waits for a pool slot, and what is known of its process."""

    run_id: str
    status: str
    pid: int | None
    host: str | None
    alive: bool | None  # None: cannot be told from this machine (another host, or no pid known)
    started: float | None

    def describe(self) -> str:
        since = f", started {datetime.fromtimestamp(self.started).astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}" if self.started else ""
        where = f"process {self.pid} on {self.host}" if self.pid and self.host else "process unknown"
        state = {True: "alive", False: "gone", None: "cannot be checked from here"}[self.alive]
        return f"run {self.run_id} ({self.status}{since}; {where}: {state})"


def _run_worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid Dagster's run worker reported ("Started process for run (pid: N)"), the latest one."""
    try:
        events = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    except Exception:  # noqa: BLE001 - an unreadable log only means "unknown"
        return None
    for entry in reversed(events):
        if entry.message.startswith("Started process for run"):
            data = entry.dagster_event.engine_event_data if entry.dagster_event else None
            value = data.metadata.get("pid") if data is not None else None
            text = getattr(value, "value", value)
            if text is not None and str(text).isdigit():
                return int(str(text))
    return None


def run_process(instance: DagsterInstance, record: RunRecord) -> RunProcess:
    run = record.dagster_run
    tags = run.tags
    pid = int(tags[PID_TAG]) if tags.get(PID_TAG, "").isdigit() else None
    host = tags.get(HOST_TAG)
    if pid is None:
        pid = _run_worker_pid(instance, run.run_id)
        if pid is not None and host is None and isinstance(instance.run_storage, SqliteRunStorage):
            host = this_host()  # a SQLite instance lives on one machine: its run workers run here
    if run.status in FINISHED_STATUSES:
        alive: bool | None = False
    elif run.status not in ACTIVE_STATUSES or pid is None or host != this_host():
        alive = None
    else:
        alive = process_alive(pid, tags.get(PROCESS_START_TAG))
    return RunProcess(run.run_id, run.status.value, pid, host, alive, record.start_time)


def release_slots_of_dead_runs(
    instance: DagsterInstance, pool: str, job_name: str | None = JOB_NAME, exclude: str | None = None
) -> list[RunProcess]:
    """Fail the runs whose process is gone (this machine's, holding or waiting for `pool`, or runs of
    `job_name` still shown as running) and free their slots; free the slots finished runs still hold.
    Returns the runs released, each said in a WARNING."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    in_pool = {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(RunsFilter(run_ids=list(in_pool)))} if in_pool else {}
    if job_name:
        for record in instance.get_run_records(RunsFilter(job_name=job_name, statuses=list(ACTIVE_STATUSES)), limit=100):
            records.setdefault(record.dagster_run.run_id, record)
    released: list[RunProcess] = []
    for run_id in sorted(in_pool - set(records) - {exclude}):  # slots of a run the instance no longer has
        storage.free_concurrency_slots_for_run(run_id)
        LOG.warning(f"Freed the slot of pool {pool!r} held by run {run_id}, which this Dagster instance no longer has.")
        released.append(RunProcess(run_id, "UNKNOWN", None, None, False, None))
    for run_id, record in sorted(records.items()):
        if run_id == exclude:
            continue
        process = run_process(instance, record)
        if process.alive is not False:
            continue
        run: DagsterRun = record.dagster_run
        if run.status in FINISHED_STATUSES:
            if run_id not in in_pool:
                continue
            storage.free_concurrency_slots_for_run(run_id)
            LOG.warning(f"Freed the slot of pool {pool!r} that run {run_id} kept after it ended ({process.status}).")
        else:
            message = (
                f"The process of run {run_id} ({process.pid} on {process.host}) is gone (killed, or the machine "
                f"stopped): marked FAILED by ci-xero before run days, and its pool slots freed. Documents it "
                f"may have sent are looked up in Xero before anything is sent again."
            )
            instance.report_run_failed(
                run, message, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
            )
            storage.free_concurrency_slots_for_run(run_id)
            LOG.warning(
                f"Run {run_id} ({process.status}) held the Xero pool {pool!r} but its process {process.pid} on "
                f"{process.host} is gone (killed or crashed): marked it FAILED and freed its slot."
            )
        released.append(process)
    return released


def ensure_pool_limit(instance: DagsterInstance, pool: str) -> None:
    """An instance without `concurrency: pools: default_limit` (an older dagster.yaml) gets the pool's
    limit of 1 set explicitly: one run at a time per Xero organisation, whatever the instance."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits and storage.get_concurrency_info(pool).limit is None:
        storage.set_concurrency_slots(pool, 1)
        LOG.warning(f"The Dagster instance had no limit for the pool {pool!r}: set it to 1 (one run at a time "
                    f"per Xero organisation). Add `concurrency: pools: default_limit: 1` to its dagster.yaml.")


class PoolWatch:
    """While a run executes: when its posting step waits for the pool slot, say which run holds it (a
    WARNING, repeated each minute, and an engine event in the run's log), and release a holder whose
    process dies meanwhile."""

    def __init__(self, instance: DagsterInstance, pool: str, run_id: str, job_name: str):
        self.instance, self.pool, self.run_id, self.job_name = instance, pool, run_id, job_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"pool-watch-{run_id[:8]}", daemon=True)

    def __enter__(self) -> "PoolWatch":
        if self.instance.event_log_storage.supports_global_concurrency_limits:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _watch(self) -> None:
        try:
            instance = DagsterInstance.from_ref(self.instance.get_ref())  # its own connections
        except Exception:  # noqa: BLE001
            instance = self.instance
        try:
            self._watch_with(instance)
        finally:
            if instance is not self.instance:
                instance.dispose()

    def _watch_with(self, instance: DagsterInstance) -> None:
        waiting_since: float | None = None
        warned_at = 0.0
        while not self._stop.wait(WATCH_SECONDS):
            try:
                info = instance.event_log_storage.get_concurrency_info(self.pool)
                ours = [s for s in info.pending_steps if s.run_id == self.run_id and s.assigned_timestamp is None]
                if not ours:
                    if waiting_since is not None:
                        LOG.warning(f"Run {self.run_id} got the slot of pool {self.pool!r} after "
                                    f"{time.monotonic() - waiting_since:.0f} s; posting goes on.")
                        waiting_since = None
                    continue
                if waiting_since is None:
                    waiting_since = time.monotonic()
                if release_slots_of_dead_runs(instance, self.pool, self.job_name, exclude=self.run_id):
                    continue  # the slot goes to the next waiting step; look again
                if time.monotonic() - warned_at < REPEAT_WARNING_SECONDS:
                    continue
                warned_at = time.monotonic()
                self._say_who_holds(instance, info)
            except Exception as error:  # noqa: BLE001 - watching must never break the run
                LOG.debug(f"Pool watch: {error}")

    def _say_who_holds(self, instance: DagsterInstance, info) -> None:
        holders = sorted({slot.run_id for slot in info.claimed_slots if slot.run_id != self.run_id})
        records = {r.dagster_run.run_id: r for r in instance.get_run_records(RunsFilter(run_ids=holders))} if holders else {}
        described = [run_process(instance, records[h]).describe() if h in records else f"run {h}" for h in holders]
        message = (
            f"Run {self.run_id} waits for the slot of the Xero pool {self.pool!r} (limit {info.limit}), held by "
            + ("; ".join(described) if described else "another run's waiting step")
            + ". It posts when that run ends. A run whose process is gone is failed and its slot freed "
            "automatically (on this machine; elsewhere by Dagster's run monitoring), or free it in the UI "
            "(Deployment → Concurrency)."
        )
        LOG.warning(message)
        try:
            instance.report_engine_event(message, run_id=self.run_id, job_name=self.job_name)
        except Exception:  # noqa: BLE001
            pass


def _console_for_warnings() -> None:
    """The runner's WARNINGs reach the console even when nothing configured Python logging (the CLI)."""
    if LOG.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s - ci-xero - %(levelname)s - %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)


# -- one run over a range of days ----------------------------------------------------------------------

@dataclass(frozen=True)
class RangeRun:
    success: bool
    run_id: str
    results: pd.DataFrame  # the posted_<process> rows of the range
    failed_checks: list[str]


def stored_asset_days(settings: SiteSettings, asset_name: str, first: date, last: date):
    return DailyFrameIOManager(base_dir=str(settings.data_path / "assets")).read_days(
        [asset_name], days_between(first, last)
    )


def run_days(
    settings_path: str | Path, first: date, last: date, instance: DagsterInstance, log_level: str = "WARNING",
    process: str = "eretailer",
) -> RangeRun:
    """Materialise one process's assets (E-Retailer unless named) for first..last as ONE run (documents
    batched across days).
    Every event still reaches the instance (the UI shows it); log_level only sets what the console prints.
    The run respects the organisation's pool; runs of this machine that died holding it are released."""
    _console_for_warnings()
    settings = load_settings(settings_path)
    definitions = build_definitions(settings_path)
    if process_job_name(process) not in {job.name for job in definitions.jobs or []}:
        raise ValueError(f"the process {process!r} is not enabled in {settings_path}: set {process}.enabled: true there")
    job = definitions.resolve_job_def(process_job_name(process))
    pool = xero_pool_name(settings)
    ensure_pool_limit(instance, pool)
    release_slots_of_dead_runs(instance, pool, job.name)
    run_id = str(uuid.uuid4())
    with PoolWatch(instance, pool, run_id, job.name):
        outcome = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
                **process_tags(),
            },
            raise_on_error=False,
        )
    failed_checks = [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in outcome.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    results = pd.DataFrame()
    posted = [e for e in outcome.all_events if e.is_successful_output and e.step_key == f"posted_{process}"]
    if posted:  # the step answered (a blocking check may still have failed it afterwards)
        results = stored_asset_days(settings, f"posted_{process}", first, last)
    return RangeRun(outcome.success, outcome.run_id, results, failed_checks)
