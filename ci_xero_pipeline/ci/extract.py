"""Extraction from the CI views into DataFrames that follow docs/data-contracts.md.

Money, quantities and prices are converted to integer units in SQL (`CAST(ROUND(x * 100) AS ...)`), so
no binary float is ever made in Python, and arrive as pandas `Int64` columns. Dates are `YYYY-MM-DD`
strings on every dialect; timestamps naive datetime64.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, String, and_, case, cast, create_engine, event, exists, func, literal_column, or_, select, true, type_coerce
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.schema import Table
from sqlalchemy.sql.elements import ColumnElement

from ..bulk import cycle_collector_paused
from .tables import CINames, CITables, build_ci_tables

FETCH_ROWS = 100_000  # rows converted at a time: bounds the Python objects alive during a fetch
EXCESS_PLACES = "excess_places"  # the flag column of the sales queries (not part of the frames)
LOOKUP_CHUNK = 500  # invoice numbers per follow-up query (IN lists)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def normalised_url(url: str) -> str:
    """The URL with a relative SQLite path made absolute (so a later chdir cannot change the database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if not parsed.database.startswith("file:") and not Path(parsed.database).is_absolute():
            parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=False)


def engine_for(url: str) -> Engine:
    """One Engine per database URL for the process (Engines pool connections; make them once)."""
    key = normalised_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if make_url(key).get_backend_name() == "sqlite":
                engine = create_engine(key)
                event.listen(engine, "connect", _sqlite_reading_settings)
            else:
                # a server may drop idle connections between two daily runs
                engine = create_engine(key, pool_pre_ping=True, pool_recycle=3600)
            _engines[key] = engine
    return engine


def _sqlite_reading_settings(dbapi_connection, _record) -> None:
    """A larger page cache than SQLite's 2 MB default: a month of lines is a few hundred MB to read."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA cache_size = -32768")  # KiB
    finally:
        cursor.close()


# ---------------------------------------------------------------------------------------------------
# SQL expressions


def scaled_integer(column: ColumnElement, places: int, label: str) -> ColumnElement:
    """`CAST(ROUND(column * 10**places) AS <64-bit integer>)`: exact on NUMERIC/DECIMAL servers, and on
    SQLite (binary REAL storage) exact too because 14 significant digits round back to the integer."""
    return cast(func.round(column * literal_column(str(10**places))), BigInteger).label(label)


def more_places_than(column: ColumnElement, places: int) -> ColumnElement:
    """Whether the value has more decimals than `places`: round(x × 10^places) / 10^places ≠ x. Exact on
    NUMERIC/DECIMAL; on binary REAL (SQLite, a float view) exact too, because the division gives the
    binary number nearest to the rounded decimal, which is the stored one exactly when the value had
    no more places (checked on SQLite for values of up to 14 significant digits). `x * 1` makes a text
    value (a text view on SQLite) compare as a number. NULL when x is NULL."""
    scale = literal_column(str(10**places))
    return func.round(column * scale) / scale != column * literal_column("1")


def excess_places_flag(checked: list[tuple[ColumnElement, int]], label: str = EXCESS_PLACES) -> ColumnElement:
    """1 where any of the columns has more decimals than the contract gives it, else 0 (NULLs pass):
    one small column per row, so that the scaled integers beside it are never rounded silently."""
    return case((or_(*(more_places_than(column, places) for column, places in checked)), 1), else_=0).label(label)


def excess_places_flags(groups: list[list[tuple[ColumnElement, int]]], label: str = EXCESS_PLACES) -> ColumnElement:
    """Like excess_places_flag for groups of columns: 1 + the index of the first group holding a value
    with more decimals than the contract gives it, else 0. Still one column: a later group is only
    compared on the rows where the earlier ones pass (nearly all)."""
    return case(
        *((or_(*(more_places_than(column, places) for column, places in checked)), number)
          for number, checked in enumerate(groups, start=1)),
        else_=0,
    ).label(label)


def as_text(column: ColumnElement, label: str) -> ColumnElement:
    """The column without SQLAlchemy's per-row Python conversion; dates and timestamps are then
    normalised per column in pandas (much faster than one parse per row)."""
    return type_coerce(column, String).label(label)


# ---------------------------------------------------------------------------------------------------
# Column conversion: each converter takes one column of a fetched block as an object ndarray


def _first_values(values: np.ndarray, count: int = 100) -> list:
    return [value for value in values[: count * 4].tolist() if value is not None][:count]


def int64_array(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Int64 from the driver's Python ints (None → <NA>), never through float."""
    values = np.asarray(values, dtype=object)
    wrong = {type(value).__name__ for value in _first_values(values) if not isinstance(value, (int, np.integer))}
    if wrong:  # the SQL casts to an integer type; anything else would be silently truncated below
        raise TypeError(f"expected integers from the database, got {sorted(wrong)}")
    nulls = pd.isna(values)
    if nulls.any() and all(value is None for value in values[nulls].tolist()):  # SQL NULLs (None)
        filled = values.copy()
        filled[nulls] = 0
        return pd.arrays.IntegerArray(filled.astype(np.int64), nulls)
    try:
        return pd.arrays.IntegerArray(values.astype(np.int64), np.zeros(len(values), dtype=bool))
    except TypeError:  # nulls present
        missing = np.equal(values, None)
        return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing.astype(bool))


def text_array(values: np.ndarray) -> np.ndarray:
    """A contiguous copy (a strided view would keep the whole fetched block alive)."""
    return np.array(values, dtype=object, copy=True)


def shared_text_array(values: np.ndarray) -> np.ndarray:
    """Like text_array, with one str object per distinct value: for low-cardinality columns that
    would otherwise hold a million copies of the same few codes."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    return np.append(np.asarray(uniques, dtype=object), None)[codes]  # code -1 (null) takes the None


def repeated_text_array(values: np.ndarray) -> np.ndarray:
    """Like shared_text_array, for text columns whose values repeat (products, customers): equal str
    values share one object. Only when every value is a str or null (told by the distinct values): a
    dynamically typed column holding numbers too is copied as it is (factorising would take 1 and 1.0
    for one value)."""
    values = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    if len(uniques) and pd.api.types.infer_dtype(uniques, skipna=False) != "string":
        return text_array(values)
    return np.append(uniques, None)[codes]  # code -1 (null) takes the None


def iso_dates(values: np.ndarray) -> np.ndarray:
    """'YYYY-MM-DD' strings from whatever the driver returns (date, datetime or text)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    texts = np.array([_iso_date(value) for value in uniques] + [None], dtype=object)
    return texts[codes]


def _iso_date(value) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value)[:10]


def timestamps(values: np.ndarray) -> np.ndarray:
    """Naive datetime64[ns] from datetime objects or ISO text (SQLite)."""
    values = np.asarray(values, dtype=object)
    if any(isinstance(value, str) for value in _first_values(values, 10)):
        converted = pd.to_datetime(values, format="ISO8601")
    else:
        converted = pd.to_datetime(values)
    if converted.tz is not None:
        converted = converted.tz_localize(None)
    return converted.to_numpy(dtype="datetime64[ns]")


def booleans(values: np.ndarray) -> pd.arrays.BooleanArray:
    values = np.asarray(values, dtype=object)
    missing = np.equal(values, None).astype(bool)
    return pd.arrays.BooleanArray(np.where(missing, False, values).astype(bool), missing)


Converter = Callable[[np.ndarray], object]
INT64: Converter = int64_array
TEXT: Converter = text_array
CODE: Converter = shared_text_array
REPEATED: Converter = repeated_text_array
DATE: Converter = iso_dates
TIMESTAMP: Converter = timestamps
BOOLEAN: Converter = booleans


def _concat(parts: list) -> object:
    if isinstance(parts[0], (pd.arrays.IntegerArray, pd.arrays.BooleanArray)):
        return type(parts[0])._concat_same_type(parts)
    return np.concatenate(parts)


