"""The Counter Intelligence (CI) source layer: the contract's tables or views, extraction by date range
into exact integer DataFrames, and the demo CI database. It knows nothing of Xero or Dagster."""
