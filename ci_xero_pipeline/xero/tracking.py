"""The tracking category that carries CI branches: use an existing one, or create it and its options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

from .client import XeroClient, XeroOutcomeUnknown

# writes whose answer was lost are resolved by reading the category again: names make them idempotent
_LOST_ANSWER_ATTEMPTS = 5


class TrackingSetupError(RuntimeError):
    """The tracking category or its options are not as the site settings need; says what to fix."""


@dataclass(frozen=True)
class TrackingSetup:
    category_name: str
    category_id: str
    created_category: bool = False
    created_options: tuple[str, ...] = field(default_factory=tuple)


def _active(elements: list[dict], name_field: str) -> dict[str, dict]:
    return {
        element[name_field].casefold(): element
        for element in elements
        if element.get("Status", "ACTIVE") == "ACTIVE"
    }


def ensure_tracking_options(
    client: XeroClient,
    category_name: str,
    option_names: Iterable[str],
    strategy: Literal["existing", "create"],
) -> TrackingSetup:
    """Make sure the category and every option the documents name exist and are active.

    `existing`: nothing is created; a missing category or option is an error naming it.
    `create`: the category (if missing) and the missing options are created. A create whose answer
    was lost is never sent blindly again: the category is read back first, and only what is still
    missing is created.
    """
    wanted = sorted(set(option_names))  # once: option_names may be a one-pass iterator
    for _attempt in range(_LOST_ANSWER_ATTEMPTS - 1):
        try:
            return _ensure_once(client, category_name, wanted, strategy)
        except XeroOutcomeUnknown:
            continue
    return _ensure_once(client, category_name, wanted, strategy)


def _ensure_once(
    client: XeroClient, category_name: str, wanted: list[str], strategy: Literal["existing", "create"]
) -> TrackingSetup:
    categories = client.tracking_categories()
    category = _active(categories, "Name").get(category_name.casefold())
    created_category = False
    if category is None:
        archived = [c for c in categories if c["Name"].casefold() == category_name.casefold()]
        if archived:
            raise TrackingSetupError(
                f"The Xero tracking category {category_name!r} is archived; restore it in Xero "
                "(Settings > Tracking categories) or set tracking.category_name to another one."
            )
        if strategy == "existing":
            names = ", ".join(sorted(c["Name"] for c in categories)) or "none"
            raise TrackingSetupError(
                f"Xero has no tracking category {category_name!r} (it has: {names}). Set "
                "tracking.category_name to one of those, or tracking.strategy to 'create'."
            )
        category = client.create_tracking_category(category_name)
        category.setdefault("Options", [])
        created_category = True

    options = _active(category.get("Options") or [], "Name")
    archived_options = {
        o["Name"].casefold() for o in category.get("Options") or [] if o.get("Status", "ACTIVE") != "ACTIVE"
    }
    missing = [name for name in wanted if name.casefold() not in options]
    blocked = [name for name in missing if name.casefold() in archived_options]
    if blocked:
        raise TrackingSetupError(
            f"Tracking options {blocked} of {category_name!r} are archived in Xero; restore them or map "
            "those branches to other options (tracking.branch_options)."
        )
    if missing and strategy == "existing":
        raise TrackingSetupError(
            f"Tracking category {category_name!r} lacks the options {missing}. Add them in Xero, map the "
            "branches to existing options (tracking.branch_options), or set tracking.strategy to 'create'."
        )
    for name in missing:
        create_tracking_option(client, category["TrackingCategoryID"], name)
    return TrackingSetup(
        category_name=category["Name"],
        category_id=category["TrackingCategoryID"],
        created_category=created_category,
        created_options=tuple(missing),
    )


def create_tracking_option(client: XeroClient, category_id: str, name: str) -> dict:
    """One option: `PUT TrackingCategories/{id}/Options` with one TrackingOption object, {"Name": …},
    as the body. That is the requestBody of the spec's createTrackingOptions (xero_accounting.yaml); the
    spec describes no {"Options": [...]} list form, so options are created one request each. A lost
    answer raises XeroOutcomeUnknown, and `ensure_tracking_options` reads the category back before
    creating what is still missing (option names are unique in a category, so none is made twice)."""
    answer = client.request("PUT", f"TrackingCategories/{category_id}/Options", body={"Name": name})
    return (answer.get("Options") or [{}])[0]


def tracking_options_used(payloads: Iterable[dict], category_name: str) -> list[str]:
    """The options of the category that the documents' lines name."""
    used = {
        entry["Option"]
        for payload in payloads
        for line in (payload.get("LineItems") or payload.get("JournalLines") or [])  # a journal's lines too
        for entry in line.get("Tracking", [])
        if entry.get("Name") == category_name
    }
    return sorted(used)