def read_frames(engine: Engine, queries: list[tuple[object, dict[str, Converter]]]) -> list[pd.DataFrame]:
    """Run SELECTs whose columns are the keys of their converters, in one transaction (one snapshot on
    servers: REPEATABLE READ), converting FETCH_ROWS rows at a time.

    (Reading two queries side by side in threads was measured: far slower, the GIL thrashes.)"""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            return [_read(connection, statement, converters) for statement, converters in queries]


def _blocks(connection, statement):
    """The result's rows, FETCH_ROWS at a time.

    SQLite: plain tuples straight from the DBAPI cursor, because a SQLAlchemy Row per row (and its type
    processing) would cost more than everything else together for a million lines. Servers: a
    server-side cursor (stream_results), whose first rows SQLAlchemy buffers itself, so through the
    Result; the network is the cost there."""
    if connection.dialect.name == "sqlite":
        result = connection.execute(statement)
        try:
            while rows := result.cursor.fetchmany(FETCH_ROWS):
                yield rows
        finally:
            result.close()
    else:
        result = connection.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(statement)
        try:
            for rows in result.partitions():
                yield [tuple(row) for row in rows]
        finally:
            result.close()


def _read(connection, statement, converters: dict[str, Converter]) -> pd.DataFrame:
    names = list(converters)
    parts: dict[str, list] = {name: [] for name in names}
    with cycle_collector_paused():
        for rows in _blocks(connection, statement):
            _convert(rows, names, converters, parts)
    if not parts[names[0]]:
        return empty_frame(converters)
    # copy=False: the columns as they are, not consolidated into one 2-D block per dtype (a copy of
    # every text column of a million rows, for nothing)
    return pd.DataFrame({name: _concat(parts.pop(name)) for name in names}, copy=False)


def _convert(rows: list[tuple], names: list[str], converters: dict[str, Converter], parts: dict[str, list]) -> None:
    """One block of fetched rows into one part of each column."""
    if len(rows[0]) != len(names):
        raise ValueError(f"expected rows of {len(names)} columns, got {len(rows[0])}")
    # the cells in one pass, each stored as the object it is (np.array(rows) would first inspect
    # every cell to find the shape); a short row makes fromiter raise
    block = np.fromiter(chain.from_iterable(rows), dtype=object, count=len(rows) * len(names))
    block = block.reshape(len(rows), len(names))
    for column, name in enumerate(names):
        parts[name].append(converters[name](block[:, column]))


def read_frame(engine: Engine, statement, converters: dict[str, Converter]) -> pd.DataFrame:
    return read_frames(engine, [(statement, converters)])[0]


def empty_frame(converters: dict[str, Converter]) -> pd.DataFrame:
    return pd.DataFrame({name: convert(np.empty(0, dtype=object)) for name, convert in converters.items()})


# ---------------------------------------------------------------------------------------------------
# Sales documents

INVOICE_COLUMNS: dict[str, Converter] = {
    "invoice_no": TEXT,
    "doc_type": CODE,
    "source": CODE,
    "branch_code": CODE,
    "branch_name": CODE,
    "branch_active": BOOLEAN,
    "business_date": DATE,
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
    "status": CODE,
    "customer_code": REPEATED,  # web customers come back: one str per customer, not one per document
    "customer_name": REPEATED,
    "customer_email": REPEATED,
    "order_ref": TEXT,
    "original_invoice_no": TEXT,
    "currency_code": CODE,
    "total_incl_cents": INT64,
    "total_gst_cents": INT64,
}

LINE_COLUMNS: dict[str, Converter] = {
    "invoice_no": TEXT,
    "line_no": INT64,
    "sku": TEXT,
    "description": REPEATED,
    "quantity_x1000": INT64,
    "unit_price_incl_x10000": INT64,
    "discount_incl_cents": INT64,
    "line_total_incl_cents": INT64,
    "line_gst_cents": INT64,
    "gst_code": TEXT,
    "analysis_code": REPEATED,
    "unit_cost_excl_x10000": INT64,
}

CHANGE_COLUMNS: dict[str, Converter] = {
    "invoice_no": TEXT,
    "business_date": DATE,
    "status": CODE,
    "updated_at": TIMESTAMP,
}


# contract column -> decimals the contract gives it, for the scaled columns whose values reach Xero: a
# value with more is reported (excess_decimals), never rounded silently.
INVOICE_PLACES = {"total_incl": 2, "total_gst": 2}
LINE_PLACES = {"quantity": 3, "unit_price_incl": 4, "discount_incl": 2, "line_total_incl": 2, "line_gst": 2}
# unit_cost_excl reaches only the cost of goods sold journals: its excess is reported apart
# (SalesDocuments.cost_excess_decimals), so that a cost CI holds too finely holds back the journal of
# its branch-day and not the sales document (E-Retailer, takings, receivables post no cost)
COST_PLACES = {"unit_cost_excl": 4}
# the values of the lines' EXCESS_PLACES flag: a value of LINE_PLACES, else only a cost
LINE_EXCESS, COST_EXCESS = 1, 2

ORPHAN_LINE_COLUMNS = ["business_date", "invoice_no", "line_no", "line_total_incl_cents", "line_gst_cents", "reason"]
EXCESS_DECIMAL_COLUMNS = ["business_date", "invoice_no", "line_no", "column", "value", "places", "reason"]


def empty_orphan_lines() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "invoice_no": pd.Series(dtype=object),
        "line_no": pd.Series(dtype="Int64"), "line_total_incl_cents": pd.Series(dtype="Int64"),
        "line_gst_cents": pd.Series(dtype="Int64"), "reason": pd.Series(dtype=object),
    })


def empty_excess_decimals() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "invoice_no": pd.Series(dtype=object),
        "line_no": pd.Series(dtype="Int64"), "column": pd.Series(dtype=object), "value": pd.Series(dtype=object),
        "places": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object),
    })


@dataclass(frozen=True)
class SalesDocuments:
    """CI sales documents of a date range (every status) and their lines, per docs/data-contracts.md.

    What the read could not put into those two frames is reported beside them, never dropped:
    orphan_lines (ORPHAN_LINE_COLUMNS): lines the read returned without their document (a document
    written or changed between the two reads); excess_decimals (EXCESS_DECIMAL_COLUMNS): values CI
    holds with more decimals than the contract gives them (the frames hold them rounded; validation
    quarantines their documents). Both have a business_date within the days read."""

    invoices: pd.DataFrame
    lines: pd.DataFrame
    orphan_lines: pd.DataFrame = field(default_factory=empty_orphan_lines)
    excess_decimals: pd.DataFrame = field(default_factory=empty_excess_decimals)
    # the documents' tenders (TENDER_FRAME_COLUMNS), when the read asked for them (E-Retailer tender payments)
    tenders: pd.DataFrame = field(default_factory=lambda: empty_tenders())
    # (EXCESS_DECIMAL_COLUMNS) unit costs CI holds with more than 4 decimals (COST_PLACES): they hold back
    # cost of goods sold only, so apart from excess_decimals (which quarantines the document)
    cost_excess_decimals: pd.DataFrame = field(default_factory=empty_excess_decimals)

    def __setstate__(self, state: dict) -> None:
        """A value pickled before a field existed (a stored day) reads back with that field empty."""
        for name, default in (("orphan_lines", empty_orphan_lines), ("excess_decimals", empty_excess_decimals),
                              ("tenders", empty_tenders), ("cost_excess_decimals", empty_excess_decimals)):
            state.setdefault(name, default())
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.invoices)

    @property
    def empty(self) -> bool:
        return self.invoices.empty


# Which sales documents a read takes: a source ('ERETAILER', 'POS', 'ACCOUNT'), None for every
# source, or a condition on ci_sales_invoices built from the tables (e.g. on_account_documents)
DocumentCondition = Callable[[CITables], ColumnElement]
Source = str | DocumentCondition | None
ACCOUNT_TENDER = "ACCOUNT"  # the tender of a sale charged to an account customer


