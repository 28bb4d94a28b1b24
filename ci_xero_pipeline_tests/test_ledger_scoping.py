"""The posting ledger's per-process scoping on every state database the product supports: a process sees
only its own rows of a day, whatever characters its keys hold (LIKE's wildcards `_` and `%` included), so
E-Retailer never takes a day's takings document for one of its own CI no longer returns."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from ci_xero_pipeline.xero.ledger import POSTED, Intent, PostingLedger

DAY = "2026-03-02"
KEYS = ["eretailer/2026-03-02/W_1", "takings/2026-03-02/AKL_01", "takings-payment/EOD-AKL_01-20260302/CASH",
        "takingsX/2026-03-02/y", "take_ngs/2026-03-02/z", "take%ngs/2026-03-02/p", "TAKINGS/2026-03-02/upper"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mariadb)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    else:
        variable = f"CI_XERO_TEST_{request.param.upper()}_URL"
        url = os.environ.get(variable)
        if not url:
            pytest.skip(f"set {variable} to keep the posting ledger on {request.param}")
        engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def intent(key: str) -> Intent:
    return Intent(document_key=key, endpoint="Payments" if "-payment/" in key else "Invoices", number=key.rsplit("/", 1)[1],
                  revision=0, content_hash="c1:x", total_cents=100, tax_cents=0, partition_key=DAY, source_keys=("A",))


def test_each_process_sees_only_its_own_rows_of_a_day(engine):
    tenant = f"tenant-{uuid.uuid4().hex[:12]}"  # a tenant of this test's own in the shared database
    PostingLedger(engine, tenant).intend([intent(key) for key in KEYS])
    PostingLedger(engine, tenant).posted_many([(key, "id", "AUTHORISED") for key in KEYS])
    scoped = {process: sorted(PostingLedger(engine, tenant, process=process).entries_for_partitions([DAY]))
              for process in ("eretailer", "takings", "takings-payment", "take_ngs", "take%ngs")}
    assert scoped == {
        "eretailer": ["eretailer/2026-03-02/W_1"], "takings": ["takings/2026-03-02/AKL_01"],
        "takings-payment": ["takings-payment/EOD-AKL_01-20260302/CASH"], "take_ngs": ["take_ngs/2026-03-02/z"],
        "take%ngs": ["take%ngs/2026-03-02/p"],
    }
    assert PostingLedger(engine, tenant, process="takings").posted_partitions() == [DAY]
    # unscoped (as before scoping): every document row, no payment row
    everything = PostingLedger(engine, tenant).entries_for_partitions([DAY])
    assert "takings-payment/EOD-AKL_01-20260302/CASH" not in everything and len(everything) == len(KEYS) - 1
    assert {e.state for e in everything.values()} == {POSTED}
