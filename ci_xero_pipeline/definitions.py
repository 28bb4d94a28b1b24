"""The Dagster code location that `dagster dev` and `dagster definitions validate` load.

The site settings file is `site.yaml` in the working folder, or the file named by CI_XERO_SITE.
"""

from .code_location import build_definitions

defs = build_definitions()