def on_account_documents(tables: CITables) -> ColumnElement:
    """The account-customer process's documents (processes.md §2): source ACCOUNT, and POS documents
    with an ACCOUNT tender (paid ON ACCOUNT at a till). The tender is looked up per POS document of the
    days (EXISTS on the tenders' key), not by scanning every ACCOUNT tender CI holds."""
    i = tables.sales_invoices
    account = tables.sales_tenders.alias("account_tender")  # its own name: the tender reads use the table too
    paid_on_account = exists().where(and_(account.c.invoice_no == i.c.invoice_no, account.c.tender_type == ACCOUNT_TENDER))
    return or_(i.c.source == "ACCOUNT", and_(i.c.source == "POS", paid_on_account))


def _source_condition(tables: CITables, source: Source) -> ColumnElement | None:
    if source is None:
        return None
    if callable(source):
        return source(tables)
    return tables.sales_invoices.c.source == source


def _document_filter(tables: CITables, first_day: date, last_day: date, source: Source) -> ColumnElement:
    invoices = tables.sales_invoices
    conditions = [invoices.c.business_date >= first_day, invoices.c.business_date <= last_day]
    condition = _source_condition(tables, source)
    if condition is not None:
        conditions.append(condition)
    return and_(*conditions)


def invoices_statement(tables: CITables, first_day: date, last_day: date, source: Source, flag: bool = False):
    """The documents of the days; with `flag`, an EXCESS_PLACES column too (excess_places_flag)."""
    i, b = tables.sales_invoices, tables.branches
    columns = [
        i.c.invoice_no.label("invoice_no"),
        i.c.doc_type.label("doc_type"),
        i.c.source.label("source"),
        i.c.branch_code.label("branch_code"),
        b.c.branch_name.label("branch_name"),
        b.c.active.label("branch_active"),
        as_text(i.c.business_date, "business_date"),
        as_text(i.c.created_at, "created_at"),
        as_text(i.c.updated_at, "updated_at"),
        i.c.status.label("status"),
        i.c.customer_code.label("customer_code"),
        i.c.customer_name.label("customer_name"),
        i.c.customer_email.label("customer_email"),
        i.c.order_ref.label("order_ref"),
        i.c.original_invoice_no.label("original_invoice_no"),
        i.c.currency_code.label("currency_code"),
        scaled_integer(i.c.total_incl, 2, "total_incl_cents"),
        scaled_integer(i.c.total_gst, 2, "total_gst_cents"),
    ]
    if flag:
        columns.append(excess_places_flag([(i.c[name], places) for name, places in INVOICE_PLACES.items()]))
    return (
        select(*columns)
        .select_from(i.outerjoin(b, b.c.branch_code == i.c.branch_code))
        .where(_document_filter(tables, first_day, last_day, source))
    )


def lines_statement(tables: CITables, first_day: date, last_day: date, source: Source, flag: bool = False):
    """The lines of the days' documents, each line once: a semi-join (IN), so that a document the
    header view repeats does not repeat its lines. With `flag`, an EXCESS_PLACES column too:
    LINE_EXCESS for a value of LINE_PLACES with excess decimals, else COST_EXCESS for a unit cost's."""
    i, l = tables.sales_invoices, tables.sales_invoice_lines
    columns = [
        l.c.invoice_no.label("invoice_no"),
        l.c.line_no.label("line_no"),
        l.c.sku.label("sku"),
        l.c.description.label("description"),
        scaled_integer(l.c.quantity, 3, "quantity_x1000"),
        scaled_integer(l.c.unit_price_incl, 4, "unit_price_incl_x10000"),
        scaled_integer(l.c.discount_incl, 2, "discount_incl_cents"),
        scaled_integer(l.c.line_total_incl, 2, "line_total_incl_cents"),
        scaled_integer(l.c.line_gst, 2, "line_gst_cents"),
        l.c.gst_code.label("gst_code"),
        l.c.analysis_code.label("analysis_code"),
        scaled_integer(l.c.unit_cost_excl, 4, "unit_cost_excl_x10000"),
    ]
    if flag:
        columns.append(excess_places_flags([
            [(l.c[name], places) for name, places in LINE_PLACES.items()],
            [(l.c[name], places) for name, places in COST_PLACES.items()],
        ]))
    documents = select(i.c.invoice_no).where(_document_filter(tables, first_day, last_day, source))
    return select(*columns).where(l.c.invoice_no.in_(documents))


def extract_sales_documents(
    engine: Engine,
    first_day: date,
    last_day: date,
    source: Source = "ERETAILER",
    names: CINames | None = None,
) -> SalesDocuments:
    """The sales documents of `source` (None: every source; or a DocumentCondition) whose business_date is in
    first_day..last_day (inclusive), every status, with their lines.

    Nothing the views return is dropped without a word: a document the header view returns twice
    stays twice in `invoices` (validation quarantines it), its lines once; lines returned without
    their document go to `orphan_lines`; values with more decimals than the contract gives them to
    `excess_decimals`."""
    tables = build_ci_tables(names)
    invoices, lines = read_frames(engine, sales_queries(tables, first_day, last_day, source))
    return _sales_documents(engine, tables, invoices, lines, first_day, last_day)


def sales_queries(tables: CITables, first_day: date, last_day: date, source: Source) -> list[tuple[object, dict[str, Converter]]]:
    """The two reads behind SalesDocuments (headers, lines), each with its EXCESS_PLACES flag."""
    return [
        (invoices_statement(tables, first_day, last_day, source, flag=True), {**INVOICE_COLUMNS, EXCESS_PLACES: INT64}),
        (lines_statement(tables, first_day, last_day, source, flag=True), {**LINE_COLUMNS, EXCESS_PLACES: INT64}),
    ]


def _sales_documents(
    engine: Engine, tables: CITables, invoices: pd.DataFrame, lines: pd.DataFrame, first_day: date, last_day: date
) -> SalesDocuments:
    """SalesDocuments from the frames sales_queries read: ordered, lines dated by their documents,
    orphan lines and excess decimals reported."""
    # Sorted here rather than in SQL: no server-side sort of a million rows, and the same order
    # (Unicode code points) on every dialect whatever the database's collation.
    invoice_nos = invoices["invoice_no"].to_numpy().astype(str)
    invoice_order = np.lexsort((invoice_nos, invoices["business_date"].to_numpy().astype(str)))
    invoices = _reordered(invoices, invoice_order)
    invoice_nos = invoice_nos[invoice_order]
    invoice_flagged = _flagged(invoices.pop(EXCESS_PLACES))

    # Each line takes its document's business_date (cheaper than a million more strings from SQL). A
    # line whose document is not among the invoices (written or changed between the two reads) is
    # reported in orphan_lines, not kept: the lines are those of the documents returned.
    document = _documents_of(invoices["invoice_no"], lines["invoice_no"].to_numpy())
    orphan_lines = empty_orphan_lines()
    if (document < 0).any():
        orphan_lines = _orphan_lines(engine, tables, lines[document < 0], first_day, last_day)
        lines, document = lines[document >= 0].reset_index(drop=True), document[document >= 0]
    # the lines' invoice numbers as the very str objects of their documents (equal values; a million
    # fewer strings to hold)
    lines["invoice_no"] = invoices["invoice_no"].to_numpy()[document]
    # the rank of each document's number (a number the header view repeats: the rank of its first row)
    rank_by_number = np.empty(len(invoice_nos), dtype=np.int64)
    rank_by_number[np.argsort(invoice_nos, kind="stable")] = np.arange(len(invoice_nos))
    line_order = np.lexsort((lines["line_no"].to_numpy(dtype=np.int64, na_value=0), rank_by_number[document]))
    lines, document = _reordered(lines, line_order), document[line_order]
    lines.insert(1, "business_date", invoices["business_date"].to_numpy()[document])
    line_flag = lines.pop(EXCESS_PLACES).to_numpy(dtype=np.int64, na_value=0)
    line_flagged = line_flag != 0

    excess_decimals, cost_excess_decimals = empty_excess_decimals(), empty_excess_decimals()
    if invoice_flagged.any() or line_flagged.any():
        excess_decimals, cost_excess_decimals = _excess_decimals(
            engine, tables, invoices[invoice_flagged], lines[line_flagged], line_flag[line_flagged])
    return SalesDocuments(invoices=invoices, lines=lines, orphan_lines=orphan_lines, excess_decimals=excess_decimals,
                          cost_excess_decimals=cost_excess_decimals)


