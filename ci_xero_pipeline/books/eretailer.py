"""E-Retailer invoices as Xero documents, in Summary or Detail mode.

Every line carries CI's own GST-inclusive amount (`LineAmount`) and, as its `TaxAmount`, exactly the
tax Xero computes for it (round_half_up(LineAmount × rate / (100 + rate)) at the rate of its gst_code,
EretailerRules.gst_rates; 0 at a zero rate), never an override that leans on Xero's tolerance. Where
CI's own GST differs (CI rounds per unit; a Summary line sums CI's per-line GST), the difference goes on
a labelled pair of GST adjustment lines on the same account and tracking: one at the rated tax type
whose amount `a` carries exactly the difference as its own tax, one of −a at the exempt tax type
(rules.exempt_tax_type) with no tax. So each document's Total is CI's total and its TotalTax CI's GST,
to the cent, and Xero agrees with every line.

Summary: one ACCREC invoice per day (or per branch and day), lines grouped by Xero account × tax type ×
branch option; a day whose credits outweigh its sales becomes a credit note; a day whose sales and
refunds cancel line for line (nothing left to post) gets no document at all (`excluded_by_rule` lists
it), while a day with lines left but a 0.00 total gets a 0.00 invoice. Detail: one document per CI
document, CI's number as Xero's; CI credits become ACCRECCREDIT credit notes. A CI document whose lines
are all 0.00 (a free item) is posted as a 0.00 document with those lines: Xero accepts it (an AUTHORISED
0.00 invoice becomes PAID at once); only a document with no lines is refused, and validation
quarantines a CI document without lines before it gets here.

Nothing is changed without a word: build_eretailer_documents_with_notices returns, beside the
documents, a notices frame (NOTICE_COLUMNS) naming each description cut to Xero's 4,000 characters,
each branch option name cut to Xero's 50 (a cut name always ends in its branch code, so two long names
never meet in one option) or renamed because two branches would share it, each document left out
because its number was given twice, and each line left out because its document was not given.

Only accounting content (amounts, tax, accounts, tax types, tracking, quantities and unit amounts)
goes into the totals: `total_cents`/`tax_cents` come from CI's figures and equal Σ LineAmount and
Σ TaxAmount of the payload; Description, Reference and DueDate are presentation and compute nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..bulk import cycle_collector_paused
from .rules import EretailerRules
from .schemas import NOTICE_COLUMNS, amounts_for_tax, combined_notices, empty_notices, notices_frame, rate_ratio, xero_tax_cents

DOCUMENT_COLUMNS = [
    "document_key", "business_date", "branch_code", "endpoint", "document_type", "number", "reference",
    "contact_name", "status", "total_cents", "tax_cents", "line_count", "ci_invoice_nos", "payload",
]
DESCRIPTION_LIMIT = 4000  # Xero's limit on a line description
OPTION_LIMIT = 50  # Xero's limit on a tracking option name
NAME_LIMIT = 255  # contact names, references and numbers

GST_LABELS = {"Z": "zero-rated", "E": "exempt"}  # a rated code is labelled with its rate: "GST 15%"
EXCLUDED_COLUMNS = ["business_date", "branch_code", "invoice_nos", "total_cents", "tax_cents", "reason"]
ZERO_NET_DAY = "the day's E-Retailer sales and refunds net to zero: no document"
ADJUSTMENT = "GST adjustment to CI's GST"


class Decimals:
    """Decimal objects shared between equal amounts: a million lines repeat few distinct values."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], Decimal] = {}

    def __call__(self, value: int, places: int = 2) -> Decimal:
        key = (value, places)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = Decimal(value).scaleb(-places)
        return found


def _due_date(day: str, rules: EretailerRules) -> str:
    return (date.fromisoformat(day) + timedelta(days=rules.due_days)).isoformat()


