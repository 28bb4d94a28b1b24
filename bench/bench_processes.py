"""Benchmark (e): account customers, goods receipts and cost of goods sold over --days trading days, each
process as ONE Dagster run into the sandbox (as a backfill runs), then each again.

Prints per process: the documents made and their outcomes, the Xero calls by method and collection, the
document writes per 50 documents (each kind goes 50 to a request), the contacts and allocations written,
wall time and peak memory; the re-run's writes must be 0 (nothing is sent twice). The runs share the
organisation's 60 calls a minute: a run that starts within a minute of a busy one waits for the pacer.

    .venv/bin/python bench/bench_processes.py --days 30
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sandbox.server import SandboxServer

from bench_site import bench_sandbox_config, connected_bench_site  # bench/ is on the path when a script here runs
from bench_takings import RequestLog, by_collection, peak_memory_mib

END_DAY = date(2026, 10, 31)
BATCH = 50
PROCESSES = ("receivables", "payables", "cogs")
# the requests that write each process's documents (a bill is an ACCPAY Invoice, a journal a ManualJournal)
DOCUMENT_WRITES = {"receivables": {("PUT", "Invoices"), ("PUT", "CreditNotes")},
                   "payables": {("PUT", "Invoices"), ("PUT", "CreditNotes")},
                   "cogs": {("PUT", "ManualJournals")}}
WRITE_METHODS = ("PUT", "POST", "DELETE")


def main() -> None:
    from ci_xero_pipeline.cli import quiet_dagster_api_warnings

    quiet_dagster_api_warnings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--branches", type=int, default=5, help="branches of the demo, the web store included")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-processes-"))
    all_started = time.perf_counter()
    try:
        ci_url = f"sqlite:///{folder / 'ci.sqlite'}"
        summary = create_demo_database(ci_url, days=args.days, end_day=END_DAY, branches=args.branches)
        print(f"demo CI database: {summary}")
        with SandboxServer(bench_sandbox_config(folder)) as server:
            site, settings, tenant = connected_bench_site(folder, server, ci_url, "summary")
            first = END_DAY - timedelta(days=args.days - 1)
            instance = DagsterInstance.ephemeral()
            with RequestLog(settings.xero.api_url) as log:
                for process in PROCESSES:
                    for attempt in ("backfill", "re-run"):
                        before = dict(server.store.call_counts(tenant))
                        started = time.perf_counter()
                        result = run_days(site, first, END_DAY, instance, process=process)
                        elapsed = time.perf_counter() - started
                        after = server.store.call_counts(tenant)
                        counted = {kind: n - before.get(kind, 0) for kind, n in after.items() if n - before.get(kind, 0)}
                        report(process, attempt, args.days, result, counted, log.take(), elapsed)
        print(f"\ntotal wall time {time.perf_counter() - all_started:.1f} s; peak memory (RSS of this process: the runs, "
              f"Dagster and the sandbox server) {peak_memory_mib():.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(process: str, attempt: str, days: int, result, counted: dict, sent: list, elapsed: float) -> None:
    results = result.results
    outcomes = {str(k): int(v) for k, v in results["outcome"].value_counts().items()} if len(results) else {}
    made = int(results["outcome"].isin(["posted", "reposted"]).sum()) if len(results) else 0
    agree = by_collection(sent) == Counter(counted)
    writes = sum(n for (method, _), n in counted.items() if method in WRITE_METHODS)
    # by path: a credit's allocation is a PUT under /CreditNotes/{id}/Allocations, not a document
    allocations = sum(1 for method, path, _query in sent if method == "PUT" and path.endswith("/Allocations"))
    document_writes = sum(1 for method, path, _query in sent if (method, path) in DOCUMENT_WRITES[process])
    failed = f" (failed checks: {', '.join(result.failed_checks)})" if result.failed_checks else ""
    print(f"\n{process}, {attempt} of {days} days: {'ok' if result.success else 'FAILED'}{failed} in {elapsed:.1f} s")
    print(f"  documents {len(results)} {outcomes}")
    print(f"  Xero calls {sum(counted.values())}, writes {writes}"
          + ("" if agree else f"  (MISMATCH: the sandbox counted {dict(counted)}, the requests sent {dict(by_collection(sent))})"))
    for (method, collection), n in sorted(counted.items()):
        print(f"    {method:6} {collection:28} {n:4}")
    if made:
        print(f"  document writes {document_writes} for {made} new documents: {document_writes * BATCH / made:.2f} per 50 "
              f"(batches of 50 allow {math.ceil(made / BATCH) * BATCH / made:.2f}); allocations {allocations} (one call each)")
    elif attempt == "re-run":
        print(f"  re-run writes: {writes} (must be 0)")


if __name__ == "__main__":
    sys.exit(main())