def _flagged(flag: pd.Series) -> np.ndarray:
    return flag.to_numpy(dtype=np.int64, na_value=0) != 0


def _documents_of(invoice_nos: pd.Series, line_invoice_nos: np.ndarray) -> np.ndarray:
    """Each line's row among the invoices (-1: none), as Index.get_indexer; a number the invoices
    repeat gives its first row. The lines of a document arrive together, so only the first line of
    each run is looked up."""
    count = len(line_invoice_nos)
    if count == 0:
        return np.empty(0, dtype=np.intp)
    try:
        changes = np.asarray(line_invoice_nos[1:] != line_invoice_nos[:-1], dtype=bool)
    except (TypeError, ValueError):  # values that do not compare: look every line up
        changes = np.ones(count - 1, dtype=bool)
    starts = np.flatnonzero(np.concatenate(([True], changes)))
    numbers = pd.Index(invoice_nos)
    if numbers.is_unique:
        found = numbers.get_indexer(line_invoice_nos[starts])
    else:  # a document the header view returned twice: its lines go with its first row
        first = np.flatnonzero(~numbers.duplicated(keep="first"))
        found = pd.Index(numbers[first]).get_indexer(line_invoice_nos[starts])
        found = np.where(found >= 0, first[np.maximum(found, 0)], -1)
    return np.repeat(found, np.diff(np.append(starts, count)))


def _lookup(engine: Engine, statement_for, numbers: list, converters: dict[str, Converter]) -> pd.DataFrame:
    """The rows statement_for(chunk) returns for the numbers, LOOKUP_CHUNK numbers a query."""
    parts = [
        read_frame(engine, statement_for(numbers[start:start + LOOKUP_CHUNK]), converters)
        for start in range(0, len(numbers), LOOKUP_CHUNK)
    ]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else (parts[0] if parts else empty_frame(converters))


def _orphan_days_and_reasons(engine: Engine, table: Table, key: str, day_column: str, orphans: pd.DataFrame,
                             first_day: date, last_day: date, noun: str, shown: str, dated: str) -> tuple[np.ndarray, np.ndarray]:
    """For lines read without their header (a sales document, a goods receipt): each one's day and why, from
    what CI says of its header now (looked up by number: few rows). Dated by that header when it is within the
    days read (else the first day read, so that the report stays with this read's days)."""
    numbers = sorted({str(number) for number in orphans[key].tolist()})
    headers = _lookup(
        engine,
        lambda chunk: select(table.c[key].label(key), as_text(table.c[day_column], "business_date"),
                             table.c.status.label("status")).where(table.c[key].in_(chunk)),
        numbers,
        {key: TEXT, "business_date": DATE, "status": CODE},
    ).drop_duplicates(key)
    now = {number: (day, status) for number, day, status in zip(headers[key], headers["business_date"], headers["status"])}
    first, last = first_day.isoformat(), last_day.isoformat()
    days, reasons = [], []
    for number, line_no in zip(orphans[key].tolist(), orphans["line_no"].tolist()):
        where = f"{shown}{number} line {line_no}"
        found = now.get(str(number))
        if found is None:
            days.append(first)
            reasons.append(f"{where}: read without its {noun}, which {table.name} no longer holds "
                           "(deleted while the days were read?); nothing of it is posted")
            continue
        day, status = found
        inside = first <= str(day) <= last
        days.append(str(day) if inside else first)
        reasons.append(
            f"{where}: read without its {noun} ({number} is {status}, {dated} {day} in CI now: it was written "
            f"or changed while the days were read); nothing of it is posted by this read"
            + ("; run the day again" if inside else f", and it is now dated outside {first} … {last}")
        )
    return np.array(days, dtype=object), np.array(reasons, dtype=object)


def _orphan_lines(engine: Engine, tables: CITables, orphans: pd.DataFrame, first_day: date, last_day: date) -> pd.DataFrame:
    """ORPHAN_LINE_COLUMNS for lines read without their document, each with what CI says of its document now."""
    days, reasons = _orphan_days_and_reasons(engine, tables.sales_invoices, "invoice_no", "business_date", orphans,
                                             first_day, last_day, "document", "", "dated")
    return pd.DataFrame({
        "business_date": days,
        "invoice_no": orphans["invoice_no"].to_numpy(dtype=object),
        "line_no": orphans["line_no"].astype("Int64").array,
        "line_total_incl_cents": orphans["line_total_incl_cents"].astype("Int64").array,
        "line_gst_cents": orphans["line_gst_cents"].astype("Int64").array,
        "reason": reasons,
    }, columns=ORPHAN_LINE_COLUMNS)


def decimal_places(text: object) -> int | None:
    """The decimals a value written as text has (trailing zeros do not count); None if not a number."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite():
        return None
    return max(0, -value.normalize().as_tuple().exponent)


def _excess_decimals(
    engine: Engine, tables: CITables, invoices: pd.DataFrame, lines: pd.DataFrame, line_flag: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """EXCESS_DECIMAL_COLUMNS for the flagged header and line rows: each value with more decimals than
    the contract gives it, as CI holds it (read again as text, by number: few rows); the values of
    LINE_PLACES and INVOICE_PLACES, and apart the unit costs (COST_PLACES). line_flag: each flagged
    line's EXCESS_PLACES value (LINE_EXCESS or COST_EXCESS)."""
    rows: list[dict] = []
    cost_rows: list[dict] = []
    i, l = tables.sales_invoices, tables.sales_invoice_lines
    if len(invoices):
        numbers = sorted(set(invoices["invoice_no"].tolist()))
        texts = _lookup(
            engine,
            lambda chunk: select(i.c.invoice_no.label("invoice_no"),
                                 *(cast(i.c[name], String).label(name) for name in INVOICE_PLACES)).where(i.c.invoice_no.in_(chunk)),
            numbers,
            {"invoice_no": TEXT, **{name: TEXT for name in INVOICE_PLACES}},
        )
        day_of = dict(zip(invoices["invoice_no"], invoices["business_date"]))
        rows += _excess_rows(texts, INVOICE_PLACES, day_of, numbers, line=False)
    if len(lines):
        flag = np.full(len(lines), LINE_EXCESS, dtype=np.int64) if line_flag is None else np.asarray(line_flag)
        numbers = sorted(set(lines["invoice_no"].tolist()))
        checked = {**LINE_PLACES, **COST_PLACES}
        texts = _lookup(
            engine,
            lambda chunk: select(l.c.invoice_no.label("invoice_no"), l.c.line_no.label("line_no"),
                                 *(cast(l.c[name], String).label(name) for name in checked)).where(l.c.invoice_no.in_(chunk)),
            numbers,
            {"invoice_no": TEXT, "line_no": INT64, **{name: TEXT for name in checked}},
        )
        keys = list(zip(lines["invoice_no"].tolist(), lines["line_no"].tolist()))
        wanted = set(keys)
        texts = texts[[(number, int(line_no)) in wanted for number, line_no in zip(texts["invoice_no"], texts["line_no"])]]
        day_of = dict(zip(lines["invoice_no"], lines["business_date"]))
        by_flag = {value: sorted({key for key, found in zip(keys, flag.tolist()) if found == value}) for value in (LINE_EXCESS, COST_EXCESS)}
        rows += _excess_rows(texts, LINE_PLACES, day_of, by_flag[LINE_EXCESS], line=True)
        cost_rows += _excess_rows(texts, COST_PLACES, day_of, by_flag[COST_EXCESS], line=True,
                                  waits="its cost of goods sold waits until CI holds the value to {places} decimals",
                                  subject="its cost of goods sold")
    return _excess_frame(rows, "invoice_no", EXCESS_DECIMAL_COLUMNS, empty_excess_decimals), \
        _excess_frame(cost_rows, "invoice_no", EXCESS_DECIMAL_COLUMNS, empty_excess_decimals)