class Notices:
    """The notices of one build (NOTICE_COLUMNS frames)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, business_date, invoice_no, line_no, kind: str, message) -> None:
        part = notices_frame(business_date, invoice_no, line_no, kind, message)
        if len(part):
            self.parts.append(part)

    def frame(self) -> pd.DataFrame:
        return combined_notices(self.parts)


def _with_code(name: str, code: Any) -> str:
    """The name, cut so that ' (CODE)' fits after it within OPTION_LIMIT characters."""
    suffix = f" ({code})"
    if len(suffix) >= OPTION_LIMIT // 2:
        suffix = f" ({str(code)[:OPTION_LIMIT // 2 - 3]})"
    return name[: OPTION_LIMIT - len(suffix)].rstrip() + suffix


def branch_options_of(invoices: pd.DataFrame, rules: EretailerRules, notices: Notices | None = None) -> pd.Series:
    """Each document's tracking option: the site's mapping, else the branch's name in CI, within
    Xero's 50 characters. Never two branches in one option unless the site maps them so: a name
    longer than 50 is cut and ends in its branch code ('Name … (CODE)', the same whichever branches a
    run holds), and a name another branch of the documents also has (two CI branches of one name, or a
    CI name equal to a mapped one) ends in its branch code too. Each cut or rename is a notice, per
    day and branch. Worked out once per distinct branch."""
    codes = invoices["branch_code"].to_numpy(dtype=object)
    names = invoices["branch_name"].to_numpy(dtype=object)
    code_ids, _ = pd.factorize(codes, use_na_sentinel=True)
    name_ids, name_values = pd.factorize(names, use_na_sentinel=True)
    pair_ids, pairs = pd.factorize(code_ids.astype(np.int64) * (len(name_values) + 1) + (name_ids + 1))
    first = np.zeros(len(pairs), dtype=np.int64)
    first[pair_ids[::-1]] = np.arange(len(pair_ids))[::-1]  # each pair's first row
    mapping = dict(rules.tracking_options)
    full, option, configured, pair_codes = [], [], [], []
    for row in first.tolist():
        code, name = codes[row], names[row]
        mapped = mapping.get(code) if isinstance(code, str) else None
        text = str(mapped if mapped is not None else name)
        full.append(text)
        configured.append(mapped is not None)
        pair_codes.append(code)
        option.append(_with_code(text, code) if len(text) > OPTION_LIMIT else text)
    cut = [len(text) > OPTION_LIMIT for text in full]
    renamed = [False] * len(option)
    for _ in range(3):  # a renamed option could (in theory) meet another: look again
        users: dict[str, set] = {}
        for number, name in enumerate(option):
            users.setdefault(name, set()).add(pair_codes[number])
        clashing = [
            number for number, name in enumerate(option)
            if len(users[name]) > 1 and not configured[number] and not (cut[number] or renamed[number])
        ]
        if not clashing:
            break
        for number in clashing:
            option[number] = _with_code(full[number], pair_codes[number])
            renamed[number] = True
    users = {}
    for number, name in enumerate(option):
        users.setdefault(name, set()).add(pair_codes[number])
    for number, name in enumerate(option):  # still shared (never seen): a counter keeps them apart
        others = sorted(str(code) for code in users[name] if code != pair_codes[number])
        if others and not configured[number]:
            option[number] = _with_code(full[number], f"{pair_codes[number]}-{number}")
            renamed[number] = True
    options = np.array(option, dtype=object)[pair_ids]
    if notices is not None and (any(cut) or any(renamed)):
        for number in range(len(option)):
            if not (cut[number] or renamed[number]):
                continue
            rows = np.flatnonzero(pair_ids == number)
            days = sorted(set(invoices["business_date"].to_numpy(dtype=object)[rows].tolist()))
            code = pair_codes[number]
            if cut[number]:
                kind = "option_cut"
                message = (f"branch {code}: the tracking option name '{full[number]}' has {len(full[number])} characters, "
                           f"more than Xero's {OPTION_LIMIT}: the option is '{option[number]}'")
            else:
                kind = "option_renamed"
                message = (f"branch {code}: the tracking option name '{full[number]}' is another branch's too: "
                           f"the option is '{option[number]}', so that the branches stay apart")
            notices.add(days, None, [None] * len(days), kind, [message] * len(days))
    return pd.Series(options, index=invoices.index, dtype=object)


def _empty_documents() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in DOCUMENT_COLUMNS})
    for column in ("total_cents", "tax_cents", "line_count"):
        frame[column] = frame[column].astype("int64")
    return frame


def gst_label(code: str, rules: EretailerRules) -> str:
    rate = rules.gst_rates.get(code)
    if rate is not None and rate_ratio(rate)[0] != 0:
        return f"GST {format(Decimal(str(rate)).normalize(), 'f')}%"
    return GST_LABELS.get(code, code)


def _xero_line_tax(amount_cents: np.ndarray, gst_codes: np.ndarray, rules: EretailerRules) -> np.ndarray:
    """Xero's own tax of each GST-inclusive line amount, at the rate of the line's gst_code."""
    return xero_tax_cents(amount_cents, gst_codes, rules.gst_rates, "EretailerRules.gst_rates")


def gst_adjustments(
    ci_tax: np.ndarray, line_tax: np.ndarray, gst_codes: list, accounts: list, trackings: list,
    rules: EretailerRules, number: Decimals,
) -> list[list[dict[str, Any]]]:
    """For each group of lines whose CI GST (ci_tax, cents) differs from the sum of Xero's per-line tax
    (line_tax), the pair of lines that moves the difference d into the document's tax without touching
    its total: amount a at the group's rated tax type, whose own tax is exactly d (TaxAmount d), and −a
    at the exempt tax type (TaxAmount 0), both on the group's account and tracking."""
    ci_tax = np.asarray(ci_tax, dtype=np.int64)
    line_tax = np.asarray(line_tax, dtype=np.int64)
    difference = ci_tax - line_tax
    amount = np.zeros(len(difference), dtype=np.int64)
    codes = np.asarray(gst_codes, dtype=object)
    for code in sorted(set(codes.tolist())):
        rows = np.flatnonzero(codes == code)
        rate = rules.gst_rates[code]
        if rate_ratio(rate)[0] == 0:
            raise ValueError(f"lines of gst_code {code} (no GST) carry GST in CI: validation lets none through")
        amount[rows] = amounts_for_tax(difference[rows], rate)
    if rate_ratio(rules.gst_rates.get("E", 0))[0] != 0:
        raise ValueError("the exempt gst_code E has a GST rate: a GST adjustment needs a tax type without GST")
    exempt = rules.exempt_tax_type
    one, nothing = number(1, 0), number(0)
    tax_type_of = {code: rules.tax_types[code] for code in set(codes.tolist())}
    balancing = f"{ADJUSTMENT}: the balancing amount, without GST"
    if len(difference) == 0:
        return []
    # Decimals made once per distinct value (a Detail backfill may carry many pairs)
    figures = _decimals(np.concatenate([ci_tax, line_tax, amount, -amount, difference]), 2)
    count = len(difference)
    ci_d, own_d, size_d, minus_d, tax_d = (figures[start * count:(start + 1) * count] for start in range(5))
    return [
        [
            {
                "Description": f"{ADJUSTMENT} (CI {ci}, per-line {own})",
                "Quantity": one, "UnitAmount": size, "LineAmount": size, "TaxAmount": tax,
                "AccountCode": account, "TaxType": tax_type_of[code], "Tracking": tracking,
            },
            {
                "Description": balancing,
                "Quantity": one, "UnitAmount": minus, "LineAmount": minus, "TaxAmount": nothing,
                "AccountCode": account, "TaxType": exempt, "Tracking": tracking,
            },
        ]
        for ci, own, size, minus, tax, code, account, tracking in zip(
            ci_d, own_d, size_d, minus_d, tax_d, codes.tolist(), accounts, trackings
        )
    ]


