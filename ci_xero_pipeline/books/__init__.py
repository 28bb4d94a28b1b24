"""Pure accounting: validated CI rows in, exact Xero documents out. No I/O, no Dagster, no HTTP."""