def _excess_frame(rows: list[dict], number_column: str, columns: list[str], empty: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    if not rows:
        return empty()
    found = pd.DataFrame(rows, columns=columns).drop_duplicates([number_column, "line_no", "column", "value"])
    found["line_no"] = found["line_no"].astype("Int64")
    found["places"] = found["places"].astype("int64")
    return found.reset_index(drop=True)


def _excess_rows(
    texts: pd.DataFrame, places_of: dict[str, int], day_of: dict, flagged: list, line: bool,
    number_column: str = "invoice_no", waits: str = "the document waits until CI holds the value to {places} decimals",
    subject: str = "the document",
) -> list[dict]:
    """One row per value of `places_of` with more decimals than the contract gives it; and one per
    flagged key whose values were all found within the places when read again (changed in between)."""
    rows: list[dict] = []
    seen = set()
    for record in texts.to_dict("records"):
        key = (record[number_column], int(record["line_no"])) if line else record[number_column]
        where = f"{key[0]} line {key[1]}" if line else str(key)
        number = key[0] if line else key
        for column, places in places_of.items():
            text = record[column]
            if text is None:
                continue
            found = decimal_places(text)
            if found is not None and found <= places:
                continue
            seen.add(key)
            rows.append({
                "business_date": day_of.get(number), number_column: number, "line_no": key[1] if line else None,
                "column": column, "value": str(text), "places": places,
                "reason": (
                    f"{where}: {column} is {text} in CI, with more than the {places} decimals the contract gives it; "
                    f"it is not rounded: {waits.format(places=places)}"
                ),
            })
    for key in flagged:  # flagged by the read but not found again (changed in between): still reported
        if key in seen:
            continue
        number = key[0] if line else key
        where = f"{key[0]} line {key[1]}" if line else str(key)
        rows.append({
            "business_date": day_of.get(number), number_column: number, "line_no": key[1] if line else None,
            "column": None, "value": None, "places": 0,
            "reason": f"{where}: a value had more decimals than the contract gives it when read (changed since); "
                      f"it is not rounded: {subject} waits until it is read again",
        })
    return rows


def _reordered(frame: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    if len(order) and np.all(order[1:] > order[:-1]):
        return frame  # already in order (usual for SQLite, whose index yields date and number order)
    return frame.take(order).reset_index(drop=True)


def changed_documents_since(
    engine: Engine,
    since: datetime | None,
    source: Source = "ERETAILER",
    names: CINames | None = None,
) -> pd.DataFrame:
    """Documents of `source` (as extract_sales_documents takes it: on_account_documents for the
    account-customer process) whose updated_at is later than `since` (all documents when None), oldest
    change first: invoice_no, business_date ('YYYY-MM-DD'), status, updated_at."""
    tables = build_ci_tables(names)
    i = tables.sales_invoices
    conditions = []
    if since is not None:
        conditions.append(i.c.updated_at > since)
    condition = _source_condition(tables, source)
    if condition is not None:
        conditions.append(condition)
    statement = (
        select(
            i.c.invoice_no.label("invoice_no"),
            as_text(i.c.business_date, "business_date"),
            i.c.status.label("status"),
            as_text(i.c.updated_at, "updated_at"),
        )
        .where(and_(true(), *conditions))
        .order_by(i.c.updated_at, i.c.invoice_no)
    )
    return read_frame(engine, statement, CHANGE_COLUMNS)


# ---------------------------------------------------------------------------------------------------
# Sales documents with their tenders, the branches' cash-ups and the branches (takings; E-Retailer
# tenders): one read of the sales tables per day range, in one transaction

TENDER_COLUMNS: dict[str, Converter] = {
    "invoice_no": TEXT,
    "tender_no": INT64,
    "tender_type": CODE,
    "amount_cents": INT64,
    "paid_at": TIMESTAMP,
}
CASH_UP_COLUMNS: dict[str, Converter] = {
    "branch_code": CODE,
    "business_date": DATE,
    "tender_type": CODE,
    "expected_cents": INT64,
    "counted_cents": INT64,
}
BRANCH_COLUMNS: dict[str, Converter] = {"branch_code": TEXT, "branch_name": TEXT, "active": BOOLEAN}
# the text of a value with more decimals than the contract gives it (null otherwise), read beside it
EXCESS_TEXT = "{}_if_excess"
TENDER_PLACES = {"amount": 2}
CASH_UP_PLACES = {"expected_amount": 2, "counted_amount": 2}
# the tenders frame: CI's tender rows, each with its document's day, branch, source, status and type
TENDER_FRAME_COLUMNS = [
    "invoice_no", "business_date", "branch_code", "source", "status", "doc_type", "tender_no", "tender_type",
    "amount_cents", "paid_at",
]


def empty_tenders() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in TENDER_FRAME_COLUMNS})
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


ORPHAN_TENDER_COLUMNS = ["business_date", "invoice_no", "tender_no", "tender_type", "amount_cents", "reason"]
TENDER_EXCESS_COLUMNS = [
    "business_date", "branch_code", "invoice_no", "tender_no", "tender_type", "view", "column", "value", "places", "reason",
]


def _excess_text(column: ColumnElement, places: int, label: str) -> ColumnElement:
    """The value as CI holds it (text) where it has more decimals than `places`, else NULL: read in the
    same pass as the value (tenders and cash-ups are few rows a document, not a line each)."""
    return case((more_places_than(column, places), cast(column, String)), else_=None).label(label)


def tenders_statement(tables: CITables, first_day: date, last_day: date, source: Source):
    """The tenders of the days' documents (a semi-join, like the lines), each with the text of an
    amount that has more decimals than the contract gives it."""
    t = tables.sales_tenders
    documents = select(tables.sales_invoices.c.invoice_no).where(_document_filter(tables, first_day, last_day, source))
    return select(
        t.c.invoice_no.label("invoice_no"),
        t.c.tender_no.label("tender_no"),
        t.c.tender_type.label("tender_type"),
        scaled_integer(t.c.amount, 2, "amount_cents"),
        as_text(t.c.paid_at, "paid_at"),
        _excess_text(t.c.amount, 2, EXCESS_TEXT.format("amount")),
    ).where(t.c.invoice_no.in_(documents))


def cash_ups_statement(tables: CITables, first_day: date, last_day: date):
    """Every branch's cash-up rows of the days."""
    c = tables.cash_ups
    return select(
        c.c.branch_code.label("branch_code"),
        as_text(c.c.business_date, "business_date"),
        c.c.tender_type.label("tender_type"),
        scaled_integer(c.c.expected_amount, 2, "expected_cents"),
        scaled_integer(c.c.counted_amount, 2, "counted_cents"),
        *(_excess_text(c.c[name], places, EXCESS_TEXT.format(name)) for name, places in CASH_UP_PLACES.items()),
    ).where(and_(c.c.business_date >= first_day, c.c.business_date <= last_day))


def branches_statement(tables: CITables):
    b = tables.branches
    return select(b.c.branch_code.label("branch_code"), b.c.branch_name.label("branch_name"), b.c.active.label("active"))


def empty_orphan_tenders() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "invoice_no": pd.Series(dtype=object),
        "tender_no": pd.Series(dtype="Int64"), "tender_type": pd.Series(dtype=object),
        "amount_cents": pd.Series(dtype="Int64"), "reason": pd.Series(dtype=object),
    }, columns=ORPHAN_TENDER_COLUMNS)


def empty_tender_excess() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in TENDER_EXCESS_COLUMNS})
    frame["tender_no"] = frame["tender_no"].astype("Int64")
    frame["places"] = frame["places"].astype("int64")
    return frame


