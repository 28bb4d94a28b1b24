"""See before you write: what a run would do in Xero for a range of days, and why, without a write.

The same functions the assets call (extraction, validation, documents, the posting plan), read-only:
CI and Xero are read, the ledger is read, nothing is sent. `ci-xero plan` prints it; the Dagster job
`eretailer_plan` shows it as a table on the op's output.
"""



from datetime import date, timedelta

import pandas as pd
from dagster import Config, MetadataValue, OpExecutionContext, Output, job, op

from .assets.metadata import table
from .books.daybook import source_evidence
from .money import cents_to_decimal
from .resources import CISourceResource, SiteResource, XeroResource
from .xero.posting import SourceEvidence, plan_posting

PLAN_TABLE_COLUMNS = ["business_date", "action", "number", "amount", "outcome", "reason"]
# the actions in the words of the plan
ACTION_WORDS = {
    "create": "create", "adopt": "record (found in Xero)", "rehash": "leave alone", "nothing": "leave alone",
    "update": "update", "void_and_repost": "void + repost", "delete_and_repost": "delete + repost",
    "credit_and_repost": "credit + repost", "void": "void", "delete": "delete", "credit": "credit",
    "mark_withdrawn": "record (gone from Xero)", "report": "refuse", "stop": "refuse (day stopped)",
    "unknown": "refuse (lookup failed)", "quarantine": "refuse (quarantined)",
}


def plan_days(site: SiteResource, ci: CISourceResource, xero: XeroResource, first: date, last: date) -> pd.DataFrame:
    """One row per Xero document a run of first..last would touch or leave, and per quarantined CI
    document (PLAN_TABLE_COLUMNS), in day order."""
    from .assets.eretailer import eretailer_books, read, validate  # the documents exactly as the run makes them

    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    validated = validate(read(ci, site, first, last), site)
    documents = eretailer_books(validated, site, days).documents
    client = xero.client()
    from .assets.process import for_posting

    plan = plan_posting(
        client, xero.ledger(client.tenant_id, process="eretailer"), for_posting(documents), days,
        SourceEvidence(**source_evidence(validated)), site.posting_policy(),
    )
    rows = plan.frame(documents)
    amounts = dict(zip(documents["document_key"], documents["total_cents"]))
    rows["amount"] = [str(cents_to_decimal(amounts[k])) if k in amounts else "" for k in rows["document_key"]]
    quarantined = validated.quarantine.drop_duplicates("invoice_no")
    held = pd.DataFrame({
        "business_date": quarantined["business_date"], "document_key": "", "number": quarantined["invoice_no"],
        "action": "quarantine", "outcome": "quarantined", "reason": quarantined["reason"],
        "amount": [str(cents_to_decimal(c)) for c in quarantined["total_incl_cents"]],
    })
    rows = pd.concat([rows, held], ignore_index=True) if len(held) else rows
    rows["action"] = rows["action"].map(ACTION_WORDS).fillna(rows["action"])
    return rows.sort_values(["business_date", "action", "number"], kind="stable").reset_index(drop=True)[PLAN_TABLE_COLUMNS]


def format_plan(rows: pd.DataFrame, first: date, last: date) -> str:
    """The plan as text, per day: what would be done to each document, and why."""
    lines = [f"What a run of {first} … {last} would do in Xero (nothing has been written):"]
    if rows.empty:
        lines.append("  nothing: CI has no E-Retailer documents to post and the ledger holds none for these days")
    for day, group in rows.groupby("business_date", sort=True):
        counts = ", ".join(f"{n} {action}" for action, n in group["action"].value_counts().sort_index().items())
        lines.append(f"{day}: {counts}")
        for row in group.itertuples(index=False):
            if row.action == "leave alone" and not row.reason:
                continue
            lines.append(f"  {row.action:<24} {row.number:<22} {row.amount:>12}  {row.reason}")
    return "\n".join(lines)


class PlanRange(Config):
    first_day: str  # YYYY-MM-DD, an NZ trading day
    last_day: str


@op(description="What a run of the days would create, update, void, repost, leave alone or refuse, and why. "
    "Reads CI, the ledger and Xero; writes nothing.")
def plan_eretailer(
    context: OpExecutionContext, config: PlanRange, site: SiteResource, ci: CISourceResource, xero: XeroResource
) -> Output[None]:
    first, last = date.fromisoformat(config.first_day), date.fromisoformat(config.last_day)
    rows = plan_days(site, ci, xero, first, last)
    context.log.info(format_plan(rows, first, last))
    counts = rows["action"].value_counts().to_dict()
    return Output(None, metadata={
        "days": f"{first} … {last}",
        **{f"to_{action.replace(' ', '_').replace('(', '').replace(')', '').replace('+', 'and')}": int(n)
           for action, n in counts.items()},
        "plan": table(rows, PLAN_TABLE_COLUMNS),
        "plan_text": MetadataValue.md("```\n" + format_plan(rows, first, last) + "\n```"),
    })


@job(description="A dry run: the E-Retailer posting plan for a range of days, without a write to Xero.")
def eretailer_plan():
    plan_eretailer()