def build_eretailer_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    """The Xero documents for validated FINAL E-Retailer documents, one row each (DOCUMENT_COLUMNS).
    (build_eretailer_documents_with_notices: the same, and what was cut or left out.)"""
    return build_eretailer_documents_with_notices(invoices, lines, rules)[0]


def build_eretailer_documents_with_notices(
    invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Xero documents (DOCUMENT_COLUMNS) and the notices of the build (NOTICE_COLUMNS: kind
    description_cut, option_cut, option_renamed, duplicate_header, orphan_line)."""
    notices = Notices()
    invoices, lines = _one_row_per_number(invoices, lines, notices)
    if invoices.empty:
        _orphans(lines, np.ones(len(lines), dtype=bool), notices)
        return _empty_documents(), notices.frame()
    with cycle_collector_paused(promote_survivors=True):
        if rules.mode == "summary":
            documents = _summary_documents(invoices, lines, rules, notices)
        else:
            documents = _detail_documents(invoices, lines, rules, notices)
    if _in_order(documents["business_date"], documents["document_key"]) and list(documents.columns) == DOCUMENT_COLUMNS:
        return documents, notices.frame()  # what the sort below would give (Detail documents usually come in this order)
    return documents.sort_values(["business_date", "document_key"]).reset_index(drop=True)[DOCUMENT_COLUMNS], notices.frame()


def _one_row_per_number(invoices: pd.DataFrame, lines: pd.DataFrame, notices: Notices) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The documents without any whose number is given more than once (and without those documents'
    lines): which row is CI's cannot be told, and a summed or shared document would post the money
    twice. Validation quarantines such a document before it gets here; each left out is a notice."""
    numbers = invoices["invoice_no"]
    if numbers.is_unique:
        return invoices, lines
    repeated = numbers.duplicated(keep=False).to_numpy(dtype=bool)
    left_out = invoices[repeated].drop_duplicates("invoice_no")
    counts = numbers[repeated].value_counts()
    notices.add(
        left_out["business_date"], left_out["invoice_no"], [None] * len(left_out), "duplicate_header",
        [f"{number}: given {counts[number]} times as one document: no Xero document is made of it" for number in left_out["invoice_no"]],
    )
    dropped = set(left_out["invoice_no"])
    keep_lines = ~lines["invoice_no"].isin(dropped).to_numpy(dtype=bool)
    return invoices[~repeated].reset_index(drop=True), lines[keep_lines].reset_index(drop=True)


def _orphans(lines: pd.DataFrame, orphan: np.ndarray, notices: Notices) -> None:
    """A notice for each line left out because its document was not given."""
    if not orphan.any():
        return
    rows = lines[orphan]
    days = rows["business_date"] if "business_date" in rows.columns else [None] * len(rows)
    notices.add(
        days, rows["invoice_no"], rows["line_no"], "orphan_line",
        (rows["invoice_no"].astype(str) + " line " + rows["line_no"].astype(str)
         + ": its document is not among the documents given: the line is left out").tolist(),
    )


def _in_order(days: pd.Series, keys: pd.Series) -> bool:
    """Whether the rows are strictly ascending by (day, key), all of them text and the index 0..n-1."""
    index = days.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None):
        return False
    day, key = days.to_numpy(), keys.to_numpy()
    if len(day) == 0:
        return True
    if pd.api.types.infer_dtype(day, skipna=False) != "string" or pd.api.types.infer_dtype(key, skipna=False) != "string":
        return False
    later_day = day[1:] > day[:-1]
    same_day = day[1:] == day[:-1]
    return bool(np.all(later_day | (same_day & (key[1:] > key[:-1]))))


# -- Summary mode ------------------------------------------------------------------------------

