"""See before you write: what a run would do in Xero for a range of days, and why, without a write.

The same functions the assets call (extraction, validation, documents, the posting plan), read-only:
CI and Xero are read, the ledger is read, nothing is sent. `ci-xero plan` prints it; the Dagster job
`eretailer_plan` shows it as a table on the op's output.
"""



from datetime import date, timedelta

import pandas as pd
from dagster import Config, MetadataValue, OpExecutionContext, Output, job, op

from .assets.metadata import table
from .money import cents_to_decimal
from .resources import CISourceResource, SiteResource, XeroResource
from .xero.posting import plan_posting

PLAN_TABLE_COLUMNS = ["business_date", "action", "number", "amount", "outcome", "reason"]
# the actions in the words of the plan
ACTION_WORDS = {
    "create": "create", "adopt": "record (found in Xero)", "rehash": "leave alone", "nothing": "leave alone",
    "update": "update", "void_and_repost": "void + repost", "delete_and_repost": "delete + repost",
    "credit_and_repost": "credit + repost", "void": "void", "delete": "delete", "credit": "credit",
    "mark_withdrawn": "record (gone from Xero)", "report": "refuse", "stop": "refuse (day stopped)",
    "unknown": "refuse (lookup failed)", "quarantine": "refuse (quarantined)",
}


def plan_days(site: SiteResource, ci: CISourceResource, xero: XeroResource, first: date, last: date,
              process: str = "eretailer") -> pd.DataFrame:
    """One row per Xero document a run of the process over first..last would touch or leave, and per
    quarantined CI document or branch-day (PLAN_TABLE_COLUMNS), in day order. The documents are built by the
    process's own declaration, exactly as its run builds them."""
    from .assets.process import for_posting
    from .code_location import process_named

    declaration = process_named(process)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    validated = declaration.validate(declaration.read(ci, site, first, last), site)
    documents = declaration.build(validated, site, days).documents
    client = xero.client()
    plan = plan_posting(
        client, xero.ledger(client.tenant_id, process=process), for_posting(documents), days,
        declaration.evidence(validated, site), site.posting_policy(process),
    )
    rows = _our_payments_come_off(plan.frame(documents), plan, xero.ledger(client.tenant_id, process=f"{process}-payment"))
    amounts = dict(zip(documents["document_key"], documents["total_cents"]))
    rows["amount"] = [str(cents_to_decimal(amounts[k])) if k in amounts else "" for k in rows["document_key"]]
    quarantined = declaration.quarantined(validated)
    held = pd.DataFrame({
        "business_date": quarantined["business_date"], "document_key": "", "number": quarantined["invoice_no"],
        "action": "quarantine", "outcome": "quarantined", "reason": quarantined["reason"],
        "amount": [str(cents_to_decimal(int(c))) for c in quarantined["total_incl_cents"]],
    })
    rows = pd.concat([rows, held], ignore_index=True) if len(held) else rows
    rows["action"] = rows["action"].map(ACTION_WORDS).fillna(rows["action"])
    return rows.sort_values(["business_date", "action", "number"], kind="stable").reset_index(drop=True)[PLAN_TABLE_COLUMNS]


def _our_payments_come_off(rows: pd.DataFrame, plan, payment_ledger) -> pd.DataFrame:
    """A document the plan finds paid, whose every payment in Xero is one we made: the run takes those payments
    off first (xero.payments.release_payments), then changes the document and pays it again. Someone else's
    payment, a credit or a locked period leaves it `paid` (a person adjusts it)."""
    paid = {key: step for key, step in plan.steps.items() if step.outcome == "paid" and step.xero}
    if not paid:
        return rows
    ours: dict[str, set[str]] = {}
    for entry in payment_ledger.entries_for_partitions(sorted({s.entry.partition_key for s in paid.values() if s.entry})).values():
        if entry.source_keys and entry.xero_id and entry.state == "posted":
            ours.setdefault(entry.source_keys[0], set()).add(entry.xero_id)
    rows = rows.copy()
    for key, step in paid.items():
        held = {p.get("PaymentID") for p in step.xero.get("Payments") or []}
        credited = step.xero.get("CreditNotes") or step.xero.get("Allocations") or step.xero.get("Prepayments") or step.xero.get("Overpayments")
        locked = plan.locked_until and step.entry and date.fromisoformat(step.entry.partition_key) <= plan.locked_until
        if held and held <= ours.get(key, set()) and not credited and not locked:
            at = rows["document_key"] == key
            rows.loc[at, "action"] = "unpay, then change"
            rows.loc[at, "outcome"] = "changed"
            rows.loc[at, "reason"] = (f"CI changed it after posting; our {len(held)} payment(s) of it come off first (no one "
                                      "else's), then it is changed as any document is (voided and posted again, or "
                                      "updated) and paid again")
    return rows


def format_plan(rows: pd.DataFrame, first: date, last: date) -> str:
    """The plan as text, per day: what would be done to each document, and why."""
    lines = [f"What a run of {first} … {last} would do in Xero (nothing has been written):"]
    if rows.empty:
        lines.append("  nothing: CI has nothing of the process to post and the ledger holds none of its documents for these days")
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