@dataclass(frozen=True)
class SalesWithTenders:
    """CI sales documents of a date range with their tenders, and the branches' cash-ups of those days.

    documents: SalesDocuments (every status), as extract_sales_documents returns them.
    tenders (TENDER_FRAME_COLUMNS): the documents' ci_sales_tenders rows, amount in integer cents, each
      with its document's business_date, branch_code, source, status and doc_type; ordered by
      business_date, invoice_no, tender_no. A tender the view repeats stays repeated (validation
      quarantines its day).
    cash_ups: ci_cash_ups rows of the days (branch_code, business_date, tender_type, expected_cents,
      counted_cents), ordered by business_date, branch_code, tender_type; every branch's.
    branches: ci_branches (branch_code, branch_name, active), for a day with a cash-up and no document.
    orphan_tenders (ORPHAN_TENDER_COLUMNS): tenders read without their document (never posted; listed).
    excess_decimals (TENDER_EXCESS_COLUMNS): tender and cash-up values CI holds with more decimals than
      the contract gives them (the frames hold them rounded; validation quarantines their days)."""

    documents: SalesDocuments
    tenders: pd.DataFrame
    cash_ups: pd.DataFrame
    branches: pd.DataFrame
    orphan_tenders: pd.DataFrame = field(default_factory=empty_orphan_tenders)
    excess_decimals: pd.DataFrame = field(default_factory=empty_tender_excess)

    def of_source(self, source: str) -> SalesWithTenders:
        """The documents of one source (ERETAILER, POS, ACCOUNT) with their lines, tenders and what was
        reported of them; cash-ups, branches and orphan tenders as they are (they name no source)."""
        invoices = self.documents.invoices
        keep = (invoices["source"] == source).to_numpy(dtype=bool)
        if keep.all():
            return self
        numbers = set(invoices.loc[keep, "invoice_no"].tolist())
        documents = SalesDocuments(
            invoices=invoices[keep].reset_index(drop=True),
            lines=_rows_of(self.documents.lines, numbers),
            orphan_lines=self.documents.orphan_lines,
            excess_decimals=_rows_of(self.documents.excess_decimals, numbers),
            cost_excess_decimals=_rows_of(self.documents.cost_excess_decimals, numbers),
        )
        excess = self.excess_decimals
        excess = excess[excess["invoice_no"].isna().to_numpy(dtype=bool) | excess["invoice_no"].isin(numbers).to_numpy(dtype=bool)]
        return SalesWithTenders(
            documents=documents, tenders=_rows_of(self.tenders, numbers), cash_ups=self.cash_ups,
            branches=self.branches, orphan_tenders=self.orphan_tenders, excess_decimals=excess.reset_index(drop=True),
        )


def _rows_of(frame: pd.DataFrame, numbers: set) -> pd.DataFrame:
    return frame[frame["invoice_no"].isin(numbers).to_numpy(dtype=bool)].reset_index(drop=True)


def extract_sales_with_tenders(
    engine: Engine,
    first_day: date,
    last_day: date,
    source: Source = None,
    names: CINames | None = None,
    *,
    read_cash_ups: bool = True,
) -> SalesWithTenders:
    """The sales documents of `source` (None: every source, so that the processes reading the same
    tables read them once; or a DocumentCondition such as on_account_documents) whose business_date is
    in first_day..last_day (inclusive), every status, with their lines and tenders; the cash-ups of those
    days (unless read_cash_ups is False: an empty frame) and the branches. One transaction (one
    snapshot on servers) for all of it, so that tenders, documents and cash-ups agree with each other
    as CI held them at one moment."""
    tables = build_ci_tables(names)
    tender_converters = {**TENDER_COLUMNS, EXCESS_TEXT.format("amount"): TEXT}
    cash_up_converters = {**CASH_UP_COLUMNS, **{EXCESS_TEXT.format(name): TEXT for name in CASH_UP_PLACES}}
    queries = [
        *sales_queries(tables, first_day, last_day, source),
        (tenders_statement(tables, first_day, last_day, source), tender_converters),
        (branches_statement(tables), BRANCH_COLUMNS),
    ]
    if read_cash_ups:
        queries.insert(3, (cash_ups_statement(tables, first_day, last_day), cash_up_converters))
        invoices, lines, tenders, cash_ups, branches = read_frames(engine, queries)
    else:
        invoices, lines, tenders, branches = read_frames(engine, queries)
        cash_ups = empty_frame(cash_up_converters)
    documents = _sales_documents(engine, tables, invoices, lines, first_day, last_day)
    tenders, orphan_tenders, tender_excess = _tenders_of(documents.invoices, tenders, first_day)
    cash_ups, cash_up_excess = _cash_ups(cash_ups)
    rows = tender_excess.to_dict("records") + cash_up_excess.to_dict("records")
    excess = empty_tender_excess()
    if rows:  # (one frame from the rows: pandas no longer infers a dtype from an all-null part)
        excess = pd.DataFrame(rows, columns=TENDER_EXCESS_COLUMNS)
        excess["tender_no"] = pd.array([None if pd.isna(value) else int(value) for value in excess["tender_no"]], dtype="Int64")
        excess["places"] = excess["places"].astype("int64")
    branches = branches.sort_values("branch_code", kind="stable").reset_index(drop=True) if len(branches) else branches
    return SalesWithTenders(documents=documents, tenders=tenders, cash_ups=cash_ups, branches=branches,
                            orphan_tenders=orphan_tenders, excess_decimals=excess)


def extract_takings(engine: Engine, first_day: date, last_day: date, names: CINames | None = None) -> SalesWithTenders:
    """The POS documents (every status) of the days with their lines and tenders, and the cash-ups."""
    return extract_sales_with_tenders(engine, first_day, last_day, source="POS", names=names)


def extract_receivables(engine: Engine, first_day: date, last_day: date, names: CINames | None = None) -> SalesWithTenders:
    """The account-customer documents of the days (on_account_documents: source ACCOUNT, and POS
    documents paid ON ACCOUNT), every status, with their lines and all their tenders (the ACCOUNT
    tender and the others, which become payments), and the branches; no cash-ups (an empty frame:
    the tills' counts are takings'). One transaction, as extract_sales_with_tenders."""
    return extract_sales_with_tenders(engine, first_day, last_day, source=on_account_documents, names=names, read_cash_ups=False)


