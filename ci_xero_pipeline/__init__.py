"""CI Office → Xero, as a Dagster code location.

The Dagster APIs this project builds on that Dagster still marks beta (the single-run backfill policy,
dagster-pandera's type factory) are the current ones for what they do: their notices say nothing a
site can act on, so they are silenced here, for these APIs only, before any asset is defined.
"""

import warnings

from dagster import BetaWarning

warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta", category=BetaWarning)
warnings.filterwarnings("ignore", message=r"Function `pandera_schema_to_dagster_type` is currently in beta", category=BetaWarning)