def _summary_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules, notices: Notices) -> pd.DataFrame:
    by_branch = rules.summary_grouping == "branch_day"
    documents_of = pd.DataFrame(  # the columns used below (not a copy of every column)
        {
            "invoice_no": invoices["invoice_no"],
            "doc_type": invoices["doc_type"],
            "business_date": invoices["business_date"],
            "branch_code": invoices["branch_code"],
            "option": branch_options_of(invoices, rules, notices),
        }
    )
    columns = ["invoice_no", "analysis_code", "gst_code", "line_total_incl_cents", "line_gst_cents"]
    lines = _with_documents(
        lines[columns + [name for name in ("business_date", "line_no") if name in lines.columns]],
        documents_of[["invoice_no", "business_date", "branch_code", "option"]],
        notices,
    )
    lines["account_code"] = lines["analysis_code"].map(dict(rules.sales_accounts))
    lines["tax_type"] = lines["gst_code"].map(dict(rules.tax_types))
    document_keys = ["business_date", "branch_code"] if by_branch else ["business_date"]
    line_keys = ["account_code", "tax_type", "option", "gst_code"]
    grouped = (
        lines.groupby(document_keys + line_keys, sort=True, dropna=False)
        .agg(
            amount=("line_total_incl_cents", "sum"),
            tax=("line_gst_cents", "sum"),
            codes=("analysis_code", lambda codes: ", ".join(sorted(set(codes)))),
        )
        .reset_index()
    )
    ci_numbers = documents_of.groupby(document_keys, sort=True).agg(
        ci_invoice_nos=("invoice_no", lambda numbers: tuple(sorted(numbers))),
        invoices=("doc_type", lambda types: int((types == "INVOICE").sum())),
        credits=("doc_type", lambda types: int((types == "CREDIT").sum())),
    )
    grouped["line_tax"] = _xero_line_tax(grouped["amount"].to_numpy(dtype=np.int64), grouped["gst_code"].to_numpy(), rules)
    number = Decimals()
    rows = []
    for keys, group in grouped.groupby(document_keys, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        day = keys[0]
        branch = keys[1] if by_branch else None
        info = ci_numbers.loc[keys if by_branch else day]
        total, tax = int(group["amount"].sum()), int(group["tax"].sum())
        sign = -1 if total < 0 else 1  # credits outweigh sales: a credit note for the net amount
        compact_day = day.replace("-", "")
        document_number = f"{rules.number_prefix}{compact_day}" + (f"-{branch}" if branch else "")
        items = []
        differing: list[tuple[int, int, str, str, list]] = []  # (CI tax, Xero's tax, code, account, tracking)
        for line in group.itertuples(index=False):
            amount, ci_tax, line_tax = sign * int(line.amount), sign * int(line.tax), sign * int(line.line_tax)
            tracking = [{"Name": rules.tracking_category, "Option": line.option}]
            if amount != 0:  # (a line of 0.00 has no tax of its own; CI's GST on it, if any, moves below)
                description = f"E-Retailer sales {day}: {line.codes} ({gst_label(line.gst_code, rules)}), {line.option}"
                if len(description) > DESCRIPTION_LIMIT:
                    notices.add(
                        [day], None, [None], "description_cut",
                        [f"{document_number}: the description of a summary line ({line.account_code}, {line.tax_type}, "
                         f"{line.option}) has {len(description):,} characters, cut to Xero's {DESCRIPTION_LIMIT:,}"],
                    )
                    description = description[:DESCRIPTION_LIMIT]
                items.append(
                    {
                        "Description": description,
                        "Quantity": number(1, 0),
                        "UnitAmount": number(amount),
                        "LineAmount": number(amount),
                        "TaxAmount": number(line_tax),
                        "AccountCode": line.account_code,
                        "TaxType": line.tax_type,
                        "Tracking": tracking,
                    }
                )
            if ci_tax != line_tax:
                differing.append((ci_tax, line_tax, line.gst_code, line.account_code, tracking))
        if differing:
            ci_taxes, line_taxes, codes, accounts, trackings = (list(column) for column in zip(*differing))
            items.extend(chain.from_iterable(gst_adjustments(ci_taxes, line_taxes, codes, accounts, trackings, rules, number)))
        if not items:
            continue  # sales and refunds cancel line for line: nothing to post (see excluded_by_rule)
        reference = f"CI E-Retailer {day}: {info.invoices} invoices, {info.credits} credits"
        if branch:
            reference += f", branch {branch}"
        endpoint = "CreditNotes" if sign < 0 else "Invoices"
        payload: dict[str, Any] = {
            "Type": "ACCRECCREDIT" if sign < 0 else "ACCREC",
            ("CreditNoteNumber" if sign < 0 else "InvoiceNumber"): document_number,
            "Reference": reference,
            "Contact": {"Name": rules.summary_contact_name},
            "Date": day,
            "Status": rules.status,
            "LineAmountTypes": "Inclusive",
            "CurrencyCode": rules.currency_code,
            "LineItems": items,
        }
        if sign > 0:
            payload["DueDate"] = _due_date(day, rules)
        rows.append(
            {
                "document_key": f"eretailer/summary/{day}" + (f"/{branch}" if branch else ""),
                "business_date": day,
                "branch_code": branch,
                "endpoint": endpoint,
                "document_type": payload["Type"],
                "number": document_number,
                "reference": reference,
                "contact_name": rules.summary_contact_name,
                "status": rules.status,
                "total_cents": sign * total,
                "tax_cents": sign * tax,
                "line_count": len(items),
                "ci_invoice_nos": info.ci_invoice_nos,
                "payload": payload,
            }
        )
    return pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)


def _with_documents(lines: pd.DataFrame, documents: pd.DataFrame, notices: Notices | None = None) -> pd.DataFrame:
    """lines.merge(documents, on="invoice_no", how="inner"), by position when every document number
    is a distinct str (no hashing of a million keys into a join table, no copies of the result). The
    rows come in the lines' order, as the merge gives them; the caller only groups them anyway. A line
    without its document is left out, with a notice."""
    numbers = documents["invoice_no"].to_numpy()
    line_numbers = lines["invoice_no"].to_numpy()
    position = {number: row for row, number in enumerate(numbers.tolist())}
    if (
        len(position) < len(numbers)
        or pd.api.types.infer_dtype(numbers, skipna=False) != "string"
        or (len(line_numbers) and pd.api.types.infer_dtype(line_numbers, skipna=False) != "string")
    ):
        if notices is not None:
            _orphans(lines, ~lines["invoice_no"].isin(documents["invoice_no"]).to_numpy(dtype=bool), notices)
        return lines.merge(documents.drop(columns=[c for c in documents.columns if c != "invoice_no" and c in lines.columns]),
                           on="invoice_no", how="inner")
    document = _document_rows(position, line_numbers)
    found = document >= 0
    if not found.all():
        if notices is not None:
            _orphans(lines, ~found, notices)
        lines, document = lines[found], document[found]
    merged = {name: lines[name].array for name in lines.columns}
    for name in documents.columns:
        if name != "invoice_no":
            merged[name] = documents[name].to_numpy()[document]
    return pd.DataFrame(merged, copy=False)


