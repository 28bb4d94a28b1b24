"""Benchmark (d): the end-of-day takings of --days trading days as one backfill into the sandbox, then a re-run.

A demo CI database (the tills with their vouchers, cash rounding and cash-ups, --branches branches of which
one is the web store) goes through the takings process as ONE Dagster run, the way a backfill runs
(single-run policy): one takings document per branch-day and one payment per tender, each kind 50 to
a request. Prints the branch-days, documents and payments, the Xero calls by kind, the writes of
documents and payments per 50 branch-days, wall time and peak memory; then the same run again, whose
writes must be 0.

Target (issue 11): ≤ 2 document + payment writes per 50 branch-days, i.e. batches of 50 for both. A
branch-day is one document but one payment per tender it was paid by, so the payments alone take
⌈payments ÷ 50⌉ calls: the figure is printed beside what batches of 50 allow.

    .venv/bin/python bench/bench_takings.py --days 60
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.runner import stored_asset_days, run_days
from ci_xero_pipeline.sandbox.server import SandboxServer

from bench_site import bench_sandbox_config, connected_bench_site  # bench/ is on the path when a script here runs

END_DAY = date(2026, 10, 31)
BATCH = 50  # Xero's batch: up to 50 documents or payments a request
TARGET_PER_50_BRANCH_DAYS = 2
WRITE_METHODS = ("PUT", "POST", "DELETE")
WHAT = {"PUT Invoices": "invoices", "PUT CreditNotes": "credit notes", "PUT Payments": "payments",
        "lookups": "by number or Reference: each new credit note before it goes (xero/posting.py), and what a lost answer left unknown"}
# the order the kinds are printed in
KINDS = ["PUT Invoices", "PUT CreditNotes", "PUT Payments", "GET Accounts", "GET TaxRates", "GET Organisation",
         "tracking", "contacts", "lookups", "read-back"]


class RequestLog:
    """The accounting API requests that leave this process (the run is in-process), by URL: the
    sandbox counts calls per (method, collection) only, and a GET of Invoices is a lookup by number
    or the read-back by date depending on its query. Observes, never changes, what is sent."""

    def __init__(self, api_url: str):
        self.api_url = api_url.rstrip("/") + "/"
        self.sent: list[tuple[str, str, dict[str, list[str]]]] = []
        self._send = requests.Session.send

    def __enter__(self) -> "RequestLog":
        log, send = self, self._send

        def recording_send(session, request, **kwargs):
            if request.url.startswith(log.api_url):
                parts = urlsplit(request.url)
                log.sent.append((request.method, parts.path[len(urlsplit(log.api_url).path):], parse_qs(parts.query)))
            return send(session, request, **kwargs)

        requests.Session.send = recording_send
        return self

    def __exit__(self, *exc_info) -> None:
        requests.Session.send = self._send

    def take(self) -> list[tuple[str, str, dict[str, list[str]]]]:
        taken, self.sent = self.sent, []
        return taken


def kind_of(method: str, path: str, query: dict[str, list[str]]) -> str:
    collection = path.split("/")[0]
    if collection == "TrackingCategories":
        return "tracking"
    if collection == "Contacts":
        return "contacts"
    if method == "GET" and collection in ("Invoices", "CreditNotes"):
        where = " ".join(query.get("where", []))
        return "read-back" if "Date>=" in where else "lookups"  # reconcile.read_documents reads by date range
    if method == "GET" and collection == "Payments":
        return "lookups"  # by Reference, after a lost answer or before releasing our payments
    return f"{method} {collection}"


def by_kind(sent: list[tuple[str, str, dict[str, list[str]]]]) -> Counter:
    return Counter(kind_of(method, path, query) for method, path, query in sent)


def by_collection(sent: list[tuple[str, str, dict[str, list[str]]]]) -> Counter:
    return Counter((method, path.split("/")[0]) for method, path, _ in sent)


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux gives KiB


def main() -> None:
    from ci_xero_pipeline.cli import quiet_dagster_api_warnings

    quiet_dagster_api_warnings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--branches", type=int, default=5, help="branches of the demo, the web store included")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-takings-"))
    all_started = time.perf_counter()
    try:
        ci_url = f"sqlite:///{folder / 'ci.sqlite'}"
        started = time.perf_counter()
        summary = create_demo_database(ci_url, days=args.days, end_day=END_DAY, branches=args.branches)
        print(f"demo CI database in {time.perf_counter() - started:.1f} s: {summary}")
        config = bench_sandbox_config(folder)
        with SandboxServer(config) as server:
            site, settings, tenant = connected_bench_site(folder, server, ci_url, "summary")
            first = END_DAY - timedelta(days=args.days - 1)
            instance = DagsterInstance.ephemeral()
            with RequestLog(settings.xero.api_url) as log:
                for attempt in ("backfill", "re-run"):
                    before = dict(server.store.call_counts(tenant))
                    started = time.perf_counter()
                    result = run_days(site, first, END_DAY, instance, process="takings")
                    elapsed = time.perf_counter() - started
                    after = server.store.call_counts(tenant)
                    counted = {kind: n - before.get(kind, 0) for kind, n in after.items() if n - before.get(kind, 0)}
                    sent = log.take()
                    report(attempt, args.days, result, settings, first, counted, sent, elapsed)
        print(f"total wall time {time.perf_counter() - all_started:.1f} s; peak memory (RSS of this process: the "
              f"run, Dagster and the sandbox server) {peak_memory_mib():.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(attempt: str, days: int, result, settings, first: date, counted: dict, sent: list, elapsed: float) -> None:
    """Print one run's figures. `counted`: the sandbox's own count by (method, collection); `sent`: the
    requests as they left, classified; both must agree."""
    results = result.results
    outcomes = {str(k): int(v) for k, v in results["outcome"].value_counts().items()} if len(results) else {}
    validated = stored_asset_days(settings, "validated_takings", first, END_DAY)
    branch_days = len(validated.branch_days)
    held = int(validated.branch_days["quarantined"].sum())
    payments = stored_asset_days(settings, "xero_takings_payments", first, END_DAY)
    posted = results[results["outcome"] == "posted"] if len(results) else results
    invoices = int((results["endpoint"] == "Invoices").sum()) if len(results) else 0
    credit_notes = int((results["endpoint"] == "CreditNotes").sum()) if len(results) else 0
    kinds = by_kind(sent)
    agree = by_collection(sent) == Counter(counted)
    document_writes = kinds["PUT Invoices"] + kinds["PUT CreditNotes"]
    payment_writes = kinds["PUT Payments"]
    writes = sum(n for (method, _), n in counted.items() if method in WRITE_METHODS)
    failed = f" (failed checks: {', '.join(result.failed_checks)})" if result.failed_checks else ""
    print(f"\n{attempt} of {days} days: {'ok' if result.success else 'FAILED'}{failed} in {elapsed:.1f} s")
    print(f"  branch-days in CI {branch_days} ({held} quarantined), documents {len(results)} "
          f"({invoices} invoices, {credit_notes} credit notes; {outcomes}), branch-days posted now {len(posted)}, "
          f"payments built {len(payments)}")
    print(f"  Xero calls {sum(counted.values())}, writes {writes}"
          + ("" if agree else f"  (MISMATCH: the sandbox counted {dict(counted)}, the requests sent {dict(by_collection(sent))})"))
    expected_batches = {
        "PUT Invoices": math.ceil(invoices / BATCH), "PUT CreditNotes": math.ceil(credit_notes / BATCH),
        "PUT Payments": math.ceil(len(payments) / BATCH),
    }
    for kind in KINDS + sorted(set(kinds) - set(KINDS)):
        beside = f"   ⌈{WHAT[kind]} ÷ 50⌉ = {expected_batches[kind]}" if kind in expected_batches and attempt == "backfill" else ""
        if kind == "lookups" and kinds.get(kind):
            beside = f"   ({WHAT[kind]})"
        print(f"    {kind:17} {kinds.get(kind, 0):4}{beside}")
    if len(posted):
        per_50 = (document_writes + payment_writes) * BATCH / len(posted)
        print(f"  document + payment writes per 50 branch-days: {per_50:.2f} (target ≤ {TARGET_PER_50_BRANCH_DAYS}; "
              f"documents {document_writes * BATCH / len(posted):.2f}, payments {payment_writes * BATCH / len(posted):.2f} "
              f"at {len(payments) / len(posted):.2f} payments a branch-day)")
    else:
        print(f"  document + payment writes: {document_writes + payment_writes} (nothing new to post)")
    print(f"  peak memory so far {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
