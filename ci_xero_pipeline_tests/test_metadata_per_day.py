"""In a backfill (many days in one run) each partition's metadata is that day's own."""

from __future__ import annotations

from datetime import timedelta

from dagster import AssetKey, DagsterInstance

from .conftest import DEMO_END_DAY
from .pipeline_helpers import connect_site, run


def test_each_partition_of_a_backfill_shows_its_own_day(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": "detail", "status": "AUTHORISED"}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    first = DEMO_END_DAY - timedelta(days=2)

    outcome = run(site, first, DEMO_END_DAY, instance)

    assert outcome.success
    expected = outcome.results.groupby("business_date").size().to_dict()
    for asset in ("raw_eretailer", "xero_eretailer_documents", "posted_eretailer"):
        events = instance.fetch_materializations(AssetKey(asset), limit=10).records
        by_day = {e.partition_key: e.asset_materialization.metadata for e in events}
        assert set(by_day) == set(expected), asset
        for day, metadata in by_day.items():
            if asset == "posted_eretailer":
                rows = [r.data for r in metadata["documents_in_xero"].value.records]
                assert {row["business_date"] for row in rows} == {day} and len(rows) == expected[day]
                assert metadata["posted"].value == expected[day]
            elif asset == "xero_eretailer_documents":
                assert metadata["documents"].value == expected[day]
            else:
                assert metadata["trading_days"].value == day