def _document_rows(position: dict, line_numbers: np.ndarray) -> np.ndarray:
    """position.get(number, -1) for each line's number, looked up once per run of equal numbers (a
    document's lines come together)."""
    count = len(line_numbers)
    if count == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], np.asarray(line_numbers[1:] != line_numbers[:-1], dtype=bool))))
    found = np.fromiter(map(position.get, line_numbers[starts].tolist(), [-1] * len(starts)), dtype=np.int64, count=len(starts))
    return np.repeat(found, np.diff(np.append(starts, count)))


# -- Detail mode -------------------------------------------------------------------------------

def _contact(customer_name: Any, customer_code: Any, customer_email: Any, rules: EretailerRules) -> dict[str, str]:
    """The web customer as a Xero contact (found by ContactNumber or name, else created), or the
    site's default contact."""
    name = customer_name if isinstance(customer_name, str) and customer_name.strip() else None
    if rules.contact_strategy == "default" or name is None:
        return {"Name": rules.default_contact_name}
    code = customer_code if isinstance(customer_code, str) else ""
    email = customer_email if isinstance(customer_email, str) else ""
    shown = rules.contact_name_format.format(customer_name=name.strip(), customer_code=code, customer_email=email)
    contact = {"Name": shown.replace(" []", "").strip()[:NAME_LIMIT]}
    if code:
        contact["ContactNumber"] = code[:50]
    if email:
        contact["EmailAddress"] = email
    return contact


def _contacts(invoices: pd.DataFrame, rules: EretailerRules) -> list[dict[str, str]]:
    """Each document's contact (a dict of its own), worked out once per customer: web customers buy
    again and again."""
    if rules.contact_strategy == "default":
        return [{"Name": rules.default_contact_name} for _ in range(len(invoices))]
    columns = [invoices[name].to_numpy() for name in ("customer_name", "customer_code", "customer_email")]
    customer = np.zeros(len(invoices), dtype=np.int64)
    for values in columns:  # one number per distinct (name, code, email); every null is one value
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        customer, _ = pd.factorize(customer * (len(uniques) + 1) + (codes + 1))
    _, first = np.unique(customer, return_index=True)
    made = [_contact(*(values[row] for values in columns), rules) for row in first.tolist()]
    return [dict(made[number]) for number in customer.tolist()]


def _cents_of(units_1e7: int) -> int:
    """10⁻⁷ units (quantity × unit price) to cents, half away from zero as CI rounds."""
    magnitude = (abs(units_1e7) + 50_000) // 100_000
    return magnitude if units_1e7 >= 0 else -magnitude


def _credit_pricing(units: int, amount: int) -> tuple[int, int, int]:
    """Quantity (10⁻³) and unit amount (10⁻⁴) for a line of `amount` cents that cannot show a discount:
    a discounted credit-note line (Xero takes no discount on credit notes; the amount is the credit's
    positive amount, |quantity| × price − discount rounded, under the contract), or a discounted line of
    negative quantity on an invoice. Xero computes LineAmount as round(Quantity × UnitAmount), half away
    from zero: the line's own quantity `units` (10⁻³) and a unit amount derived from the amount if it
    multiplies back to it exactly, else quantity 1 of the whole amount."""
    if units:
        derived = int((Decimal(amount) * 100_000 / units).to_integral_value())  # 10⁻⁴
        if _cents_of(units * derived) == amount:
            return units, derived, amount
    return 1000, amount * 100, amount


def _integers(column: pd.Series) -> np.ndarray:
    """An integer column as int64 (a null raises: validation lets none through)."""
    return column.to_numpy(dtype=np.int64)


def _decimals(values: np.ndarray, places: int) -> list[Decimal]:
    """Decimal(value).scaleb(-places) for every value, made once per distinct value: a million amounts
    repeat a few thousand values."""
    codes, uniques = pd.factorize(values)
    made = np.empty(len(uniques), dtype=object)
    made[:] = [Decimal(value).scaleb(-places) for value in uniques.tolist()]
    return made[codes].tolist()


def _mapped(values: pd.Series, mapping: dict[str, Any]) -> list:
    """mapping[value] for every value, looked up once per distinct value (KeyError when one is missing)."""
    codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=False)
    found = np.empty(len(uniques), dtype=object)
    found[:] = [mapping[value] for value in uniques.tolist()]
    return found[codes].tolist()


