"""A site whose CI views have other names posts through the settings' `ci_names`, end to end."""

from __future__ import annotations

import sqlalchemy as sa

from .conftest import DEMO_END_DAY
from .pipeline_helpers import ci_final_totals_by_day, connect_site, run, xero_totals_by_day


def test_renamed_ci_views_and_columns_are_read_through_the_settings(sandbox, ci_copy, make_site):
    engine = sa.create_engine(ci_copy)
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE ci_sales_invoices RENAME TO v_web_invoices"))
        connection.execute(sa.text("ALTER TABLE v_web_invoices RENAME COLUMN order_ref TO web_order"))
    site = make_site(sandbox, ci_copy, {"ci_names": {
        "views": {"ci_sales_invoices": "v_web_invoices"},
        "columns": {"ci_sales_invoices": {"order_ref": "web_order"}},
    }})
    connect_site(site)

    outcome = run(site, DEMO_END_DAY, DEMO_END_DAY)

    assert outcome.success, outcome.failed_checks
    with engine.begin() as connection:  # read CI's totals back under the contract's names
        connection.execute(sa.text("ALTER TABLE v_web_invoices RENAME COLUMN web_order TO order_ref"))
        connection.execute(sa.text("ALTER TABLE v_web_invoices RENAME TO ci_sales_invoices"))
    assert xero_totals_by_day(site) == ci_final_totals_by_day(ci_copy, DEMO_END_DAY, DEMO_END_DAY)
