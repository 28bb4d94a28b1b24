"""Which CI documents can be posted, and why the others cannot.

A document with any problem is quarantined whole, with one row per problem naming the CI document,
the line and the reason; half an invoice is never posted, and the rest of the day still posts.
Documents that are not FINAL (HELD, VOID) are skipped, not errors.

Nothing is dropped without a word: a document the header view returns more than once is quarantined
(check `duplicate_header`); a value with more decimals than the contract gives it (extraction's
excess_decimals) quarantines its document (`excess_decimals`); lines without their document are listed
in `orphan_lines`; what needs saying but holds nothing back is in `notices` (NOTICE_COLUMNS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ..ci.extract import empty_tenders
from ..money import cents_to_decimal
from .rules import EretailerRules
from .schemas import (
    NOTICE_COLUMNS, CISalesInvoices, ci_lines_model, combined_notices, empty_notices, expected_line_total_cents,
    notices_frame, rate_ratio, row_wise_checks_of, tax_cents_by_code,
)

QUARANTINE_COLUMNS = ["invoice_no", "business_date", "branch_code", "line_no", "total_incl_cents", "total_gst_cents", "check", "reason"]
SKIPPED_COLUMNS = ["invoice_no", "business_date", "branch_code", "status", "total_incl_cents"]
UNMAPPED_COLUMNS = ["business_date", "kind", "code", "invoice_no"]
ORPHAN_LINE_COLUMNS = ["business_date", "invoice_no", "line_no", "line_total_incl_cents", "line_gst_cents", "reason"]
NOT_FINAL = ["HELD", "VOID"]


def empty_orphan_lines() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "invoice_no": pd.Series(dtype=object),
        "line_no": pd.Series(dtype="Int64"), "line_total_incl_cents": pd.Series(dtype="Int64"),
        "line_gst_cents": pd.Series(dtype="Int64"), "reason": pd.Series(dtype=object),
    })


@dataclass(frozen=True)
class ValidatedSales:
    invoices: pd.DataFrame  # FINAL documents that can be posted
    lines: pd.DataFrame  # their lines
    quarantine: pd.DataFrame  # one row per problem (QUARANTINE_COLUMNS)
    skipped: pd.DataFrame  # not FINAL (SKIPPED_COLUMNS)
    unmapped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=UNMAPPED_COLUMNS))
    # lines read without their document, never posted (ORPHAN_LINE_COLUMNS): extraction's and those
    # whose invoice_no no document of the read has
    orphan_lines: pd.DataFrame = field(default_factory=empty_orphan_lines)
    # reported, nothing held back for it (NOTICE_COLUMNS): e.g. a HELD or VOID document repeated by the view
    notices: pd.DataFrame = field(default_factory=empty_notices)
    # the tenders of the postable documents (extract.TENDER_FRAME_COLUMNS), when the process pays them
    tenders: pd.DataFrame = field(default_factory=lambda: empty_tenders())

    def __setstate__(self, state: dict) -> None:
        """A value pickled before a field existed (a stored day) reads back with that field empty."""
        for name, default in (("unmapped", lambda: pd.DataFrame(columns=UNMAPPED_COLUMNS)),
                              ("orphan_lines", empty_orphan_lines), ("notices", empty_notices), ("tenders", empty_tenders)):
            state.setdefault(name, default())
        self.__dict__.update(state)

    @property
    def unmapped_codes(self) -> dict[str, list[str]]:
        """CI codes the site's mapping lacks, by kind (analysis_code, gst_code, branch_code)."""
        return {
            str(kind): sorted(set(group["code"].astype(str)))
            for kind, group in self.unmapped.groupby("kind", sort=True)
        }