def _detail_line_items(
    lines: pd.DataFrame, credit_line: np.ndarray, options: list[str], rules: EretailerRules, notices: Notices | None = None
) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """The Xero line of every CI line, in order (`options` is each line's tracking option), with CI's
    GST of each line and Xero's own tax of it (the line's TaxAmount), in cents as shown (positive on a
    credit note)."""
    count = len(lines)
    quantity = _integers(lines["quantity_x1000"])
    price = _integers(lines["unit_price_incl_x10000"])
    discount = _integers(lines["discount_incl_cents"])
    amount = _integers(lines["line_total_incl_cents"])
    tax = _integers(lines["line_gst_cents"])

    # invoices: CI's own figures; credit notes: positive amounts, and no discount (see _credit_pricing);
    # an undiscounted line keeps CI's own price.
    # A discounted line of negative quantity on an invoice is priced without the discount too: Xero's
    # Quantity × UnitAmount − DiscountAmount would grow it, where CI's discount shrinks it.
    shown_quantity = np.where(credit_line, -quantity, quantity)
    shown_price = price.copy()
    shown_amount = np.where(credit_line, -amount, amount)
    shown_tax = np.where(credit_line, -tax, tax)  # CI's GST
    discounted = discount != 0
    repriced = discounted & (credit_line | (quantity < 0))
    for row in np.flatnonzero(repriced).tolist():
        shown_quantity[row], shown_price[row], shown_amount[row] = _credit_pricing(
            int(shown_quantity[row]), int(shown_amount[row])
        )
    line_tax = _xero_line_tax(shown_amount, lines["gst_code"].to_numpy(), rules)  # Xero's own, per line
    shows_discount = discounted & ~repriced
    discounts: list[Decimal | None] = [None] * count
    if shows_discount.any():
        rows = np.flatnonzero(shows_discount)
        for row, value in zip(rows.tolist(), _decimals(discount[rows], 2)):
            discounts[row] = value

    tracking_of: dict[str, list[dict[str, str]]] = {}
    for option in set(options):
        tracking_of[option] = [{"Name": rules.tracking_category, "Option": option}]
    # the description, else the SKU, else the analysis code; judged once per distinct description
    codes, descriptions = pd.factorize(lines["description"].to_numpy(), use_na_sentinel=True)
    usable = np.empty(len(descriptions) + 1, dtype=object)  # code -1 (null) takes the last: None
    usable[:] = [
        description[:DESCRIPTION_LIMIT] if isinstance(description, str) and description.strip() else None
        for description in descriptions.tolist()
    ] + [None]
    texts = usable[codes].tolist()
    long_descriptions = [
        number for number, description in enumerate(descriptions.tolist())
        if isinstance(description, str) and len(description) > DESCRIPTION_LIMIT and description.strip()
    ]
    if long_descriptions and notices is not None:  # (rare: the contract's description is 200 characters)
        rows = np.flatnonzero(np.isin(codes, long_descriptions))
        lengths = [len(descriptions[code]) for code in codes[rows].tolist()]
        cut = lines.iloc[rows]
        notices.add(
            cut["business_date"] if "business_date" in cut.columns else [None] * len(cut), cut["invoice_no"], cut["line_no"],
            "description_cut",
            [f"{number} line {line_no}: the description has {length:,} characters, cut to Xero's {DESCRIPTION_LIMIT:,}"
             for number, line_no, length in zip(cut["invoice_no"].tolist(), cut["line_no"].tolist(), lengths)],
        )
    blank = [row for row, text in enumerate(texts) if text is None]
    if blank:
        skus, analysis_codes = lines["sku"].to_numpy(), lines["analysis_code"].to_numpy()
        for row in blank:
            sku = skus[row]
            text = sku if isinstance(sku, str) else analysis_codes[row]
            if len(text) > DESCRIPTION_LIMIT and notices is not None:
                notices.add(
                    [lines["business_date"].iat[row] if "business_date" in lines.columns else None],
                    [lines["invoice_no"].iat[row]], [lines["line_no"].iat[row]], "description_cut",
                    [f"{lines['invoice_no'].iat[row]} line {lines['line_no'].iat[row]}: the line has no description; "
                     f"its {'SKU' if isinstance(sku, str) else 'analysis code'} of {len(text):,} characters, shown instead, "
                     f"is cut to Xero's {DESCRIPTION_LIMIT:,}"],
                )
            texts[row] = text[:DESCRIPTION_LIMIT]
    columns = (
        texts,
        _decimals(shown_quantity, 3),
        _decimals(shown_price, 4),
        discounts,
        _decimals(shown_amount, 2),
        _decimals(line_tax, 2),
        _mapped(lines["analysis_code"], dict(rules.sales_accounts)),
        _mapped(lines["gst_code"], dict(rules.tax_types)),
        [tracking_of[option] for option in options],
    )
    items = [
        {
            "Description": text, "Quantity": units, "UnitAmount": unit_amount, "LineAmount": line_amount,
            "TaxAmount": line_tax, "AccountCode": account, "TaxType": tax_type, "Tracking": tracking,
        }
        if discount_amount is None
        else {
            "Description": text, "Quantity": units, "UnitAmount": unit_amount, "DiscountAmount": discount_amount,
            "LineAmount": line_amount, "TaxAmount": line_tax, "AccountCode": account, "TaxType": tax_type, "Tracking": tracking,
        }
        for text, units, unit_amount, discount_amount, line_amount, line_tax, account, tax_type, tracking in zip(*columns)
    ]
    return items, shown_tax, line_tax


