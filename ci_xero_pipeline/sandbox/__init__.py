"""A local stand-in for Xero: OAuth 2.0 identity, connections and the parts of the Accounting API the
pipeline uses, with Xero's validation rules, rate limits and idempotency, all state in one SQLite file.

Start it with `SandboxServer(config)` (tests, demo) or `serve(config)` (`ci-xero sandbox`).
"""