@dataclass
class _Problems:
    """Problems found so far: (invoice_no, line_no or None, check, reason)."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(self, invoice_no: pd.Series, line_no: pd.Series | None, check: str, reason: pd.Series) -> None:
        if len(invoice_no) == 0:
            return
        self.rows.append(
            pd.DataFrame(
                {
                    "invoice_no": invoice_no.to_numpy(),
                    "line_no": (line_no.to_numpy() if line_no is not None else pd.NA),
                    "check": check,
                    "reason": reason.to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(columns=["invoice_no", "line_no", "check", "reason"])
        return pd.concat(self.rows, ignore_index=True)


def _money(cents: pd.Series) -> pd.Series:
    return cents.map(lambda value: "null" if pd.isna(value) else str(cents_to_decimal(int(value))))


def _scaled(values: pd.Series, places: int) -> pd.Series:
    return values.map(lambda value: "null" if pd.isna(value) else str(cents_to_decimal(int(value)).scaleb(2 - places)))


def _where(frame: pd.DataFrame, line: bool) -> pd.Series:
    where = frame["invoice_no"].astype(str)
    return where + " line " + frame["line_no"].astype(str) if line else where


# -- the source contract, as pandera checks ----------------------------------------------------

def _contract_failures(frame: pd.DataFrame, model: type[pa.DataFrameModel], within: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of frame[within] (default: all) failing the model: index, column, check, failure_case.
    Frame-wide failures raise.

    pandera judges only the rows that the screen below cannot clear (a million clean rows cost pandera
    seconds; the screen a fraction of that); the answer is the same as for all of frame[within]. (The
    screen may look at the whole frame: rows outside `within` can only make it suspect more rows.)"""
    suspects = _rows_that_may_fail(frame, model)
    if suspects is None:
        suspects = np.ones(len(frame), dtype=bool)
    if within is not None:
        suspects &= within
    if not suspects.all():
        frame = frame[suspects]  # keeps the original index labels, columns and dtypes
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        frame_wide = cases[cases["index"].isna()]
        if len(frame_wide):
            # a missing column or a wrong type is a bug in extraction or the view, not a data problem
            raise ValueError(f"CI data does not have the contract's shape: {frame_wide.to_dict('records')}") from None
        return cases[["index", "column", "check", "failure_case"]].drop_duplicates(["index", "check"])
    return pd.DataFrame(columns=["index", "column", "check", "failure_case"])


def _rows_that_may_fail(frame: pd.DataFrame, model: type[pa.DataFrameModel]) -> np.ndarray | None:
    """A boolean mask that covers every row the model could fail (it may cover more), or None when the
    frame or the model holds anything this screen does not understand (pandera then sees every row).

    The screen repeats the model's rules column by column, vectorised: dtypes must already be those of
    the model (a dtype failure is frame-wide, so pandera is handed the same dtypes either way); str
    elements, nulls, uniqueness (all members of a duplicated group are kept, so pandera sees the same
    duplicates), the built-in checks, and the frame-level checks, which are row-wise by contract
    (schemas.row_wise_checks_of). Every row outside the mask passes every one of those, so pandera's
    failures on the masked rows are its failures on the whole frame."""
    try:
        schema = model.to_schema()
        if (
            schema.coerce or schema.index is not None or schema.strict not in (False, None) or schema.ordered
            or schema.unique_column_names or schema.drop_invalid_rows or schema.add_missing_columns
        ):
            return None
        suspect = np.zeros(len(frame), dtype=bool)
        for name, column in schema.columns.items():
            if column.regex or column.coerce or name not in frame.columns or list(frame.columns).count(name) != 1:
                return None
            series = frame[name]
            kind = str(column.dtype)
            if kind == "str" and series.dtype == object:
                clean = _all_str(series)  # then neither a non-str element nor a null
                if not clean:
                    suspect |= _not_str(series)
            elif kind == "Int64" and isinstance(series.dtype, pd.Int64Dtype):
                clean = False
            else:
                return None
            if not column.nullable and not clean:
                suspect |= series.isna().to_numpy(dtype=bool)
            if column.unique:
                suspect |= _duplicated(frame, [name])
            for check in column.checks:
                failing = _failing_builtin(series, kind, check, clean)
                if failing is None:
                    return None
                suspect |= failing
        for check in schema.checks:
            rule = row_wise_checks_of(model).get(check.name)
            if rule is None or check.groupby is not None or check.element_wise:
                return None
            suspect |= ~_true(rule(frame))
        if schema.unique:
            suspect |= _duplicated(frame, list(schema.unique))
        return suspect
    except Exception:  # anything unexpected: let pandera judge every row, as it always may
        return None


