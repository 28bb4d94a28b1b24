"""Benchmark (b): a 365-day Summary-mode backfill through Dagster into the sandbox, then a second one.

One Dagster run covers the whole range (single-run backfill policy), so the 365 daily invoices go to
Xero 50 to a request. Prints wall time, Xero calls by kind, and the writes of the second backfill.
Target: ≤ 2 minutes and ≤ ⌈documents ÷ 50⌉ + a few calls; the second backfill makes no writes.

    .venv/bin/python bench/bench_backfill.py --days 365
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sandbox.server import SandboxServer

from bench_site import bench_sandbox_config, connected_bench_site  # bench/ is on the path when a script here runs

END_DAY = date(2026, 10, 31)


def writes(counts: dict) -> int:
    return sum(n for (method, _), n in counts.items() if method in ("PUT", "POST", "DELETE"))


def main() -> None:
    from ci_xero_pipeline.cli import quiet_dagster_api_warnings

    quiet_dagster_api_warnings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--invoices-per-day", type=int, default=60)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        ci_url = f"sqlite:///{folder / 'ci.sqlite'}"
        started = time.perf_counter()
        create_demo_database(
            ci_url, days=args.days, end_day=END_DAY, branches=5,
            invoices_per_day=(args.invoices_per_day, args.invoices_per_day), include_other_processes=False,
        )
        print(f"demo CI database: {args.days} days in {time.perf_counter() - started:.1f} s")
        config = bench_sandbox_config(folder)
        with SandboxServer(config) as server:
            site, settings, tenant = connected_bench_site(folder, server, ci_url, "summary")
            first = END_DAY - timedelta(days=args.days - 1)
            instance = DagsterInstance.ephemeral()
            for attempt in ("first", "second"):
                before = dict(server.store.call_counts(tenant))
                started = time.perf_counter()
                result = run_days(site, first, END_DAY, instance)
                elapsed = time.perf_counter() - started
                after = server.store.call_counts(tenant)
                calls = {kind: n - before.get(kind, 0) for kind, n in after.items() if n - before.get(kind, 0)}
                documents = len(result.results)
                outcomes = {k: int(v) for k, v in result.results["outcome"].value_counts().items()} if documents else {}
                print(
                    f"{attempt} backfill of {args.days} days: {'ok' if result.success else 'FAILED'} in {elapsed:.1f} s; "
                    f"{documents} documents ({outcomes}); "
                    f"Xero calls {sum(calls.values())} (⌈documents/50⌉ = {math.ceil(documents / 50)}), "
                    f"writes {writes(calls)}"
                )
                for (method, path), n in sorted(calls.items()):
                    print(f"    {method:6} {path}: {n}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