def _detail_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules, notices: Notices | None = None) -> pd.DataFrame:
    notices = notices if notices is not None else Notices()
    numbers = invoices["invoice_no"].tolist()
    credit = (invoices["doc_type"] == "CREDIT").to_numpy(dtype=bool)
    options = branch_options_of(invoices, rules, notices).tolist()
    position = {number: row for row, number in enumerate(numbers)}  # a repeated number: its last row

    # each line's document (a line of a document not given is left out, with a notice); the lines of a
    # document come together, so only the first of each run is looked up
    document = _document_rows(position, lines["invoice_no"].to_numpy())
    if len(document) and (document < 0).any():
        _orphans(lines, document < 0, notices)
        lines, document = lines[document >= 0].reset_index(drop=True), document[document >= 0]
    line_options = np.array(options, dtype=object)[document].tolist() if len(document) else []
    items, ci_tax, line_tax = _detail_line_items(lines, credit[document], line_options, rules, notices)
    adjustments = _detail_adjustments(lines, document, ci_tax, line_tax, options, rules)

    # the lines of each document, in their order
    if len(document) and not np.all(document[1:] >= document[:-1]):
        order = np.argsort(document, kind="stable")
        items = [items[row] for row in order.tolist()]
        document = document[order]
    bounds = np.searchsorted(document, np.arange(len(numbers) + 1)).tolist()
    items_of = [items[bounds[row]:bounds[row + 1]] for row in range(len(numbers))]
    for row, pairs in adjustments.items():
        items_of[row].extend(chain.from_iterable(pairs))
    if len(position) < len(numbers):
        items_of = [items_of[position[number]] for number in numbers]  # a repeated number shares its lines

    status, currency = rules.status, rules.currency_code
    contacts = _contacts(invoices, rules)
    days = invoices["business_date"].tolist()
    due_of = {}  # invoices only (credit notes have no due date); few distinct days
    for day in {day for day, is_credit in zip(days, credit.tolist()) if not is_credit}:
        due_of[day] = _due_date(day, rules)
    references = [
        (f"{order_ref if isinstance(order_ref, str) else ''} credit for {original}".strip()
         if is_credit and isinstance(original, str) else (order_ref if isinstance(order_ref, str) else ""))[:NAME_LIMIT]
        for is_credit, order_ref, original in zip(
            credit.tolist(), invoices["order_ref"].tolist(), invoices["original_invoice_no"].tolist()
        )
    ]
    payloads = [
        {
            "Type": "ACCRECCREDIT", "CreditNoteNumber": number, "Reference": reference, "Contact": contact,
            "Date": day, "Status": status, "LineAmountTypes": "Inclusive", "CurrencyCode": currency,
            "LineItems": line_items,
        }
        if is_credit
        else {
            "Type": "ACCREC", "InvoiceNumber": number, "Reference": reference, "Contact": contact,
            "Date": day, "Status": status, "LineAmountTypes": "Inclusive", "CurrencyCode": currency,
            "LineItems": line_items, "DueDate": due_of[day],
        }
        for number, is_credit, day, reference, contact, line_items in zip(
            numbers, credit.tolist(), days, references, contacts, items_of
        )
    ]
    keys = [f"eretailer/detail/{number}" for number in numbers]
    contact_names = [contact["Name"] for contact in contacts]

    sign = np.where(credit, -1, 1)
    return pd.DataFrame(
        {
            "document_key": _objects(keys),
            "business_date": _objects(days),
            "branch_code": _objects(invoices["branch_code"].tolist()),
            "endpoint": np.where(credit, "CreditNotes", "Invoices").astype(object),
            "document_type": np.where(credit, "ACCRECCREDIT", "ACCREC").astype(object),
            "number": _objects(numbers),
            "reference": _objects(references),
            "contact_name": _objects(contact_names),
            "status": _objects([status] * len(numbers)),
            "total_cents": (sign * _integers(invoices["total_incl_cents"])).astype(np.int64),
            "tax_cents": (sign * _integers(invoices["total_gst_cents"])).astype(np.int64),
            "line_count": np.array([len(line_items) for line_items in items_of], dtype=np.int64),
            "ci_invoice_nos": _objects([(number,) for number in numbers]),
            "payload": _objects(payloads),
        },
        columns=DOCUMENT_COLUMNS,
        copy=False,  # the arrays are ours: no consolidating copy
    )


def _detail_adjustments(
    lines: pd.DataFrame, document: np.ndarray, ci_tax: np.ndarray, line_tax: np.ndarray, options: list[str],
    rules: EretailerRules,
) -> dict[int, list[list[dict[str, Any]]]]:
    """The GST adjustment pairs of each document (by its row) whose CI GST differs from Xero's per-line
    tax: one pair per Xero account and gst_code of the document (its tracking option is the document's).
    Only the documents with a difference are looked at (usually none, or few)."""
    differs = ci_tax != line_tax
    if not differs.any():
        return {}
    affected = np.zeros(len(options), dtype=bool)
    affected[document[differs]] = True
    rows = np.flatnonzero(affected[document])
    accounts = lines["analysis_code"].to_numpy()[rows]
    found = pd.DataFrame(
        {
            "document": document[rows],
            "account": _mapped(pd.Series(accounts), dict(rules.sales_accounts)),
            "gst_code": lines["gst_code"].to_numpy()[rows],
            "ci": ci_tax[rows],
            "own": line_tax[rows],
        }
    )
    sums = found.groupby(["document", "account", "gst_code"], sort=True).sum().reset_index()
    sums = sums[sums["ci"] != sums["own"]]
    if sums.empty:
        return {}
    trackings = [[{"Name": rules.tracking_category, "Option": options[row]}] for row in sums["document"].tolist()]
    pairs = gst_adjustments(
        sums["ci"].to_numpy(), sums["own"].to_numpy(), sums["gst_code"].tolist(), sums["account"].tolist(),
        trackings, rules, Decimals(),
    )
    adjustments: dict[int, list[list[dict[str, Any]]]] = {}
    for row, pair in zip(sums["document"].tolist(), pairs):
        adjustments.setdefault(row, []).append(pair)
    return adjustments


