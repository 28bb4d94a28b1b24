"""Benchmark (a): CI invoice lines through extraction → validation → Xero documents.

Generates a demo CI database of about --lines lines (once, cached under bench/out), then, in a fresh
child process so that generation does not count, times each step and reports peak memory (max RSS).
Target: 1,000,000 lines in ≤ 15 s and ≤ 1.5 GB.

    .venv/bin/python bench/bench_transform.py --lines 1000000 --mode detail
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
END_DAY = date(2026, 10, 31)
DAYS = 30
BRANCHES = 5
MAX_LINES = 6  # lines per invoice are uniform in 1..6: 3.5 on average


def database_for(lines: int) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"ci_{lines}.sqlite"
    if not path.exists():
        from ci_xero_pipeline.ci.demo import create_demo_database

        per_day = max(1, round(lines / (DAYS * (1 + MAX_LINES) / 2)))
        started = time.perf_counter()
        summary = create_demo_database(
            f"sqlite:///{path}", days=DAYS, end_day=END_DAY, branches=BRANCHES,
            invoices_per_day=(per_day, per_day), lines_per_invoice=(1, MAX_LINES),
            include_other_processes=False,
        )
        print(f"generated {summary} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def measure(path: Path, mode: str) -> dict:
    from datetime import timedelta

    from ci_xero_pipeline.books.eretailer import build_eretailer_documents
    from ci_xero_pipeline.books.rules import EretailerRules
    from ci_xero_pipeline.books.validation import validate_sales_documents
    from ci_xero_pipeline.ci.extract import engine_for, extract_sales_documents

    rules = EretailerRules(
        mode=mode,
        sales_accounts={"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"},
    )
    timings = {}
    started = time.perf_counter()
    documents = extract_sales_documents(
        engine_for(f"sqlite:///{path}"), END_DAY - timedelta(days=DAYS - 1), END_DAY
    )
    timings["extract_s"] = time.perf_counter() - started
    step = time.perf_counter()
    validated = validate_sales_documents(documents, rules)
    timings["validate_s"] = time.perf_counter() - step
    step = time.perf_counter()
    xero_documents = build_eretailer_documents(validated.invoices, validated.lines, rules)
    timings["documents_s"] = time.perf_counter() - step
    timings["total_s"] = time.perf_counter() - started
    return {
        "mode": mode,
        "ci_lines": len(documents.lines),
        "ci_documents": len(documents.invoices),
        "quarantined_documents": int(validated.quarantine["invoice_no"].nunique()),
        "xero_documents": len(xero_documents),
        **{k: round(v, 2) for k, v in timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["summary", "detail", "both"], default="both")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.mode)))
        return
    path = database_for(args.lines)
    for mode in (["summary", "detail"] if args.mode == "both" else [args.mode]):
        answer = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--mode", mode],
            check=True, capture_output=True, text=True,
        )
        figures = json.loads(answer.stdout.strip().splitlines()[-1])
        print(
            f"{figures['mode']:>7}: {figures['ci_lines']:,} CI lines, {figures['ci_documents']:,} CI documents → "
            f"{figures['xero_documents']:,} Xero documents | extract {figures['extract_s']} s, validate "
            f"{figures['validate_s']} s, documents {figures['documents_s']} s, total {figures['total_s']} s | "
            f"peak memory {figures['peak_rss_mb']} MB"
        )


if __name__ == "__main__":
    main()
