"""A person's page per document, standing in for Xero's own (go.xero.com) in the demo and the tests.

`document_page` renders one stored invoice or credit note as plain HTML: organisation, kind, number,
reference, contact, status, dates, lines (description, quantity, price, account, tax type, tracking,
GST, amount), totals, payments and the document's `Url` back to where it came from. Read only, no
script. `deep_link_target` reads Xero's deep-link addresses (developer.xero.com, "Deep link to
Xero": `/organisationlogin/default.aspx?shortcode=!…&redirecturl=/AccountsReceivable/View.aspx?InvoiceID=…`)
so that a link built for Xero works against the sandbox by changing only its host.
"""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .rules import parse_date

KIND_NAMES = {
    ("Invoices", "ACCREC"): "Sales invoice", ("Invoices", "ACCPAY"): "Bill",
    ("CreditNotes", "ACCRECCREDIT"): "Sales credit note", ("CreditNotes", "ACCPAYCREDIT"): "Supplier credit note",
}
# Xero's screens name statuses in words (an approved, unpaid invoice is "Awaiting Payment")
STATUS_WORDS = {
    "DRAFT": "Draft", "SUBMITTED": "Awaiting Approval", "AUTHORISED": "Awaiting Payment", "PAID": "Paid",
    "VOIDED": "Voided", "DELETED": "Deleted",
}
AMOUNTS_ARE = {"Inclusive": "Tax inclusive", "Exclusive": "Tax exclusive", "NoTax": "No tax"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1e3145; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } .organisation { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; } th, td { padding: .35rem .7rem; text-align: left; vertical-align: top; }
table.lines th { border-bottom: 2px solid #c9d1d9; } table.lines td { border-bottom: 1px solid #e4e8eb; }
td.money, th.money { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.status { font-weight: 600; } .note { color: #59636e; font-size: .9rem; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def money(value: Any) -> str:
    """An exact amount as a person reads it: 1,234.50 (Decimal formatting, no float)."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value or "0"))
    return f"{amount:,.2f}"


def _day(value: Any) -> str:
    day = parse_date(value)
    return day.strftime("%d %b %Y").lstrip("0") if isinstance(day, date) else ""


def _quantity(value: Any) -> str:
    quantity = value if isinstance(value, Decimal) else Decimal(str(value or "0"))
    return f"{quantity.normalize():f}"  # 1.0000 → 1, 2.5000 → 2.5


def document_page(
    collection: str,
    document: dict[str, Any],
    organisation_name: str,
    contact: dict[str, Any] | None,
    account_names: dict[str, str],
    currency: str,
) -> str:
    """The page for one stored document. `account_names` maps AccountID (or, for a line without one,
    the code) to the account's name."""
    id_field, number_field = ("InvoiceID", "InvoiceNumber") if collection == "Invoices" else ("CreditNoteID", "CreditNoteNumber")
    kind = KIND_NAMES.get((collection, document.get("Type")), "Document")
    number = document.get(number_field) or "(no number)"
    status = document.get("Status", "")
    payments = [p for p in document.get("_payments") or []]
    paid = sum((Decimal(str(p["Amount"])) for p in payments), Decimal("0.00"))
    total = Decimal(str(document.get("Total", "0")))
    open_amount = total - paid if status in ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID") else Decimal("0.00")

    facts = [
        ("Type", kind),
        ("Number", number),
        ("Reference", document.get("Reference") or ""),
        ("Contact", (contact or {}).get("Name", "")),
        ("Status", f"{STATUS_WORDS.get(status, status)} ({status})"),
        ("Date", _day(document.get("Date"))),
    ]
    if document.get("DueDate"):
        facts.append(("Due date", _day(document.get("DueDate"))))
    facts.append(("Amounts are", AMOUNTS_ARE.get(document.get("LineAmountTypes", ""), document.get("LineAmountTypes", ""))))
    fact_ids = {"Number": "number", "Contact": "contact", "Status": "status", "Date": "date", "Reference": "reference"}
    fact_rows = "".join(
        f'<tr><th>{_e(label)}</th><td id="{fact_ids.get(label, label.lower().replace(" ", "-"))}"'
        f'{" class=status" if label == "Status" else ""}>{_e(value)}</td></tr>'
        for label, value in facts
    )

    line_rows = []
    for line in document.get("LineItems", []):
        code = line.get("AccountCode") or ""
        account_name = account_names.get(line.get("AccountID") or "") or account_names.get(code, "")
        account = f"{code} {account_name}".strip()
        tracking = ", ".join(f"{t.get('Name')}: {t.get('Option')}" for t in line.get("Tracking") or [])
        line_rows.append(
            "<tr>"
            f"<td>{_e(line.get('Description'))}</td>"
            f'<td class="money">{_e(_quantity(line.get("Quantity")))}</td>'
            f'<td class="money">{_e(money(line.get("UnitAmount")))}</td>'
            f"<td>{_e(account)}</td>"
            f"<td>{_e(line.get('TaxType'))}</td>"
            f"<td>{_e(tracking)}</td>"
            f'<td class="money">{_e(money(line.get("TaxAmount")))}</td>'
            f'<td class="money">{_e(money(line.get("LineAmount")))}</td>'
            "</tr>"
        )
    lines = "".join(line_rows) or '<tr><td colspan="8" class="note">No lines.</td></tr>'

    totals = [
        ("Subtotal", document.get("SubTotal"), "subtotal"),
        ("Total GST", document.get("TotalTax"), "total-tax"),
        (f"Total {currency}", total, "total"),
    ]
    if collection == "Invoices":
        totals += [("Paid", paid, "paid"), ("Amount due", open_amount, "amount-due")]
    else:
        totals += [("Refunded", paid, "paid"), ("Remaining credit", open_amount, "remaining-credit")]
    total_rows = "".join(
        f'<tr><th>{_e(label)}</th><td class="money" id="{key}">{_e(money(value))}</td></tr>' for label, value, key in totals
    )

    payment_rows = "".join(
        f'<tr><td>{_e(_day(p.get("Date")))}</td><td>{_e(p.get("Reference"))}</td>'
        f'<td class="money">{_e(money(p.get("Amount")))}</td></tr>'
        for p in payments
    )
    payments_part = (
        f'<h2>Payments</h2><table class="lines"><tr><th>Date</th><th>Reference</th><th class="money">Amount</th></tr>{payment_rows}</table>'
        if payments else ""
    )
    url = document.get("Url") or ""
    source = (
        f'<p>Source: <a id="source" href="{_e(url)}">{_e(url)}</a></p>' if url.startswith(("http://", "https://"))
        else (f'<p>Source: <span id="source">{_e(url)}</span></p>' if url else "")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(kind)} {_e(number)} · {_e(organisation_name)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{_e(kind)} {_e(number)}</h1>
<p class="organisation">{_e(organisation_name)} · Xero sandbox · {_e(id_field)} <code>{_e(document.get(id_field))}</code></p>
<table class="facts">{fact_rows}</table>
<table class="lines">
<tr><th>Description</th><th class="money">Qty</th><th class="money">Price</th><th>Account</th><th>Tax type</th><th>Tracking</th><th class="money">GST</th><th class="money">Amount {_e(currency)}</th></tr>
{lines}
</table>
<table class="totals">{total_rows}</table>
{payments_part}
{source}
<p class="note">A read-only page of the local Xero sandbox, standing in for the document's page in Xero.</p>
</body></html>"""


def not_found_page(document_id: str) -> str:
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Xero sandbox: not found</title></head>"
        f"<body><h1>No such document</h1><p>The sandbox holds no invoice or credit note {_e(document_id)}.</p></body></html>"
    )


def deep_link_target(path: str, query: dict[str, str]) -> tuple[str | None, str | None]:
    """(document id, organisation short code or None) named by one of Xero's deep links: the
    organisation login form (shortcode, redirecturl) or a document page itself
    (/AccountsReceivable/View.aspx?InvoiceID=…, /AccountsPayable/ViewCreditNote.aspx?creditNoteID=…)."""
    short_code = None
    if path.rstrip("/").lower() == "/organisationlogin/default.aspx":
        short_code = (query.get("shortcode") or "").lstrip("!") or None
        target = urlsplit(query.get("redirecturl") or "")
        path, query = target.path, dict(parse_qsl(target.query))
    names = {key.lower(): value for key, value in query.items()}
    if path.lower().startswith(("/accountsreceivable/", "/accountspayable/")):
        return (names.get("invoiceid") or names.get("creditnoteid") or "").strip().lower() or None, short_code
    return None, short_code