def with_source_links(documents: pd.DataFrame, link_of_day: Mapping[str, str]) -> pd.DataFrame:
    """Each invoice with its `Url` (Xero: "URL link to a source document – shown as 'Go to [appName]'"):
    the address of the day that produced it. Credit notes carry none: Xero's CreditNote defines no Url.
    Presentation only: a changed Url never rewrites a posted document (ledger.accounting_content)."""
    if not len(documents) or not link_of_day:
        return documents
    payloads = [
        {**payload, "Url": link_of_day[day]} if endpoint == "Invoices" and day in link_of_day else payload
        for payload, endpoint, day in zip(documents["payload"], documents["endpoint"], documents["business_date"])
    ]
    return documents.assign(payload=_objects(payloads))


def _objects(values: list) -> np.ndarray:
    """A list as a 1-D object array, element by element (pandas would copy a list of a quarter of a
    million objects in a Python loop)."""
    return np.fromiter(values, dtype=object, count=len(values))


# -- totals for the reconciliation checks ------------------------------------------------------

def excluded_by_rule(invoices: pd.DataFrame, documents: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    """CI money that the rules turn into no Xero document (EXCLUDED_COLUMNS), so that a per-day
    reconciliation can count it: Σ CI FINAL = Σ Xero + Σ quarantined + Σ excluded.

    `invoices` are the postable (validated) CI documents and `documents` what build_eretailer_documents
    made of them. Summary mode: a day (or branch and day) whose sales and refunds cancel line for line
    gets no document; its CI documents are listed, one row per day (or branch and day), with CI's
    totals (0.00 and 0.00 GST). Detail mode excludes nothing: every CI document, even one of 0.00, is
    posted. CI documents that no document covers for any other reason are not listed here (so that the
    reconciliation shows them as a difference, not as an exclusion)."""
    if rules.mode != "summary" or invoices.empty:
        return _empty_excluded()
    covered = set(chain.from_iterable(documents["ci_invoice_nos"])) if len(documents) else set()
    left = invoices[~invoices["invoice_no"].isin(covered)]
    if left.empty:
        return _empty_excluded()
    by_branch = rules.summary_grouping == "branch_day"
    keys = ["business_date", "branch_code"] if by_branch else ["business_date"]
    groups = (
        pd.DataFrame(
            {
                "business_date": left["business_date"].to_numpy(),
                "branch_code": left["branch_code"].to_numpy() if by_branch else None,
                "invoice_no": left["invoice_no"].to_numpy(),
                "total_cents": left["total_incl_cents"].to_numpy(dtype=np.int64),
                "tax_cents": left["total_gst_cents"].to_numpy(dtype=np.int64),
            }
        )
        .groupby(keys, sort=True, dropna=False)
        .agg(
            invoice_nos=("invoice_no", lambda numbers: tuple(sorted(numbers))),
            total_cents=("total_cents", "sum"),
            tax_cents=("tax_cents", "sum"),
        )
        .reset_index()
    )
    groups = groups[(groups["total_cents"] == 0) & (groups["tax_cents"] == 0)]
    if groups.empty:
        return _empty_excluded()
    excluded = pd.DataFrame(
        {
            "business_date": groups["business_date"].to_numpy(dtype=object),
            "branch_code": groups["branch_code"].to_numpy(dtype=object) if by_branch else np.full(len(groups), None, dtype=object),
            "invoice_nos": groups["invoice_nos"].to_numpy(dtype=object),
            "total_cents": groups["total_cents"].to_numpy(dtype=np.int64),
            "tax_cents": groups["tax_cents"].to_numpy(dtype=np.int64),
            "reason": np.full(len(groups), ZERO_NET_DAY, dtype=object),
        },
        columns=EXCLUDED_COLUMNS,
    )
    return excluded.reset_index(drop=True)


def _empty_excluded() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in EXCLUDED_COLUMNS})
    for column in ("total_cents", "tax_cents"):
        frame[column] = frame[column].astype("int64")
    return frame


def document_totals_by_day(documents: pd.DataFrame) -> pd.DataFrame:
    """Σ total and Σ GST per day of the Xero documents, credit notes subtracting."""
    if documents.empty:
        return pd.DataFrame({"business_date": pd.Series(dtype=object), "total_cents": pd.Series(dtype="int64"), "tax_cents": pd.Series(dtype="int64")})
    sign = documents["endpoint"].map({"Invoices": 1, "CreditNotes": -1}).astype("int64")
    signed = pd.DataFrame(
        {
            "business_date": documents["business_date"],
            "total_cents": documents["total_cents"].astype("int64") * sign,
            "tax_cents": documents["tax_cents"].astype("int64") * sign,
        }
    )
    return signed.groupby("business_date", as_index=False, sort=True).sum()


def ci_totals_by_day(invoices: pd.DataFrame) -> pd.DataFrame:
    """Σ total_incl and Σ total_gst per day of CI documents (credits are negative in CI)."""
    totals = pd.DataFrame(
        {
            "business_date": invoices["business_date"],
            "total_cents": invoices["total_incl_cents"].astype("int64"),
            "tax_cents": invoices["total_gst_cents"].astype("int64"),
        }
    )
    if totals.empty:
        return totals
    return totals.groupby("business_date", as_index=False, sort=True).sum()
