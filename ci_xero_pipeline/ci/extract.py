"""Extraction from the CI views into DataFrames that follow docs/data-contracts.md.

Money, quantities and prices are converted to integer units in SQL (`CAST(ROUND(x * 100) AS ...)`), so
no binary float is ever made in Python, and arrive as pandas `Int64` columns. Dates are `YYYY-MM-DD`
strings on every dialect; timestamps naive datetime64.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, String, and_, cast, create_engine, event, func, literal_column, select, true, type_coerce
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from ..bulk import cycle_collector_paused
from .tables import CINames, CITables, build_ci_tables

FETCH_ROWS = 100_000  # rows converted at a time: bounds the Python objects alive during a fetch

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


@dataclass(frozen=True)
class SalesDocuments:
    """CI sales documents of a date range (every status) and their lines, per docs/data-contracts.md."""

    invoices: pd.DataFrame
    lines: pd.DataFrame

    def __len__(self) -> int:
        return len(self.invoices)

    @property
    def empty(self) -> bool:
        return self.invoices.empty


def _document_filter(tables: CITables, first_day: date, last_day: date, source: str | None) -> ColumnElement:
    invoices = tables.sales_invoices
    conditions = [invoices.c.business_date >= first_day, invoices.c.business_date <= last_day]
    if source is not None:
        conditions.append(invoices.c.source == source)
    return and_(*conditions)


def invoices_statement(tables: CITables, first_day: date, last_day: date, source: str | None):
    i, b = tables.sales_invoices, tables.branches
    return (
        select(
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
        )
        .select_from(i.outerjoin(b, b.c.branch_code == i.c.branch_code))
        .where(_document_filter(tables, first_day, last_day, source))
    )


def lines_statement(tables: CITables, first_day: date, last_day: date, source: str | None):
    i, l = tables.sales_invoices, tables.sales_invoice_lines
    return (
        select(
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
        )
        .select_from(l.join(i, i.c.invoice_no == l.c.invoice_no))
        .where(_document_filter(tables, first_day, last_day, source))
    )


def extract_sales_documents(
    engine: Engine,
    first_day: date,
    last_day: date,
    source: str | None = "ERETAILER",
    names: CINames | None = None,
) -> SalesDocuments:
    """The sales documents of `source` (None: every source) whose business_date is in
    first_day..last_day (inclusive), every status, with their lines."""
    tables = build_ci_tables(names)
    invoices, lines = read_frames(engine, [
        (invoices_statement(tables, first_day, last_day, source), INVOICE_COLUMNS),
        (lines_statement(tables, first_day, last_day, source), LINE_COLUMNS),
    ])
    # Sorted here rather than in SQL: no server-side sort of a million rows, and the same order
    # (Unicode code points) on every dialect whatever the database's collation.
    invoice_nos = invoices["invoice_no"].to_numpy().astype(str)
    invoice_order = np.lexsort((invoice_nos, invoices["business_date"].to_numpy().astype(str)))
    invoices = _reordered(invoices, invoice_order)
    invoice_nos = invoice_nos[invoice_order]

    # Each line takes its document's business_date (cheaper than a million more strings from SQL). A
    # line whose document is not among the invoices (written between the two reads, SQLite) is left
    # out: the lines are those of the documents returned.
    document = _documents_of(invoices["invoice_no"], lines["invoice_no"].to_numpy())
    if (document < 0).any():
        lines, document = lines[document >= 0].reset_index(drop=True), document[document >= 0]
    # the lines' invoice numbers as the very str objects of their documents (equal values; a million
    # fewer strings to hold)
    lines["invoice_no"] = invoices["invoice_no"].to_numpy()[document]
    rank_by_number = np.empty(len(invoice_nos), dtype=np.int64)
    rank_by_number[np.argsort(invoice_nos, kind="stable")] = np.arange(len(invoice_nos))
    line_order = np.lexsort((lines["line_no"].to_numpy(dtype=np.int64, na_value=0), rank_by_number[document]))
    lines, document = _reordered(lines, line_order), document[line_order]
    lines.insert(1, "business_date", invoices["business_date"].to_numpy()[document])
    return SalesDocuments(invoices=invoices, lines=lines)


def _documents_of(invoice_nos: pd.Series, line_invoice_nos: np.ndarray) -> np.ndarray:
    """Each line's row among the invoices (-1: none), as Index.get_indexer. The lines of a document
    arrive together, so only the first line of each run is looked up."""
    count = len(line_invoice_nos)
    if count == 0:
        return np.empty(0, dtype=np.intp)
    try:
        changes = np.asarray(line_invoice_nos[1:] != line_invoice_nos[:-1], dtype=bool)
    except (TypeError, ValueError):  # values that do not compare: look every line up
        changes = np.ones(count - 1, dtype=bool)
    starts = np.flatnonzero(np.concatenate(([True], changes)))
    found = pd.Index(invoice_nos).get_indexer(line_invoice_nos[starts])
    return np.repeat(found, np.diff(np.append(starts, count)))


def _reordered(frame: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    if len(order) and np.all(order[1:] > order[:-1]):
        return frame  # already in order (usual for SQLite, whose index yields date and number order)
    return frame.take(order).reset_index(drop=True)


def changed_documents_since(
    engine: Engine,
    since: datetime | None,
    source: str | None = "ERETAILER",
    names: CINames | None = None,
) -> pd.DataFrame:
    """Documents whose updated_at is later than `since` (all documents when None), oldest change first:
    invoice_no, business_date ('YYYY-MM-DD'), status, updated_at."""
    i = build_ci_tables(names).sales_invoices
    conditions = []
    if since is not None:
        conditions.append(i.c.updated_at > since)
    if source is not None:
        conditions.append(i.c.source == source)
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