def _tenders_of(invoices: pd.DataFrame, tenders: pd.DataFrame, first_day: date) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The tenders with their documents' columns (TENDER_FRAME_COLUMNS), those read without their
    document (ORPHAN_TENDER_COLUMNS), and their amounts with excess decimals (TENDER_EXCESS_COLUMNS)."""
    excess_text = tenders.pop(EXCESS_TEXT.format("amount"))
    first = invoices.drop_duplicates("invoice_no")  # a repeated header: its first row (validation says why)
    position = pd.Index(first["invoice_no"]).get_indexer(tenders["invoice_no"])
    found = position >= 0
    orphans = tenders[~found]
    orphan_tenders = empty_orphan_tenders()
    if len(orphans):
        day = first_day.isoformat()
        orphan_tenders = pd.DataFrame({
            "business_date": np.full(len(orphans), day, dtype=object),
            "invoice_no": orphans["invoice_no"].to_numpy(dtype=object),
            "tender_no": orphans["tender_no"].astype("Int64").array,
            "tender_type": orphans["tender_type"].to_numpy(dtype=object),
            "amount_cents": orphans["amount_cents"].astype("Int64").array,
            "reason": (orphans["invoice_no"].astype(str) + " tender " + orphans["tender_no"].astype(str)
                       + ": read without its document (written or changed while the days were read); "
                       "nothing of it is posted by this read; run the day again").to_numpy(dtype=object),
        }, columns=ORPHAN_TENDER_COLUMNS)
    kept = tenders[found].reset_index(drop=True)
    rows = position[found]
    excess_text = excess_text[found].reset_index(drop=True)
    frame = pd.DataFrame({
        "invoice_no": kept["invoice_no"].to_numpy(dtype=object),
        **{name: first[name].to_numpy(dtype=object)[rows] for name in ("business_date", "branch_code", "source", "status", "doc_type")},
        "tender_no": kept["tender_no"].array,
        "tender_type": kept["tender_type"].to_numpy(dtype=object),
        "amount_cents": kept["amount_cents"].array,
        "paid_at": kept["paid_at"].to_numpy(),
    }, columns=TENDER_FRAME_COLUMNS)
    order = np.lexsort((
        frame["tender_no"].to_numpy(dtype=np.int64, na_value=0),
        frame["invoice_no"].to_numpy().astype(str),
        frame["business_date"].to_numpy().astype(str),
    ))
    frame, excess_text = _reordered(frame, order), excess_text.take(order).reset_index(drop=True)
    flagged = excess_text.notna().to_numpy(dtype=bool)
    excess = empty_tender_excess()
    if flagged.any():
        rows = frame[flagged]
        texts = excess_text[flagged]
        excess = pd.DataFrame({
            "business_date": rows["business_date"].to_numpy(dtype=object),
            "branch_code": rows["branch_code"].to_numpy(dtype=object),
            "invoice_no": rows["invoice_no"].to_numpy(dtype=object),
            "tender_no": rows["tender_no"].astype("Int64").array,
            "tender_type": rows["tender_type"].to_numpy(dtype=object),
            "view": "ci_sales_tenders", "column": "amount", "value": texts.to_numpy(dtype=object), "places": 2,
            "reason": [
                f"{number} tender {tender_no} ({tender_type}): amount is {text} in CI, with more than the 2 decimals "
                "the contract gives it; it is not rounded: the day waits until CI holds it to 2 decimals"
                for number, tender_no, tender_type, text in zip(rows["invoice_no"], rows["tender_no"], rows["tender_type"], texts)
            ],
        }, columns=TENDER_EXCESS_COLUMNS)
    return frame, orphan_tenders, excess


def _cash_ups(cash_ups: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cash-ups in order (business_date, branch_code, tender_type) and their values with excess
    decimals (TENDER_EXCESS_COLUMNS)."""
    texts = {name: cash_ups.pop(EXCESS_TEXT.format(name)) for name in CASH_UP_PLACES}
    order = np.lexsort((
        cash_ups["tender_type"].to_numpy().astype(str),
        cash_ups["branch_code"].to_numpy().astype(str),
        cash_ups["business_date"].to_numpy().astype(str),
    ))
    cash_ups = _reordered(cash_ups, order)
    rows: list[dict] = []
    for name, text in texts.items():
        text = text.take(order).reset_index(drop=True)
        for row in np.flatnonzero(text.notna().to_numpy(dtype=bool)).tolist():
            branch, day, tender_type = (cash_ups[column].iat[row] for column in ("branch_code", "business_date", "tender_type"))
            rows.append({
                "business_date": day, "branch_code": branch, "invoice_no": None, "tender_no": None,
                "tender_type": tender_type, "view": "ci_cash_ups", "column": name, "value": text.iat[row], "places": 2,
                "reason": (f"cash-up {branch} {day} {tender_type}: {name} is {text.iat[row]} in CI, with more than the "
                           "2 decimals the contract gives it; it is not rounded: the day waits until CI holds it to 2 decimals"),
            })
    excess = pd.DataFrame(rows, columns=TENDER_EXCESS_COLUMNS) if rows else empty_tender_excess()
    return cash_ups, excess


# ---------------------------------------------------------------------------------------------------
# Goods received (payables): the receipts of a day range with their lines, in one transaction

RECEIPT_COLUMNS: dict[str, Converter] = {
    "receipt_no": TEXT,
    "supplier_code": CODE,
    "supplier_name": REPEATED,
    "branch_code": CODE,
    "branch_name": CODE,
    "business_date": DATE,  # the receipt's received_date
    "supplier_invoice_no": TEXT,
    "status": CODE,
    "updated_at": TIMESTAMP,
    "currency_code": CODE,
    "total_excl_cents": INT64,
    "total_gst_cents": INT64,
}
RECEIPT_LINE_COLUMNS: dict[str, Converter] = {
    "receipt_no": TEXT,
    "line_no": INT64,
    "sku": TEXT,
    "description": REPEATED,
    "quantity_x1000": INT64,
    "unit_cost_excl_x10000": INT64,
    "line_total_excl_cents": INT64,
    "line_gst_cents": INT64,
    "gst_code": TEXT,
    "analysis_code": REPEATED,
}
RECEIPT_CHANGE_COLUMNS: dict[str, Converter] = {
    "receipt_no": TEXT,
    "business_date": DATE,
    "status": CODE,
    "updated_at": TIMESTAMP,
}
# contract column -> decimals the contract gives it (every scaled value of a receipt reaches its bill)
RECEIPT_PLACES = {"total_excl": 2, "total_gst": 2}
RECEIPT_LINE_PLACES = {"quantity": 3, "unit_cost_excl": 4, "line_total_excl": 2, "line_gst": 2}
RECEIPT_ORPHAN_LINE_COLUMNS = ["business_date", "receipt_no", "line_no", "line_total_excl_cents", "line_gst_cents", "reason"]
RECEIPT_EXCESS_DECIMAL_COLUMNS = ["business_date", "receipt_no", "line_no", "column", "value", "places", "reason"]


def empty_receipt_orphan_lines() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "receipt_no": pd.Series(dtype=object),
        "line_no": pd.Series(dtype="Int64"), "line_total_excl_cents": pd.Series(dtype="Int64"),
        "line_gst_cents": pd.Series(dtype="Int64"), "reason": pd.Series(dtype=object),
    }, columns=RECEIPT_ORPHAN_LINE_COLUMNS)


def empty_receipt_excess_decimals() -> pd.DataFrame:
    return pd.DataFrame({
        "business_date": pd.Series(dtype=object), "receipt_no": pd.Series(dtype=object),
        "line_no": pd.Series(dtype="Int64"), "column": pd.Series(dtype=object), "value": pd.Series(dtype=object),
        "places": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object),
    }, columns=RECEIPT_EXCESS_DECIMAL_COLUMNS)


@dataclass(frozen=True)
class GoodsReceived:
    """CI goods receipts (ci_goods_received) whose received_date is in a date range, every status, and
    their lines; money in integer cents, quantities ×1000, unit costs ×10000.

    receipts (RECEIPT_COLUMNS): ordered by business_date (= received_date, 'YYYY-MM-DD'), receipt_no;
      branch_name from ci_branches (null for a branch it lacks). A receipt the view repeats stays
      repeated (validation decides), its lines once.
    lines (RECEIPT_LINE_COLUMNS, and its receipt's business_date after receipt_no): in receipt order, then line_no.
    orphan_lines (RECEIPT_ORPHAN_LINE_COLUMNS): lines read without their receipt (written or changed
      between the two reads; never posted; listed). excess_decimals (RECEIPT_EXCESS_DECIMAL_COLUMNS):
      values CI holds with more decimals than the contract gives them (the frames hold them rounded;
      validation holds their receipts back). Both dated within the days read."""

    receipts: pd.DataFrame
    lines: pd.DataFrame
    orphan_lines: pd.DataFrame = field(default_factory=empty_receipt_orphan_lines)
    excess_decimals: pd.DataFrame = field(default_factory=empty_receipt_excess_decimals)

    def __len__(self) -> int:
        return len(self.receipts)

    @property
    def empty(self) -> bool:
        return self.receipts.empty


def _receipt_days(tables: CITables, first_day: date, last_day: date) -> ColumnElement:
    g = tables.goods_received
    return and_(g.c.received_date >= first_day, g.c.received_date <= last_day)


def receipts_statement(tables: CITables, first_day: date, last_day: date):
    """The receipts of the days, with their branch's name and an EXCESS_PLACES flag."""
    g, b = tables.goods_received, tables.branches
    return (
        select(
            g.c.receipt_no.label("receipt_no"),
            g.c.supplier_code.label("supplier_code"),
            g.c.supplier_name.label("supplier_name"),
            g.c.branch_code.label("branch_code"),
            b.c.branch_name.label("branch_name"),
            as_text(g.c.received_date, "business_date"),
            g.c.supplier_invoice_no.label("supplier_invoice_no"),
            g.c.status.label("status"),
            as_text(g.c.updated_at, "updated_at"),
            g.c.currency_code.label("currency_code"),
            scaled_integer(g.c.total_excl, 2, "total_excl_cents"),
            scaled_integer(g.c.total_gst, 2, "total_gst_cents"),
            excess_places_flag([(g.c[name], places) for name, places in RECEIPT_PLACES.items()]),
        )
        .select_from(g.outerjoin(b, b.c.branch_code == g.c.branch_code))
        .where(_receipt_days(tables, first_day, last_day))
    )