def _duplicated(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """frame.duplicated(columns, keep=False): every row whose values in `columns` another row repeats."""
    adjacent = _adjacent_duplicates(frame, columns)
    if adjacent is not None:
        return adjacent
    return frame.duplicated(columns, keep=False).to_numpy(dtype=bool)


def _adjacent_duplicates(frame: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    """The same, without hashing, when the rows are already in ascending order of `columns` (as
    extraction hands them over), so that equal rows are neighbours; None when they are not (or hold
    nulls or values that do not compare)."""
    count = len(frame)
    if count < 2:
        return None
    try:
        undecided = np.ones(count - 1, dtype=bool)  # neighbours equal in every column so far
        for name in columns:
            series = frame[name]
            if series.hasnans:
                return None
            values = series.to_numpy()
            before, after = values[:-1], values[1:]
            equal = np.asarray(before == after, dtype=bool)
            if (undecided & ~equal & ~np.asarray(before < after, dtype=bool)).any():
                return None  # out of order here (or not comparable)
            undecided &= equal
    except (TypeError, ValueError):
        return None
    repeated = np.zeros(count, dtype=bool)
    repeated[:-1] |= undecided
    repeated[1:] |= undecided
    return repeated


def _true(result: pd.Series) -> np.ndarray:
    """Where a check's result is True (False and <NA> are not)."""
    return result.fillna(False).to_numpy(dtype=bool)


def _all_str(series: pd.Series) -> bool:
    """Whether every element is a str (no null either), in one pass in C."""
    return len(series) > 0 and pd.api.types.infer_dtype(series, skipna=False) == "string"


def _not_str(series: pd.Series) -> np.ndarray:
    """Elements that are neither a str nor null (pandera's test for a str column), usually proved absent
    in one pass in C."""
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return np.zeros(len(series), dtype=bool)
    return ~(series.map(lambda value: isinstance(value, str)).to_numpy(dtype=bool) | series.isna().to_numpy(dtype=bool))


def _by_distinct_value(series: pd.Series, failing) -> np.ndarray:
    """Apply `failing(value)` once per distinct value (CI codes and dates repeat); nulls count as failing."""
    codes, uniques = pd.factorize(series.to_numpy(), use_na_sentinel=True)
    per_value = np.array([bool(failing(value)) for value in uniques] + [True], dtype=bool)
    return per_value[codes]


def _failing_builtin(series: pd.Series, kind: str, check: pa.Check, all_str: bool = False) -> np.ndarray | None:
    """Rows that may fail one of pandera's built-in column checks; None for a check not known here.
    `all_str`: every element is known to be a str."""
    if check.groupby is not None or check.element_wise:
        return None
    stats = check.statistics
    if check.name == "isin":
        return ~series.isin(stats["allowed_values"]).to_numpy(dtype=bool)
    if check.name == "greater_than_or_equal_to" and kind == "Int64":
        return ~_true(series >= stats["min_value"])
    if check.name == "str_matches" and kind == "str":
        pattern = re.compile(stats["pattern"])
        return _by_distinct_value(series, lambda value: not isinstance(value, str) or pattern.match(value) is None)
    if check.name == "str_length" and kind == "str":
        low, high, exact = stats.get("min_value"), stats.get("max_value"), stats.get("exact_value")
        if all_str and low == 1 and high is None and exact is None:  # not empty
            return np.asarray(series.to_numpy() == "", dtype=bool)
        if all_str:  # (invoice numbers are all distinct: measure them rather than hash them)
            size = np.fromiter(map(len, series.tolist()), dtype=np.int64, count=len(series))
            if exact is not None:
                return size != exact
            failing = np.zeros(len(series), dtype=bool)
            if low is not None:
                failing |= size < low
            if high is not None:
                failing |= size > high
            return failing

        def failing(value) -> bool:
            if not isinstance(value, str):
                return True
            size = len(value)
            if exact is not None:
                return size != exact
            return (low is not None and size < low) or (high is not None and size > high)

        return _by_distinct_value(series, failing)
    return None


_INVOICE_CHECK_REASONS = {
    "sign_matches_doc_type": "an INVOICE must not have a negative total, nor a CREDIT a positive one",
    "gst_within_total": "GST is larger than the document total",
}


def _invoice_contract(invoices: pd.DataFrame, problems: _Problems) -> None:
    failures = _contract_failures(invoices, CISalesInvoices)
    if failures.empty:
        return
    rows = invoices.loc[failures["index"].astype(int)]
    reasons = [
        f"{doc}: {_INVOICE_CHECK_REASONS.get(check) or f'{column} {value!r} breaks the CI contract ({check})'}"
        for doc, check, column, value in zip(rows["invoice_no"], failures["check"], failures["column"], failures["failure_case"])
    ]
    problems.add(rows["invoice_no"], None, "ci_contract", pd.Series(reasons))


def _line_contract(lines: pd.DataFrame, within: np.ndarray, rules: EretailerRules, problems: _Problems) -> None:
    """The lines of frame[within] against the source contract (GST with the site's rates and tolerance)."""
    failures = _contract_failures(lines, ci_lines_model(rules.gst_tolerance_cents, rules.gst_rates), within)
    if failures.empty:
        return
    failures = failures.assign(index=failures["index"].astype(int))
    for check, group in failures.groupby("check", sort=False):
        rows = lines.loc[group["index"]]
        where = _where(rows, line=True)
        if check == "line_total_is_quantity_times_price_less_discount":
            expected = expected_line_total_cents(
                rows["quantity_x1000"], rows["unit_price_incl_x10000"], rows["discount_incl_cents"]
            )
            negative = (rows["quantity_x1000"] < 0).fillna(False)
            reason = (
                where + ": line total " + _money(rows["line_total_incl_cents"]) + " does not add up: "
                + negative.map({True: "−(|quantity| ", False: "quantity "})
                + _scaled(rows["quantity_x1000"].abs(), 3).where(negative, _scaled(rows["quantity_x1000"], 3))
                + " × unit price " + _scaled(rows["unit_price_incl_x10000"], 4)
                + " − discount " + _money(rows["discount_incl_cents"]) + negative.map({True: ")", False: ""})
                + " = " + _money(expected)
                + negative.map({True: " (on a credit line the discount reduces the refund)", False: ""})
            )
        elif check == "gst_matches_gst_code":
            reason = where + ": GST " + _money(rows["line_gst_cents"]) + " does not fit gst_code " + rows["gst_code"].astype(str) \
                + " on " + _money(rows["line_total_incl_cents"]) + _gst_expected(rows, rules)
        else:
            column = group["column"].to_numpy()
            value = group["failure_case"].astype(str).to_numpy()
            reason = where + pd.Series([f": {c} {v!r} breaks the CI contract ({check})" for c, v in zip(column, value)], index=rows.index)
        problems.add(rows["invoice_no"], rows["line_no"], "ci_contract", reason)


def _gst_expected(rows: pd.DataFrame, rules: EretailerRules) -> pd.Series:
    """What the GST of each line would be at its gst_code's rate (rules.gst_rates), for a reason."""
    totals = rows["line_total_incl_cents"].astype("Int64")
    expected, known = tax_cents_by_code(totals.fillna(0).to_numpy(dtype=np.int64), rows["gst_code"].to_numpy(), rules.gst_rates)
    texts = []
    for code, tax, has_rate, total in zip(rows["gst_code"].tolist(), expected.tolist(), known.tolist(), totals.tolist()):
        if not has_rate:
            texts.append(f" (gst_code {code} has no GST rate in the site's rules)")
        elif pd.isna(total):
            texts.append("")
        elif rate_ratio(rules.gst_rates[code])[0] == 0:
            texts.append(f" ({code} carries no GST)")
        else:
            rate = format(Decimal(str(rules.gst_rates[code])).normalize(), "f")
            texts.append(
                f" ({rate} % would be {cents_to_decimal(tax)}; CI's own rounding may differ from that by at most "
                f"{cents_to_decimal(rules.gst_tolerance_cents)})"
            )
    return pd.Series(texts, index=rows.index)


# -- the documents as a whole ------------------------------------------------------------------

@dataclass(frozen=True)
class _DocumentNumbers:
    """The invoice numbers of documents and of lines as integer codes (equal numbers, equal codes), so
    that matching lines to documents hashes each number once."""

    documents: np.ndarray
    lines: np.ndarray
    count: int

    @classmethod
    def of(cls, invoices: pd.DataFrame, lines: pd.DataFrame) -> _DocumentNumbers | None:
        """None when a number is null (pandas' own matching then decides what matches a null)."""
        documents, numbers = invoices["invoice_no"].to_numpy(), lines["invoice_no"].to_numpy()
        # a document's lines come together: the first of each run of equal numbers stands for the run
        starts = np.arange(len(numbers))
        if len(numbers) > 1:
            try:
                starts = np.flatnonzero(np.concatenate(([True], np.asarray(numbers[1:] != numbers[:-1], dtype=bool))))
            except (TypeError, ValueError):
                pass  # numbers that do not compare: every line stands for itself
        codes, uniques = pd.factorize(np.concatenate([documents, numbers[starts]]), use_na_sentinel=True)
        if len(codes) and codes.min() < 0:
            return None
        runs = np.diff(np.append(starts, len(numbers)))
        return cls(codes[: len(documents)], np.repeat(codes[len(documents):], runs), len(uniques))

    def of_documents(self, rows: np.ndarray) -> _DocumentNumbers:
        """The same numbers for the documents invoices[rows] only (and every line)."""
        return _DocumentNumbers(self.documents[rows], self.lines, self.count)

    def lines_of_documents(self) -> np.ndarray:
        """lines["invoice_no"].isin(invoices["invoice_no"])"""
        known = np.zeros(self.count, dtype=bool)
        known[self.documents] = True
        return known[self.lines]


def _document_arithmetic(
    invoices: pd.DataFrame, lines: pd.DataFrame, problems: _Problems, numbers: _DocumentNumbers | None = None
) -> None:
    """Each document's totals against its lines (`lines` may hold other documents' lines too: only the
    sums of these documents' numbers are looked at)."""
    amounts = lines[["line_total_incl_cents", "line_gst_cents"]]
    if numbers is None:
        sums = amounts.groupby(lines["invoice_no"], sort=False).sum()
        found = sums.reindex(invoices["invoice_no"].to_numpy())
    else:  # the same sums, grouped and looked up by code
        sums = amounts.groupby(numbers.lines, sort=False).sum()
        found = sums.reindex(numbers.documents)
    # what invoices.join(sums, on="invoice_no") gives, for the four columns used below only
    joined = pd.DataFrame(
        {
            "invoice_no": invoices["invoice_no"],
            "total_incl_cents": invoices["total_incl_cents"],
            "total_gst_cents": invoices["total_gst_cents"],
            "line_total_incl_cents": found["line_total_incl_cents"].array,
            "line_gst_cents": found["line_gst_cents"].array,
        },
        index=invoices.index,
    )
    no_lines = joined["line_total_incl_cents"].isna()
    empty = joined[no_lines]
    problems.add(empty["invoice_no"], None, "no_lines", empty["invoice_no"] + ": the document has no lines")
    joined = joined[~no_lines]
    bad_total = joined[joined["total_incl_cents"] != joined["line_total_incl_cents"]]
    problems.add(
        bad_total["invoice_no"], None, "totals",
        bad_total["invoice_no"] + ": total_incl " + _money(bad_total["total_incl_cents"])
        + " is not the sum of its lines " + _money(bad_total["line_total_incl_cents"]),
    )
    bad_gst = joined[joined["total_gst_cents"] != joined["line_gst_cents"]]
    problems.add(
        bad_gst["invoice_no"], None, "totals",
        bad_gst["invoice_no"] + ": total_gst " + _money(bad_gst["total_gst_cents"])
        + " is not the sum of its lines' GST " + _money(bad_gst["line_gst_cents"]),
    )


# -- the site's mapping ------------------------------------------------------------------------

def _site_mapping(
    invoices: pd.DataFrame, lines: pd.DataFrame, within: np.ndarray, rules: EretailerRules, problems: _Problems
) -> pd.DataFrame:
    """Codes the site's settings cannot map (lines: those of lines[within]); returns the unmapped
    (kind, code) rows."""
    unmapped: list[pd.DataFrame] = []

    def report(rows: pd.DataFrame, kind: str, line: bool, reason: pd.Series) -> None:
        if rows.empty:
            return
        problems.add(rows["invoice_no"], rows["line_no"] if line else None, f"unmapped_{kind}", reason)
        unmapped.append(
            pd.DataFrame({"business_date": rows["business_date"], "kind": kind, "code": rows[kind].astype(str), "invoice_no": rows["invoice_no"]})
        )

    branch_code = invoices["branch_code"]
    missing = branch_code.isna().to_numpy(dtype=bool) | _by_distinct_value(branch_code, lambda code: str(code).strip() == "")
    no_branch = invoices[missing]
    problems.add(no_branch["invoice_no"], None, "missing_branch", no_branch["invoice_no"] + ": the document has no branch_code")
    known = invoices["branch_name"].notna().to_numpy(dtype=bool) | branch_code.isin(list(rules.tracking_options)).to_numpy(dtype=bool)
    unknown = invoices[~missing & ~known]
    report(
        unknown, "branch_code", False,
        unknown["invoice_no"] + ": branch " + unknown["branch_code"].astype(str)
        + " is not in ci_branches and has no tracking option (tracking.branch_options)",
    )

    foreign = invoices[invoices["currency_code"].notna() & (invoices["currency_code"] != rules.currency_code)]
    problems.add(
        foreign["invoice_no"], None, "currency",
        foreign["invoice_no"] + ": currency " + foreign["currency_code"].astype(str)
        + f" is not the organisation's {rules.currency_code}",
    )

    analysis = lines["analysis_code"]
    no_account = lines[within & analysis.notna().to_numpy(dtype=bool) & ~analysis.isin(list(rules.sales_accounts)).to_numpy(dtype=bool)]
    report(
        no_account, "analysis_code", True,
        _where(no_account, line=True) + ": analysis code " + no_account["analysis_code"].astype(str)
        + " has no Xero sales account (mapping.sales_accounts)",
    )
    gst = lines["gst_code"]
    no_tax = lines[within & gst.notna().to_numpy(dtype=bool) & ~gst.isin(list(rules.tax_types)).to_numpy(dtype=bool)]
    report(
        no_tax, "gst_code", True,
        _where(no_tax, line=True) + ": gst_code " + no_tax["gst_code"].astype(str)
        + " has no Xero tax type (mapping.tax_types)",
    )
    if not unmapped:
        return pd.DataFrame(columns=UNMAPPED_COLUMNS)
    return pd.concat(unmapped, ignore_index=True).drop_duplicates(["business_date", "kind", "code"])[UNMAPPED_COLUMNS]


def validate_sales_documents(documents, rules: EretailerRules) -> ValidatedSales:
    """Split the extracted documents into postable FINAL documents, quarantined ones and skipped ones.

    `documents` has invoices and lines (extract.SalesDocuments, or any object with those two frames);
    its orphan_lines and excess_decimals, when it has them, are taken into account too."""
    invoices = _numbered(documents.invoices)
    lines = _numbered(documents.lines)
    problems = _Problems()
    notices: list[pd.DataFrame] = []

    held_or_void = invoices["status"].isin(NOT_FINAL).to_numpy(dtype=bool)
    kept = _one_row_per_document(invoices, held_or_void, problems, notices)
    skipped = _rows(invoices[SKIPPED_COLUMNS], held_or_void & kept)
    candidate = ~held_or_void & kept
    candidates = invoices[candidate]
    every = _DocumentNumbers.of(invoices, lines)
    # the candidates' lines, lines[candidate_line], are looked at in place rather than copied
    if every is None:
        numbers = None
        candidate_line = lines["invoice_no"].isin(candidates["invoice_no"]).to_numpy(dtype=bool)
        orphan = ~lines["invoice_no"].isin(invoices["invoice_no"]).to_numpy(dtype=bool)
    else:
        numbers = every.of_documents(candidate)
        candidate_line = numbers.lines_of_documents()
        orphan = ~every.lines_of_documents()

    _invoice_contract(candidates, problems)
    _line_contract(lines, candidate_line, rules, problems)
    _document_arithmetic(candidates, lines, problems, numbers)
    unmapped = _site_mapping(candidates, lines, candidate_line, rules, problems)
    _excess_decimals(getattr(documents, "excess_decimals", None), candidates, problems, notices)

    found = problems.frame()
    bad = set(found["invoice_no"])
    has_problem = candidates["invoice_no"].isin(bad).to_numpy(dtype=bool)
    header = candidates[has_problem].drop_duplicates("invoice_no").set_index("invoice_no")
    quarantine = found.join(header[["business_date", "branch_code", "total_incl_cents", "total_gst_cents"]], on="invoice_no")
    quarantine["line_no"] = quarantine["line_no"].astype("Int64")
    quarantine = quarantine[QUARANTINE_COLUMNS].sort_values(["business_date", "invoice_no", "line_no"], na_position="first")

    postable = _rows(candidates, ~has_problem)
    if bad:
        candidate_line = candidate_line & ~lines["invoice_no"].isin(bad).to_numpy(dtype=bool)
    postable_lines = _rows(lines, candidate_line, own=False)
    return ValidatedSales(
        invoices=postable,
        lines=postable_lines,
        quarantine=quarantine.reset_index(drop=True),
        skipped=skipped,
        unmapped=unmapped.reset_index(drop=True),
        orphan_lines=_orphan_lines(getattr(documents, "orphan_lines", None), lines, orphan),
        notices=combined_notices(notices),
    )


def _one_row_per_document(
    invoices: pd.DataFrame, held_or_void: np.ndarray, problems: _Problems, notices: list[pd.DataFrame]
) -> np.ndarray:
    """Which header rows stand for their document: all of them, unless the header view returned a
    number more than once. Then one row stands for it: a FINAL one, and the document is quarantined
    (`duplicate_header`: which of the rows is CI's cannot be told); if none is FINAL, one row is
    skipped (a HELD one rather than a VOID one: never take a document back on an ambiguous word) and
    a notice says so."""
    kept = np.ones(len(invoices), dtype=bool)
    numbers = invoices["invoice_no"]
    if numbers.is_unique:  # the usual case: one hash of the numbers, nothing else
        return kept
    repeated = invoices[numbers.duplicated(keep=False).to_numpy(dtype=bool) & numbers.notna().to_numpy(dtype=bool)]
    chosen_final, final_reasons, other_rows = [], [], []
    for number, group in repeated.groupby("invoice_no", sort=True):
        kept[group.index.to_numpy()] = False
        statuses = group["status"].astype(str).tolist()
        days = sorted({str(day) for day in group["business_date"]})
        described = (
            f"{number}: ci_sales_invoices returned {len(group)} header rows for this one document "
            f"(status {', '.join(statuses)}" + (f"; dated {' and '.join(days)}" if len(days) > 1 else "") + ")"
        )
        final = group.index[~held_or_void[group.index.to_numpy()]]
        if len(final):
            kept[final[0]] = True
            chosen_final.append(final[0])
            final_reasons.append(
                described + ": a view that repeats a document (a join matching twice?) cannot say which row is "
                "CI's, so the document is held back until the view returns it once"
            )
        else:
            held = group.index[group["status"].to_numpy() == "HELD"]
            row = held[0] if len(held) else group.index[0]
            kept[row] = True
            other_rows.append((invoices.at[row, "business_date"], number, described + f": taken as {invoices.at[row, 'status']}"
                               + (" (not as VOID: nothing is taken back on an ambiguous word)" if len(held) and "VOID" in statuses else "")
                               + "; fix the view so that it returns the document once"))
    if chosen_final:
        rows = invoices.loc[chosen_final]
        problems.add(rows["invoice_no"], None, "duplicate_header", pd.Series(final_reasons, index=rows.index))
    if other_rows:
        days, numbers_, messages = zip(*other_rows)
        notices.append(notices_frame(days, numbers_, [None] * len(days), "duplicate_header", messages))
    return kept


def _excess_decimals(found: pd.DataFrame | None, candidates: pd.DataFrame, problems: _Problems, notices: list[pd.DataFrame]) -> None:
    """Values the read found with more decimals than the contract gives them (extract.SalesDocuments.
    excess_decimals): a FINAL document with one is quarantined; any other document's is a notice."""
    if found is None or found.empty:
        return
    of_candidate = found["invoice_no"].isin(candidates["invoice_no"]).to_numpy(dtype=bool)
    quarantined = found[of_candidate]
    problems.add(quarantined["invoice_no"], quarantined["line_no"], "excess_decimals", quarantined["reason"])
    others = found[~of_candidate]
    if len(others):
        notices.append(notices_frame(others["business_date"], others["invoice_no"], others["line_no"], "excess_decimals", others["reason"]))


def _orphan_lines(read: pd.DataFrame | None, lines: pd.DataFrame, orphan: np.ndarray) -> pd.DataFrame:
    """Extraction's orphan lines and the lines whose invoice_no no document of the read has
    (ORPHAN_LINE_COLUMNS): none of them is posted, all of them are listed."""
    parts = [read[ORPHAN_LINE_COLUMNS]] if read is not None and len(read) else []
    if orphan.any():
        rows = lines[orphan]
        days = rows["business_date"] if "business_date" in rows.columns else pd.Series(None, index=rows.index, dtype=object)
        parts.append(pd.DataFrame({
            "business_date": days.to_numpy(dtype=object),
            "invoice_no": rows["invoice_no"].to_numpy(dtype=object),
            "line_no": rows["line_no"].astype("Int64").array,
            "line_total_incl_cents": rows["line_total_incl_cents"].astype("Int64").array,
            "line_gst_cents": rows["line_gst_cents"].astype("Int64").array,
            "reason": (
                _where(rows, line=True) + ": no document of the read has this invoice_no (no header row in "
                "ci_sales_invoices for the days read); nothing of it is posted"
            ).to_numpy(dtype=object),
        }, columns=ORPHAN_LINE_COLUMNS))
    if not parts:
        return empty_orphan_lines()
    found = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for column in ("line_no", "line_total_incl_cents", "line_gst_cents"):
        found[column] = found[column].astype("Int64")
    return found


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the index 0..n-1 (as reset_index(drop=True), without copying one that has it)."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and index.name is None:
        return frame
    return frame.reset_index(drop=True)


def _rows(frame: pd.DataFrame, keep: np.ndarray, own: bool = True) -> pd.DataFrame:
    """frame[keep].reset_index(drop=True), with one copy of the data rather than two, and none when
    every row of a frame of this module's own (`own`: nothing else holds it) is kept."""
    if keep.all():
        kept = frame.copy(deep=not own)
    else:
        kept = frame.take(np.flatnonzero(keep))
    kept.index = pd.RangeIndex(len(kept))
    return kept
