"""A local stand-in for Xero: OAuth 2.0 identity, connections and the parts of the Accounting API the
pipeline uses, with Xero's validation rules, rate limits and idempotency, all state in one SQLite file.
The chart of accounts can be written as in Xero (create, update, archive and restore, delete: `chart`),
and each invoice or credit note has a read-only page for a person (`pages`), standing in for go.xero.com.

Start it with `SandboxServer(config)` (tests, demo) or `serve(config)` (`ci-xero sandbox`).
"""