def receipt_lines_statement(tables: CITables, first_day: date, last_day: date):
    """The lines of the days' receipts, each once (a semi-join), with an EXCESS_PLACES flag."""
    g, l = tables.goods_received, tables.goods_received_lines
    receipts = select(g.c.receipt_no).where(_receipt_days(tables, first_day, last_day))
    return select(
        l.c.receipt_no.label("receipt_no"),
        l.c.line_no.label("line_no"),
        l.c.sku.label("sku"),
        l.c.description.label("description"),
        scaled_integer(l.c.quantity, 3, "quantity_x1000"),
        scaled_integer(l.c.unit_cost_excl, 4, "unit_cost_excl_x10000"),
        scaled_integer(l.c.line_total_excl, 2, "line_total_excl_cents"),
        scaled_integer(l.c.line_gst, 2, "line_gst_cents"),
        l.c.gst_code.label("gst_code"),
        l.c.analysis_code.label("analysis_code"),
        excess_places_flag([(l.c[name], places) for name, places in RECEIPT_LINE_PLACES.items()]),
    ).where(l.c.receipt_no.in_(receipts))


def extract_goods_received(engine: Engine, first_day: date, last_day: date, names: CINames | None = None) -> GoodsReceived:
    """The goods receipts whose received_date is in first_day..last_day (inclusive), every status, with
    their lines, in one transaction (one snapshot on servers). Nothing the views return is dropped
    without a word: lines without their receipt go to orphan_lines, values with more decimals than the
    contract gives them to excess_decimals (never rounded silently)."""
    tables = build_ci_tables(names)
    receipts, lines = read_frames(engine, [
        (receipts_statement(tables, first_day, last_day), {**RECEIPT_COLUMNS, EXCESS_PLACES: INT64}),
        (receipt_lines_statement(tables, first_day, last_day), {**RECEIPT_LINE_COLUMNS, EXCESS_PLACES: INT64}),
    ])
    order = np.lexsort((receipts["receipt_no"].to_numpy().astype(str), receipts["business_date"].to_numpy().astype(str)))
    receipts = _reordered(receipts, order)
    receipt_flagged = _flagged(receipts.pop(EXCESS_PLACES))

    first = receipts.drop_duplicates("receipt_no")  # a repeated receipt: its lines go with its first row
    position = pd.Index(first["receipt_no"]).get_indexer(lines["receipt_no"])
    orphan_lines = empty_receipt_orphan_lines()
    if (position < 0).any():
        orphan_lines = _orphan_receipt_lines(engine, tables, lines[position < 0], first_day, last_day)
        lines, position = lines[position >= 0].reset_index(drop=True), position[position >= 0]
    line_order = np.lexsort((lines["line_no"].to_numpy(dtype=np.int64, na_value=0), position))
    lines, position = _reordered(lines, line_order), position[line_order]
    line_flagged = _flagged(lines.pop(EXCESS_PLACES))

    excess = empty_receipt_excess_decimals()
    if receipt_flagged.any() or line_flagged.any():
        days = first["business_date"].to_numpy(dtype=object)
        excess = _receipt_excess_decimals(
            engine, tables, receipts[receipt_flagged],
            lines[line_flagged].assign(business_date=days[position[line_flagged]]))
    # each line carries its receipt's day, as sales lines do: the asset store splits a read by day, and a
    # frame without the day would be kept whole with every day (a read of days stored by different runs would
    # then hold only the last run's lines)
    lines.insert(1, "business_date", first["business_date"].to_numpy(dtype=object)[position] if len(lines) else
                 np.array([], dtype=object))
    return GoodsReceived(receipts=receipts, lines=lines, orphan_lines=orphan_lines, excess_decimals=excess)


def _orphan_receipt_lines(engine: Engine, tables: CITables, orphans: pd.DataFrame, first_day: date, last_day: date) -> pd.DataFrame:
    """RECEIPT_ORPHAN_LINE_COLUMNS for lines read without their receipt, each with what CI says of its receipt now."""
    days, reasons = _orphan_days_and_reasons(engine, tables.goods_received, "receipt_no", "received_date", orphans,
                                             first_day, last_day, "receipt", "receipt ", "received")
    return pd.DataFrame({
        "business_date": days,
        "receipt_no": orphans["receipt_no"].to_numpy(dtype=object),
        "line_no": orphans["line_no"].astype("Int64").array,
        "line_total_excl_cents": orphans["line_total_excl_cents"].astype("Int64").array,
        "line_gst_cents": orphans["line_gst_cents"].astype("Int64").array,
        "reason": reasons,
    }, columns=RECEIPT_ORPHAN_LINE_COLUMNS)


def _receipt_excess_decimals(engine: Engine, tables: CITables, receipts: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """RECEIPT_EXCESS_DECIMAL_COLUMNS for the flagged receipts and lines (their values read again as
    text, by number: few rows). lines carry their receipt's business_date."""
    rows: list[dict] = []
    g, l = tables.goods_received, tables.goods_received_lines
    waits = "the receipt waits until CI holds the value to {places} decimals"
    if len(receipts):
        numbers = sorted(set(receipts["receipt_no"].tolist()))
        texts = _lookup(
            engine,
            lambda chunk: select(g.c.receipt_no.label("receipt_no"),
                                 *(cast(g.c[name], String).label(name) for name in RECEIPT_PLACES)).where(g.c.receipt_no.in_(chunk)),
            numbers,
            {"receipt_no": TEXT, **{name: TEXT for name in RECEIPT_PLACES}},
        )
        day_of = dict(zip(receipts["receipt_no"], receipts["business_date"]))
        rows += _excess_rows(texts, RECEIPT_PLACES, day_of, numbers, line=False, number_column="receipt_no",
                             waits=waits, subject="the receipt")
    if len(lines):
        numbers = sorted(set(lines["receipt_no"].tolist()))
        texts = _lookup(
            engine,
            lambda chunk: select(l.c.receipt_no.label("receipt_no"), l.c.line_no.label("line_no"),
                                 *(cast(l.c[name], String).label(name) for name in RECEIPT_LINE_PLACES)).where(l.c.receipt_no.in_(chunk)),
            numbers,
            {"receipt_no": TEXT, "line_no": INT64, **{name: TEXT for name in RECEIPT_LINE_PLACES}},
        )
        wanted = set(zip(lines["receipt_no"].tolist(), lines["line_no"].tolist()))
        texts = texts[[(number, int(line_no)) in wanted for number, line_no in zip(texts["receipt_no"], texts["line_no"])]]
        day_of = dict(zip(lines["receipt_no"], lines["business_date"]))
        rows += _excess_rows(texts, RECEIPT_LINE_PLACES, day_of, sorted(wanted), line=True, number_column="receipt_no",
                             waits=waits, subject="the receipt")
    return _excess_frame(rows, "receipt_no", RECEIPT_EXCESS_DECIMAL_COLUMNS, empty_receipt_excess_decimals)


def changed_receipts_since(engine: Engine, since: datetime | None, names: CINames | None = None) -> pd.DataFrame:
    """Goods receipts whose updated_at is later than `since` (all receipts when None), oldest change
    first (for the payables change sensor): receipt_no, business_date (received_date, 'YYYY-MM-DD'),
    status, updated_at."""
    g = build_ci_tables(names).goods_received
    statement = (
        select(
            g.c.receipt_no.label("receipt_no"),
            as_text(g.c.received_date, "business_date"),
            g.c.status.label("status"),
            as_text(g.c.updated_at, "updated_at"),
        )
        .where(and_(true(), *([g.c.updated_at > since] if since is not None else [])))
        .order_by(g.c.updated_at, g.c.receipt_no)
    )
    return read_frame(engine, statement, RECEIPT_CHANGE_COLUMNS)
