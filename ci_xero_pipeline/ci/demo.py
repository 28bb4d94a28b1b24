"""The demo CI database: the contract's views created as tables and filled with realistic, reproducible
retail data (an online store with click & collect, a few shops, account customers, deliveries).

Everything is generated with numpy's seeded Generator in integer units (cents, thousandths,
ten-thousandths) with commercial rounding done in integer arithmetic; money reaches the database as
exact decimal text (SQLite) or Decimal (servers), never as a binary float. The same arguments always
give the same rows.

The tills' end-of-day takings (processes.md §1, §5) get what an accountant meets in real takings: gift
vouchers sold at the counter (analysis code VOUCHER, exempt), NZ cash rounding of cash sales to 10 cents
(a ROUNDING line), tills over and short, and named scenarios (TAKINGS_SCENARIOS) at fixed branches and
days. They are drawn from a random stream of their own (the seed with TILLS_STREAM), so the web
store's documents, the account customers' and the deliveries are the same rows as before the tills had
them (the main stream draws exactly what it drew).

Account customers, inwards goods and cost of goods sold (processes.md §2-§4) get named scenarios too
(RECEIVABLES_SCENARIOS, PAYABLES_SCENARIOS, COGS_SCENARIOS): documents and receipts of their own, with
numbers of their own series, added after everything the random streams draw (they draw nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Table, create_engine
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from .extract import normalised_url
from .tables import CINames, CITables, build_ci_tables

NZ = ZoneInfo("Pacific/Auckland")
ERETAILER, POS, ACCOUNT = "ERETAILER", "POS", "ACCOUNT"
WEB = "WEB"

BRANCHES = [
    ("WEB", "Online Store"),
    ("AKL01", "Auckland Queen Street"),
    ("WLG01", "Wellington Lambton Quay"),
    ("CHC01", "Christchurch Riccarton"),
    ("HAM01", "Hamilton Te Rapa"),
    ("DUN01", "Dunedin George Street"),
    ("TRG01", "Tauranga Red Square"),
    ("NPL01", "New Plymouth Devon Street"),
    ("PMR01", "Palmerston North The Square"),
    ("NSN01", "Nelson Trafalgar Street"),
    ("ROT01", "Rotorua Tutanekai Street"),
    ("NPE01", "Napier Emerson Street"),
]
CLOSED_BRANCH = ("NWM01", "Newmarket Broadway (closed)")  # inactive, never has documents

# Catalogue: (analysis code, item, GST-inclusive unit price, sold by the metre)
ITEMS = [
    ("APPAREL", "Merino Crew Neck Jumper", "129.90", False),
    ("APPAREL", "Linen Button Shirt", "89.90", False),
    ("APPAREL", "Organic Cotton Tee", "39.99", False),
    ("APPAREL", "Slim Denim Jeans", "119.00", False),
    ("APPAREL", "Puffer Jacket", "249.90", False),
    ("APPAREL", "Packable Rain Shell", "179.90", False),
    ("APPAREL", "Chino Shorts", "69.90", False),
    ("APPAREL", "Wrap Summer Dress", "139.90", False),
    ("APPAREL", "Fleece Hoodie", "99.90", False),
    ("APPAREL", "Pique Polo Shirt", "59.90", False),
    ("APPAREL", "Linen Fabric per Metre", "24.9950", True),
    ("APPAREL", "Cotton Drill per Metre", "18.5000", True),
    ("FOOTWEAR", "Leather Sneakers", "189.90", False),
    ("FOOTWEAR", "Waterproof Walking Boots", "279.00", False),
    ("FOOTWEAR", "Rubber Jandals", "19.9900", False),
    ("FOOTWEAR", "Canvas Lace-up Shoes", "79.90", False),
    ("FOOTWEAR", "Chelsea Boots", "229.90", False),
    ("FOOTWEAR", "Trail Running Shoes", "199.90", False),
    ("FOOTWEAR", "Sheepskin Slippers", "89.00", False),
    ("ACCESSORIES", "Leather Belt", "59.90", False),
    ("ACCESSORIES", "Merino Scarf", "69.90", False),
    ("ACCESSORIES", "Rib Knit Beanie", "34.90", False),
    ("ACCESSORIES", "Canvas Tote Bag", "29.90", False),
    ("ACCESSORIES", "Polarised Sunglasses", "89.90", False),
    ("ACCESSORIES", "Wool Socks 3-Pack", "33.3333", False),
    ("ACCESSORIES", "Six-Panel Cap", "39.90", False),
    ("ACCESSORIES", "Leather Card Wallet", "49.90", False),
    ("GIFTS", "Soy Scented Candle", "32.50", False),
    ("GIFTS", "Stoneware Mug", "24.90", False),
    ("GIFTS", "Greeting Card", "6.99", False),
    ("GIFTS", "Linen Tea Towel", "19.90", False),
    ("GIFTS", "Manuka Honey Soap Set", "27.4995", False),
    ("GIFTS", "Hardcover Notebook", "22.00", False),
]
COLOURS = [
    ("BLK", "Black"), ("NVY", "Navy"), ("CHR", "Charcoal"), ("FGR", "Forest Green"), ("SND", "Sand"),
    ("RST", "Rust"), ("WHT", "White"), ("GRM", "Grey Marl"), ("OLV", "Olive"), ("BRG", "Burgundy"),
]
CATALOGUE_SEED = 1987  # the shop's catalogue does not change with the data seed

FIRST_NAMES = [
    "Aroha", "Ben", "Charlotte", "Daniel", "Emma", "Finn", "Grace", "Hemi", "Isla", "Jack", "Kiri", "Liam",
    "Mia", "Noah", "Olivia", "Priya", "Quinn", "Ruby", "Sam", "Tama", "Una", "Vikram", "Wiremu", "Xin",
    "Yasmin", "Zoe", "Mele", "Sione", "Hannah", "Oliver",
]
LAST_NAMES = [
    "Smith", "Ngata", "Wilson", "Chen", "Patel", "Brown", "Taylor", "Walker", "Harris", "Kumar", "Tūhoe",
    "Young", "King", "Singh", "Martin", "Clarke", "Te Rangi", "Li", "Robinson", "Thompson", "Wong",
    "Campbell", "Stewart", "Anderson", "Fa'amausili", "Morgan", "Nguyen", "Parata", "Kelly", "Scott",
]
ACCOUNT_CUSTOMERS = [
    ("ACC001", "Harbourside Theatre Company"), ("ACC002", "Kiwi Costume Hire Ltd"),
    ("ACC003", "St Mary's College Uniform Shop"), ("ACC004", "Southern Alps Guiding Ltd"),
    ("ACC005", "Capital Events Group"), ("ACC006", "Bay Hospitality Staffing"),
    ("ACC007", "Riverside Rugby Club"), ("ACC008", "Aotearoa Film Wardrobe Ltd"),
    ("ACC009", "Coastal Corporate Gifts"), ("ACC010", "Northland Outdoor Education Trust"),
]
SUPPLIERS = [
    ("SUP01", "Canterbury Knitwear Mills Ltd", "CKM"), ("SUP02", "Pacific Footwear Imports", "PFI"),
    ("SUP03", "Southern Leather Co", "SLC"), ("SUP04", "Kauri Gift Wholesale", "KGW"),
    ("SUP05", "Textile Traders Auckland", "TTA"), ("SUP06", "Alpine Outdoor Supply", "AOS"),
]

ERETAILER_TENDERS = (["ONLINE", "VISA", "MASTERCARD", "PAYPAL", "AFTERPAY"], [0.30, 0.30, 0.15, 0.15, 0.10])
POS_TENDERS = (["CASH", "EFTPOS", "VISA", "MASTERCARD", "AMEX"], [0.25, 0.40, 0.20, 0.10, 0.05])
DOMESTIC_FREIGHT_X10000 = np.array([69_000, 99_000, 149_000])  # 6.90, 9.90, 14.90
EXPORT_FREIGHT_X10000 = 350_000  # 35.00
DONATION_X10000 = np.array([20_000, 50_000, 100_000])
DONATION_DESCRIPTION = "Donation - KidsCan Charitable Trust"
INSERT_CHUNK_ROWS = 50_000

# The tills: gift vouchers sold, cash rounding, the takings scenarios (a stream of their own, see above)
TILLS_STREAM = 9  # mixed with the seed: np.random.default_rng([seed, TILLS_STREAM])
VOUCHER, ROUNDING = "VOUCHER", "ROUNDING"  # CI analysis codes of a gift voucher sold and of cash rounding
VOUCHER_DESCRIPTION, ROUNDING_DESCRIPTION = "Gift voucher", "Cash rounding"
VOUCHER_SALE_RATE = 0.03  # share of till invoices that also sell a gift voucher
TILL_VOUCHERS_CENTS = np.array([2000, 5000, 10000])
CASH_STEP_CENTS = 10  # NZ has no 1c, 2c or 5c coins: cash is paid in multiples of 10 cents
MISCOUNT_SHORT_CENTS = -500  # the over_short scenario's till: $5.00 short
# name -> (branch, trading days before the database's last day); the voucher pair moves to the
# nearest day on which a web order really was paid in part by gift voucher (the web store's data is
# never changed for the tills): DemoSummary.takings_scenarios says where each one is in a database
TAKINGS_SCENARIO_PLAN: dict[str, tuple[str, int]] = {
    "negative_tender": ("AKL01", 1),  # net sales, but a large cash refund: CASH nets negative
    "net_negative": ("WLG01", 2),  # a large refund to EFTPOS: the branch-day's tenders net negative
    "over_short": ("CHC01", 3),  # the cash counted is $5.00 short of the cash expected
    "voucher_sold": ("HAM01", 1),  # a gift voucher sold at the till …
    "voucher_redeemed_online": (WEB, 1),  # … on a day a web order is paid in part by gift voucher
}
DEMO_MONTH_END = date(2026, 10, 31)  # the month the tests and benchmarks build (their end_day)


def takings_scenarios(last_day: date) -> dict[str, tuple[str, str]]:
    """Where the takings scenarios are planned in a demo database whose last day is last_day: name ->
    (branch_code, ISO day)."""
    return {name: (branch, (last_day - timedelta(days=back)).isoformat()) for name, (branch, back) in TAKINGS_SCENARIO_PLAN.items()}


# the scenarios of the demo month, as the demo_ci_url fixture builds it (6 days, 5 branches): each one
# really is in that database (test_demo_takings_data)
TAKINGS_SCENARIOS: dict[str, tuple[str, str]] = takings_scenarios(DEMO_MONTH_END)


# ---------------------------------------------------------------------------------------------------
# Integer arithmetic


def half_up_divide(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """numerator / denominator rounded half away from zero (CI's and Xero's rounding), in integers."""
    numerator = np.asarray(numerator, dtype=np.int64)
    magnitude = (2 * np.abs(numerator) + denominator) // (2 * denominator)
    return np.where(numerator < 0, -magnitude, magnitude)


def line_total_cents(quantity_x1000, price_x10000, discount_cents) -> np.ndarray:
    """The contract's line total: round(quantity × unit price − discount, 2), and on a line of negative
    quantity (a credit's) −round(|quantity| × unit price − discount, 2): the discount always reduces the
    line's size, so a refund gives back what was paid. The product is in 1e-7 units, 1e5 of them a cent."""
    quantity_x1000 = np.asarray(quantity_x1000, dtype=np.int64)
    raw = np.abs(quantity_x1000) * np.asarray(price_x10000, dtype=np.int64) - np.asarray(discount_cents, dtype=np.int64) * 100_000
    size = half_up_divide(raw, 100_000)
    return np.where(quantity_x1000 < 0, -size, size)


def gst_cents(total_cents, gst_codes) -> np.ndarray:
    """GST inside a GST-inclusive amount: round(total × 3/23) for S, nothing for Z and E."""
    return np.where(np.asarray(gst_codes, dtype=object) == "S", half_up_divide(3 * np.asarray(total_cents), 23), 0)


def segment_sums(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sums of consecutive runs of `counts` values (every count ≥ 1), exact in int64."""
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    return np.add.reduceat(np.asarray(values, dtype=np.int64), starts)


def positions_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, …, count-1 for each count, concatenated."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(starts, counts)


# ---------------------------------------------------------------------------------------------------
# Catalogue


@dataclass(frozen=True)
class Catalogue:
    sku: np.ndarray
    description: np.ndarray
    analysis_code: np.ndarray
    price_x10000: np.ndarray
    cost_x10000: np.ndarray
    by_the_metre: np.ndarray
    popularity: np.ndarray  # probabilities for choosing a product (not money)

    def __len__(self) -> int:
        return len(self.sku)


def scaled(text: str, places: int) -> int:
    value = Decimal(text).scaleb(places)
    if value != value.to_integral_value():
        raise ValueError(f"{text} has more than {places} decimals")
    return int(value)


def build_catalogue() -> Catalogue:
    """About 250 SKUs: every item in several colours; unit cost 40–60 % of the GST-exclusive price."""
    rng = np.random.default_rng(CATALOGUE_SEED)
    rows = []
    prefixes = {"APPAREL": "AP", "FOOTWEAR": "FW", "ACCESSORIES": "AC", "GIFTS": "GF"}
    for number, (analysis, item, price, by_metre) in enumerate(ITEMS, start=1):
        colours = rng.choice(len(COLOURS), size=int(rng.integers(5, 10)), replace=False)
        for colour in sorted(colours):
            code, colour_name = COLOURS[colour]
            price_x10000 = scaled(price, 4)
            margin_percent = int(rng.integers(40, 61))
            cost_x10000 = price_x10000 * 20 * margin_percent // (23 * 100)
            rows.append((f"{prefixes[analysis]}{number:03d}-{code}", f"{item} - {colour_name}", analysis,
                         price_x10000, cost_x10000, by_metre))
    rank = rng.permutation(len(rows))
    popularity = 1.0 / (rank + 8.0)
    return Catalogue(
        sku=np.array([r[0] for r in rows], dtype=object),
        description=np.array([r[1] for r in rows], dtype=object),
        analysis_code=np.array([r[2] for r in rows], dtype=object),
        price_x10000=np.array([r[3] for r in rows], dtype=np.int64),
        cost_x10000=np.array([r[4] for r in rows], dtype=np.int64),
        by_the_metre=np.array([r[5] for r in rows], dtype=bool),
        popularity=popularity / popularity.sum(),
    )


# ---------------------------------------------------------------------------------------------------
# Sales documents


@dataclass
class GeneratedSales:
    """Column arrays of generated documents (document order) and their lines (document, line order)."""

    docs: dict[str, np.ndarray]
    lines: dict[str, np.ndarray]


def generate_sales(
    rng: np.random.Generator,
    catalogue: Catalogue,
    branch: np.ndarray,
    *,
    lines_range: tuple[int, int],
    credit_rate: float,
    freight_rate: float = 0.0,
    freight_allowed: np.ndarray | None = None,
    export_rate: float = 0.0,
    donation_rate: float = 0.0,
    discount_rate: float = 0.0,
    lookback: int = 3000,
) -> GeneratedSales:
    """Documents in time order: invoices with fresh lines, credits that return the first lines of an
    earlier invoice (same branch; negative quantities, and the original line's discount, so that a
    refund of a discounted sale gives back what was paid)."""
    n = len(branch)
    low, high = lines_range
    is_credit = rng.random(n) < credit_rate
    if n:
        is_credit[0] = False  # a credit needs an earlier invoice
    invoice_positions = np.flatnonzero(~is_credit)
    credit_positions = np.flatnonzero(is_credit)
    invoices_before = np.searchsorted(invoice_positions, credit_positions)
    back = rng.integers(0, np.minimum(invoices_before, lookback)) if len(credit_positions) else np.zeros(0, dtype=np.int64)
    original = np.full(n, -1, dtype=np.int64)
    original[credit_positions] = invoice_positions[invoices_before - 1 - back]

    branch = branch.copy()
    branch[credit_positions] = branch[original[credit_positions]]
    n_lines = rng.integers(low, high + 1, size=n)
    n_lines[credit_positions] = rng.integers(low, n_lines[original[credit_positions]] + 1)
    export = (rng.random(n) < export_rate) & ~is_credit
    export[credit_positions] = export[original[credit_positions]]
    allowed = np.ones(n, dtype=bool) if freight_allowed is None else freight_allowed.copy()
    freight = ~is_credit & allowed & (n_lines >= 2) & ((rng.random(n) < freight_rate) | export)
    donation = ~is_credit & ~export & (n_lines - freight >= 2) & (rng.random(n) < donation_rate)

    # Fresh lines of the invoices
    counts = n_lines[invoice_positions]
    line_doc = np.repeat(invoice_positions, counts)
    position = positions_within(counts)
    last_position = n_lines[line_doc] - 1
    freight_line = freight[line_doc] & (position == last_position)
    donation_line = donation[line_doc] & (position == last_position - freight[line_doc])
    stock_line = ~freight_line & ~donation_line
    total = len(line_doc)

    product = rng.choice(len(catalogue), size=total, p=catalogue.popularity)
    metres = rng.integers(1, 7, size=total) * 500  # 0.5 m steps
    units = rng.choice(np.array([1, 2, 3, 4]), size=total, p=[0.72, 0.17, 0.07, 0.04]) * 1000
    quantity = np.where(catalogue.by_the_metre[product], metres, units)
    price = catalogue.price_x10000[product].copy()
    cost = catalogue.cost_x10000[product].copy()
    cost_missing = np.zeros(total, dtype=bool)
    sku = catalogue.sku[product].copy()
    description = catalogue.description[product].copy()
    analysis = catalogue.analysis_code[product].copy()
    gst_code = np.full(total, "S", dtype=object)
    gst_code[export[line_doc]] = "Z"

    freight_price = np.where(export, EXPORT_FREIGHT_X10000, rng.choice(DOMESTIC_FREIGHT_X10000, size=n))
    donation_price = rng.choice(DONATION_X10000, size=n)
    for is_special, unit_price, text, code in (
        (freight_line, freight_price, "Freight", "FREIGHT"),
        (donation_line, donation_price, DONATION_DESCRIPTION, "GIFTS"),
    ):
        quantity[is_special] = 1000
        price[is_special] = unit_price[line_doc[is_special]]
        cost_missing[is_special] = True
        sku[is_special] = None
        description[is_special] = text
        analysis[is_special] = code
    gst_code[donation_line] = "E"

    gross_cents = half_up_divide(quantity * price, 100_000)
    discount_percent = rng.choice(np.array([10, 15, 20, 25]), size=total)
    discounted = stock_line & (rng.random(total) < discount_rate)
    discount = np.where(discounted, gross_cents * discount_percent // 100, 0)

    lines = {
        "doc": line_doc, "line_no": position + 1, "sku": sku, "description": description,
        "quantity_x1000": quantity, "unit_price_incl_x10000": price, "discount_incl_cents": discount,
        "gst_code": gst_code, "analysis_code": analysis, "unit_cost_excl_x10000": cost,
        "unit_cost_missing": cost_missing,
    }

    # Credits copy the first lines of their original, negated
    if len(credit_positions):
        fresh_start = np.zeros(n, dtype=np.int64)
        fresh_start[invoice_positions] = np.cumsum(counts) - counts
        credit_counts = n_lines[credit_positions]
        credit_position = positions_within(credit_counts)
        source = np.repeat(fresh_start[original[credit_positions]], credit_counts) + credit_position
        copied = {name: values[source] for name, values in lines.items()}
        copied["doc"] = np.repeat(credit_positions, credit_counts)
        copied["line_no"] = credit_position + 1
        copied["quantity_x1000"] = -copied["quantity_x1000"]  # the discount stays: it reduces the refund
        order = np.lexsort((np.concatenate([lines["line_no"], copied["line_no"]]),
                            np.concatenate([lines["doc"], copied["doc"]])))
        lines = {name: np.concatenate([lines[name], copied[name]])[order] for name in lines}

    lines["line_total_incl_cents"] = line_total_cents(
        lines["quantity_x1000"], lines["unit_price_incl_x10000"], lines["discount_incl_cents"])
    lines["line_gst_cents"] = gst_cents(lines["line_total_incl_cents"], lines["gst_code"])
    docs = {
        "branch": branch, "is_credit": is_credit, "original": original, "export": export, "n_lines": n_lines,
        "total_incl_cents": segment_sums(lines["line_total_incl_cents"], n_lines),
        "total_gst_cents": segment_sums(lines["line_gst_cents"], n_lines),
    }
    return GeneratedSales(docs, lines)


def sorted_times(rng: np.random.Generator, day: np.ndarray, opens: int, closes: int, all_day_share: float = 0.0) -> np.ndarray:
    """Seconds since the first day's midnight, increasing, each within its (non-decreasing) day."""
    seconds = rng.integers(opens, closes, size=len(day))
    anytime = rng.random(len(day)) < all_day_share
    seconds[anytime] = rng.integers(0, 86_400, size=int(anytime.sum()))
    return np.sort(day.astype(np.int64) * 86_400 + seconds)


def statuses(rng: np.random.Generator, n: int, held: float, void: float) -> np.ndarray:
    draw = rng.random(n)
    status = np.full(n, "FINAL", dtype=object)
    status[draw < held + void] = "VOID"
    status[draw < held] = "HELD"
    return status


def updated_times(rng: np.random.Generator, created: np.ndarray, status: np.ndarray, edited_share: float) -> np.ndarray:
    """Voided and some edited documents changed minutes to three days after they were made."""
    changed = (status == "VOID") | (rng.random(len(created)) < edited_share)
    delay = rng.integers(60, 3 * 86_400, size=len(created))
    return np.where(changed, created + delay, created)


def numbered(prefix: str, start: int, count: int, digits: int) -> np.ndarray:
    return np.array([f"{prefix}{number:0{digits}d}" for number in range(start, start + count)], dtype=object)


def copy_from_original(values: np.ndarray, sales: GeneratedSales) -> np.ndarray:
    credits = np.flatnonzero(sales.docs["is_credit"])
    values = values.copy()
    values[credits] = values[sales.docs["original"][credits]]
    return values


def web_customers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), size=count)]
    last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), size=count)]
    codes = numbered("WC", 100_001, count, 6)
    names = np.array([f"{f} {l}" for f, l in zip(first, last)], dtype=object)
    emails = np.array(
        [f"{f.lower()}.{''.join(c for c in l.lower() if c.isalnum())}{i % 97}@example.co.nz"
         for i, (f, l) in enumerate(zip(first, last))],
        dtype=object,
    )
    return codes, names, emails


def tenders_for(
    rng: np.random.Generator,
    invoice_no: np.ndarray,
    total_cents: np.ndarray,
    paid_at: np.ndarray,
    types: tuple[list[str], list[float]],
    voucher_share: float = 0.0,
) -> dict[str, np.ndarray]:
    """One tender per document for its total (negative: a refund), some invoices part paid by voucher."""
    n = len(invoice_no)
    primary = np.array(types[0], dtype=object)[rng.choice(len(types[0]), size=n, p=types[1])]
    voucher = rng.choice(np.array([1000, 2000, 5000]), size=n)
    split = (rng.random(n) < voucher_share) & (total_cents >= voucher + 100)
    count = 1 + split.astype(np.int64)
    doc = np.repeat(np.arange(n), count)
    tender_no = positions_within(count) + 1
    first_of_split = split[doc] & (tender_no == 1)
    amount = np.where(first_of_split, voucher[doc], total_cents[doc] - np.where(split[doc], voucher[doc], 0))
    tender_type = np.where(first_of_split, "GIFT_VOUCHER", primary[doc]).astype(object)
    return {"invoice_no": invoice_no[doc], "tender_no": tender_no, "tender_type": tender_type,
            "amount": amount, "paid_at": paid_at[doc]}


# ---------------------------------------------------------------------------------------------------
# The tills: gift vouchers sold, cash rounding and the takings scenarios


def ceil_divide(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass
class TillDocuments:
    """POS documents while the tills' extras are added to them: column arrays per document (branch,
    day, created, updated, status, is_credit, original, tender_type: one tender per document, for its
    total; account_cents: the part of the total charged to account instead (a second tender, ACCOUNT),
    and customer: its account customer's index in ACCOUNT_CUSTOMERS, else -1) and per line (doc,
    line_no and GeneratedSales' line columns, totals included). Documents are added at the end and
    lines after their document's own; finished() puts them in time order."""

    docs: dict[str, np.ndarray]
    lines: dict[str, np.ndarray]

    @classmethod
    def of(cls, sales: GeneratedSales, day: np.ndarray, created: np.ndarray, updated: np.ndarray,
           status: np.ndarray, tender_type: np.ndarray) -> TillDocuments:
        docs = {"branch": sales.docs["branch"], "day": day, "created": created, "updated": updated, "status": status,
                "is_credit": sales.docs["is_credit"], "original": sales.docs["original"], "tender_type": tender_type,
                "account_cents": np.zeros(len(day), dtype=np.int64), "customer": np.full(len(day), -1, dtype=np.int64)}
        return cls({name: np.array(values) for name, values in docs.items()},
                   {name: np.array(values) for name, values in sales.lines.items()})

    def __len__(self) -> int:
        return len(self.docs["day"])

    def totals(self) -> np.ndarray:
        """Each document's total in cents (Σ its lines), exact in int64."""
        total = np.zeros(len(self), dtype=np.int64)
        np.add.at(total, self.lines["doc"], self.lines["line_total_incl_cents"])
        return total

    def takings(self, branch: int, day: int, tender_type: str | None = None) -> int:
        """Σ the FINAL documents of a branch-day (of one tender type)."""
        chosen = (self.docs["status"] == "FINAL") & (self.docs["branch"] == branch) & (self.docs["day"] == day)
        if tender_type is not None:
            chosen &= self.docs["tender_type"] == tender_type
        return int(self.totals()[chosen].sum())

    def add_lines(self, doc: np.ndarray, *, quantity_x1000, unit_price_incl_x10000, gst_code, analysis_code, description,
                  sku=None, unit_cost_excl_x10000=0, unit_cost_missing=True) -> None:
        """One line more on each of `doc` (distinct documents), numbered after their last."""
        doc = np.asarray(doc, dtype=np.int64)
        size = len(doc)

        def column(values, dtype) -> np.ndarray:
            return np.broadcast_to(np.asarray(values, dtype=dtype), (size,)).copy()

        quantity = column(quantity_x1000, np.int64)
        price = column(unit_price_incl_x10000, np.int64)
        codes = column(gst_code, object)
        total = line_total_cents(quantity, price, np.zeros(size, dtype=np.int64))
        added = {
            "doc": doc, "line_no": np.bincount(self.lines["doc"], minlength=len(self))[doc] + 1,
            "sku": column(sku, object), "description": column(description, object), "quantity_x1000": quantity,
            "unit_price_incl_x10000": price, "discount_incl_cents": np.zeros(size, dtype=np.int64), "gst_code": codes,
            "analysis_code": column(analysis_code, object), "unit_cost_excl_x10000": column(unit_cost_excl_x10000, np.int64),
            "unit_cost_missing": column(unit_cost_missing, bool), "line_total_incl_cents": total,
            "line_gst_cents": gst_cents(total, codes),
        }
        self.lines = {name: np.concatenate([values, added[name].astype(values.dtype)]) for name, values in self.lines.items()}

    def add_document(self, branch: int, day: int, created: int, tender_type: str, original: int = -1) -> int:
        """A FINAL document (a credit when it reverses `original`) with no lines yet; its index."""
        added = {"branch": branch, "day": day, "created": created, "updated": created, "status": "FINAL",
                 "is_credit": original >= 0, "original": original, "tender_type": tender_type, "account_cents": 0,
                 "customer": -1}
        self.docs = {name: np.concatenate([values, np.array([added[name]], dtype=values.dtype)]) for name, values in self.docs.items()}
        return len(self) - 1

    def sell(self, catalogue: Catalogue, branch: int, day: int, created: int, tender_type: str,
             products: list[tuple[int, int]]) -> int:
        """A sale of catalogue products [(product, quantity ×1000)], GST standard rated."""
        doc = self.add_document(branch, day, created, tender_type)
        for product, quantity in products:
            self.add_lines(np.array([doc]), quantity_x1000=quantity, unit_price_incl_x10000=catalogue.price_x10000[product],
                           gst_code="S", analysis_code=catalogue.analysis_code[product],
                           description=catalogue.description[product], sku=catalogue.sku[product],
                           unit_cost_excl_x10000=catalogue.cost_x10000[product], unit_cost_missing=False)
        return doc

    def refund(self, original: int, day: int, created: int, tender_type: str) -> int:
        """A credit returning every line of `original` (same branch), refunded to tender_type."""
        doc = self.add_document(int(self.docs["branch"][original]), day, created, tender_type, original=original)
        returned = {name: values[self.lines["doc"] == original] for name, values in self.lines.items()}
        returned["doc"] = np.full(len(returned["doc"]), doc, dtype=np.int64)
        returned["quantity_x1000"] = -returned["quantity_x1000"]
        returned["line_total_incl_cents"] = line_total_cents(
            returned["quantity_x1000"], returned["unit_price_incl_x10000"], returned["discount_incl_cents"])
        returned["line_gst_cents"] = gst_cents(returned["line_total_incl_cents"], returned["gst_code"])
        self.lines = {name: np.concatenate([values, returned[name]]) for name, values in self.lines.items()}
        return doc

    def sell_vouchers(self, docs: np.ndarray, cents: np.ndarray) -> None:
        """A gift voucher sold on each of `docs` (distinct documents) for `cents`: a VOUCHER line, exempt
        (NZ taxes a voucher when it is redeemed), no stock, no cost."""
        self.add_lines(docs, quantity_x1000=1000, unit_price_incl_x10000=np.asarray(cents, dtype=np.int64) * 100,
                       gst_code="E", analysis_code=VOUCHER, description=VOUCHER_DESCRIPTION)

    def sell_vouchers_now_and_then(self, rng: np.random.Generator) -> None:
        """Some invoices also sell a gift voucher."""
        docs = np.flatnonzero(~self.docs["is_credit"] & (rng.random(len(self)) < VOUCHER_SALE_RATE))
        self.sell_vouchers(docs, rng.choice(TILL_VOUCHERS_CENTS, size=len(docs)))

    def round_cash(self) -> None:
        """NZ cash rounding: a document paid in cash whose total is not a multiple of 10 cents gets a
        ROUNDING line (exempt, no stock) to the nearest 10 cents, 5 cents rounding toward zero (the
        retailer's choice in NZ), so the cash paid or refunded is a sum the coins can make."""
        total = self.totals()
        size = np.abs(total)
        left = size % CASH_STEP_CENTS
        rounded = np.where(left <= CASH_STEP_CENTS // 2, size - left, size - left + CASH_STEP_CENTS)
        adjustment = np.sign(total) * (rounded - size)
        docs = np.flatnonzero((self.docs["tender_type"] == "CASH") & (adjustment != 0))
        # a credit's lines have negative quantities: −(1 × −amount) is the amount
        credit = self.docs["is_credit"][docs]
        self.add_lines(docs, quantity_x1000=np.where(credit, -1000, 1000),
                       unit_price_incl_x10000=np.where(credit, -adjustment[docs], adjustment[docs]) * 100,
                       gst_code="E", analysis_code=ROUNDING, description=ROUNDING_DESCRIPTION)

    def finished(self) -> tuple[GeneratedSales, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The documents in time order (ties: the order they were made) as GeneratedSales (whose docs
        carry account_cents and customer too), with their day, created, updated, status and tender type."""
        n = len(self)
        order = np.lexsort((np.arange(n), self.docs["created"], self.docs["day"]))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        docs = {name: values[order] for name, values in self.docs.items()}
        docs["original"] = np.where(docs["original"] >= 0, rank[np.maximum(docs["original"], 0)], -1)
        doc = rank[self.lines["doc"]]
        line_order = np.lexsort((self.lines["line_no"], doc))
        lines = {name: values[line_order] for name, values in self.lines.items()}
        lines["doc"] = doc[line_order]
        n_lines = np.bincount(lines["doc"], minlength=n)
        sales = GeneratedSales(docs={
            "branch": docs["branch"], "is_credit": docs["is_credit"], "original": docs["original"],
            "export": np.zeros(n, dtype=bool), "n_lines": n_lines,
            "total_incl_cents": segment_sums(lines["line_total_incl_cents"], n_lines),
            "total_gst_cents": segment_sums(lines["line_gst_cents"], n_lines),
            "account_cents": docs["account_cents"], "customer": docs["customer"],
        }, lines=lines)
        return sales, docs["day"], docs["created"], docs["updated"], docs["status"], docs["tender_type"]


def catalogue_product(catalogue: Catalogue, item: str) -> int:
    """The first colour of a catalogue item."""
    return int(np.flatnonzero(np.char.startswith(catalogue.description.astype(str), f"{item} - "))[0])


def plant_takings_scenarios(
    rng: np.random.Generator,
    pos: TillDocuments,
    catalogue: Catalogue,
    days: int,
    branch_codes: np.ndarray,
    web_vouchers: Iterable[tuple[int, str, int]],
    miscounts: dict[tuple[int, int, str], int],
) -> dict[str, tuple[str, int]]:
    """The takings scenarios of TAKINGS_SCENARIO_PLAN whose branch the database has and whose day (and
    the day before, for a refund of an earlier sale) it holds: documents added to `pos`, the over/short
    set in `miscounts` ((branch, day, tender) -> counted − expected). web_vouchers: the web store's
    FINAL orders paid in part by gift voucher, (day, branch_code, voucher cents). Returns name ->
    (branch_code, day index)."""
    index_of = {code: i for i, code in enumerate(branch_codes.tolist()) if code != WEB}
    boots, jacket, card = (catalogue_product(catalogue, item) for item in ("Waterproof Walking Boots", "Puffer Jacket", "Greeting Card"))
    boots_cents, jacket_cents = (int(line_total_cents(1000, catalogue.price_x10000[p], 0)) for p in (boots, jacket))
    planted: dict[str, tuple[str, int]] = {}

    def where(name: str, earliest: int) -> tuple[int, int] | None:
        branch, back = TAKINGS_SCENARIO_PLAN[name]
        at = days - 1 - back
        return (index_of[branch], at) if branch in index_of and at >= earliest else None

    def at(day: int, hour: int) -> int:
        return day * 86_400 + hour * 3600 + int(rng.integers(0, 3600))

    def counted_as_expected(branch: int, day: int) -> None:  # the scenario shows one thing, not a random miscount too
        for key in [key for key in miscounts if key[:2] == (branch, day)]:
            del miscounts[key]

    # a customer returns boots bought yesterday for cash: the day's cash refunds outweigh its cash sales
    # by $20 at least, and the branch-day still nets $20 or more of sales
    if found := where("negative_tender", earliest=1):
        branch, day = found
        pairs = max(1, ceil_divide(max(pos.takings(branch, day, "CASH"), 0) + 2000, boots_cents))
        sale = pos.sell(catalogue, branch, day - 1, at(day - 1, 11), "CASH", [(boots, pairs * 1000)])
        pos.refund(sale, day, at(day, 14), "CASH")
        short = pos.takings(branch, day) - 2000
        if short < 0:
            pos.sell(catalogue, branch, day, at(day, 15), "EFTPOS", [(jacket, ceil_divide(-short, jacket_cents) * 1000)])
        counted_as_expected(branch, day)
        planted["negative_tender"] = (branch_codes[branch], day)

    # a bulk order of boots bought yesterday returned to the card: refunds exceed the day's sales by $20 at least
    if found := where("net_negative", earliest=1):
        branch, day = found
        pairs = max(1, ceil_divide(pos.takings(branch, day) + 2000, boots_cents))
        sale = pos.sell(catalogue, branch, day - 1, at(day - 1, 10), "EFTPOS", [(boots, pairs * 1000)])
        pos.refund(sale, day, at(day, 13), "EFTPOS")
        counted_as_expected(branch, day)
        planted["net_negative"] = (branch_codes[branch], day)

    # the till's cash is counted $5.00 short (a cash sale first, if the day has none)
    if found := where("over_short", earliest=0):
        branch, day = found
        paid_cash = (pos.docs["status"] == "FINAL") & (pos.docs["branch"] == branch) & (pos.docs["day"] == day) & (pos.docs["tender_type"] == "CASH")
        if not paid_cash.any():
            pos.sell(catalogue, branch, day, at(day, 12), "CASH", [(card, 1000)])
        counted_as_expected(branch, day)
        miscounts[(branch, day, "CASH")] = MISCOUNT_SHORT_CENTS
        planted["over_short"] = (branch_codes[branch], day)

    # a gift voucher sold at the till on the day nearest the planned one that a web order is paid in part
    # by voucher, for the same amount (the pair an accountant follows through the liability account)
    if found := where("voucher_sold", earliest=0):
        branch, planned = found
        redeemed: dict[int, list[tuple[str, int]]] = {}
        for day, web_branch, cents in web_vouchers:
            redeemed.setdefault(day, []).append((web_branch, cents))
        nearest = sorted(redeemed, key=lambda day: (abs(day - planned), -day))
        day = nearest[0] if nearest else planned
        web_branch, cents = next((v for v in redeemed.get(day, []) if v[0] == WEB), (redeemed.get(day) or [(None, 5000)])[0])
        sale = pos.add_document(branch, day, at(day, 13), "EFTPOS")
        pos.sell_vouchers(np.array([sale]), np.array([cents]))
        planted["voucher_sold"] = (branch_codes[branch], day)
        if web_branch is not None:
            planted["voucher_redeemed_online"] = (web_branch, day)
    return {name: planted[name] for name in TAKINGS_SCENARIO_PLAN if name in planted}


# ---------------------------------------------------------------------------------------------------
# Account customers, inwards goods and cost of goods sold: named scenarios (issue 12)
#
# Documents of their own at fixed branches and days before the database's last day, with CI numbers of
# series of their own (the office's A39…, the receiving dock's GR49…), so that a scenario's numbers are
# known without building the database; the POS document paid in part ON ACCOUNT goes through the tills
# (its P number follows the tills' time order, so DemoSummary names it). They draw nothing from the
# random streams: every other row of a build is what it was without them.

ACCOUNT_TENDER = "ACCOUNT"
# two account customers whose names differ only in case and a trailing space (Xero's contact names
# are unique: a site's contact_name_format has to tell them apart); not in ACCOUNT_CUSTOMERS, whose
# length the main stream's draws depend on
LOOK_ALIKE_CUSTOMERS = [("ACC011", "Jane Smith"), ("ACC012", "JANE SMITH ")]
INTERNATIONAL_FREIGHT = "International freight (zero-rated)"

# name -> (branch, the scenario's day: trading days before the last day, ((CI number, its day back), …));
# planted when the build has the branch and the days
ScenarioPlan = dict[str, tuple[str, int, tuple[tuple[str, int], ...]]]
RECEIVABLES_SCENARIO_PLAN: ScenarioPlan = {
    # an invoice part paid in cash at the counter, then returned whole: the credit (A3900002) is more
    # than the invoice's amount due, so its allocation is the amount due and the rest stays credit
    "credit_exceeds_amount_due": ("AKL01", 3, (("A3900001", 4), ("A3900002", 3))),
    # an invoice raised ahead for a delivery day (dated the day after it was made), part of it
    # credited on the day it was made: the credit's day posts before its original is in Xero
    "original_on_later_day": ("CHC01", 2, (("A3900003", 1), ("A3900004", 2))),
    # two customers, "Jane Smith" and "JANE SMITH ", codes ACC011 and ACC012, an invoice each
    "look_alike_customers": ("WLG01", 2, (("A3900005", 2), ("A3900006", 2))),
    # a stock line whose description is over 4,000 characters (Xero's limit: cut and reported)
    "long_description": ("AKL01", 1, (("A3900007", 1),)),
    # quantities with 3 decimals (fabric by the metre) and unit prices with 4
    "three_decimal_quantities": ("CHC01", 1, (("A3900008", 1),)),
    # a till sale to an account customer paid in part by EFTPOS and the rest ON ACCOUNT (its number is
    # the tills': DemoSummary.receivables_scenarios names it)
    "pos_on_account": ("WLG01", 4, ()),
}
PAYABLES_SCENARIO_PLAN: ScenarioPlan = {
    # two suppliers' invoices with the same number, both FINAL
    "same_number_two_suppliers": ("AKL01", 2, (("GR490001", 3), ("GR490002", 2))),
    # one supplier's invoice delivered in two parts: two receipts with its one number
    "same_supplier_repeats_number": ("WLG01", 1, (("GR490003", 4), ("GR490004", 1))),
    # goods returned to the supplier: a negative receipt (negative quantities and totals)
    "goods_returned": ("CHC01", 1, (("GR490005", 1),)),
    "held_receipt": ("AKL01", 1, (("GR490006", 1),)),
    "void_receipt": ("WLG01", 2, (("GR490007", 2),)),
    # a receipt with standard-rated goods and zero-rated international freight
    "zero_rated_lines": ("AKL01", 2, (("GR490008", 2),)),
}
COGS_SCENARIO_PLAN: ScenarioPlan = {
    # stock lines (sku set) whose unit_cost_excl is NULL beside one that has its cost
    "missing_cost": ("HAM01", 3, (("A3900009", 3),)),
    # stock lines with their costs and a freight line (no sku, no cost: not cost of goods sold)
    "freight_not_cogs": ("AKL01", 2, (("A3900010", 2),)),
}
ISSUE12_PLANS: dict[str, ScenarioPlan] = {
    "receivables": RECEIVABLES_SCENARIO_PLAN, "payables": PAYABLES_SCENARIO_PLAN, "cogs": COGS_SCENARIO_PLAN,
}


@dataclass(frozen=True)
class Scenario:
    """Where a named scenario lives in a demo database."""

    branch_code: str
    day: str  # ISO: the branch-day the scenario is about (the credit's, the return's, the journal's)
    numbers: tuple[str, ...] = ()  # its CI documents (invoice_no, receipt_no), in the plan's order
    days: tuple[str, ...] = ()  # each number's business_date (a receipt's received_date)

    @property
    def branch_day(self) -> tuple[str, str]:
        return (self.branch_code, self.day)


def _planned_scenarios(plan: ScenarioPlan, last_day: date) -> dict[str, Scenario]:
    def iso(back: int) -> str:
        return (last_day - timedelta(days=back)).isoformat()

    return {name: Scenario(branch, iso(back), tuple(number for number, _ in documents), tuple(iso(at) for _, at in documents))
            for name, (branch, back, documents) in plan.items()}


def receivables_scenarios(last_day: date) -> dict[str, Scenario]:
    """Where the account-customer scenarios are planned in a demo database whose last day is last_day
    (pos_on_account without its number: the tills number it; DemoSummary has it)."""
    return _planned_scenarios(RECEIVABLES_SCENARIO_PLAN, last_day)


def payables_scenarios(last_day: date) -> dict[str, Scenario]:
    """Where the goods-received scenarios are planned in a demo database whose last day is last_day."""
    return _planned_scenarios(PAYABLES_SCENARIO_PLAN, last_day)


def cogs_scenarios(last_day: date) -> dict[str, Scenario]:
    """Where the cost-of-goods-sold scenarios are planned in a demo database whose last day is last_day."""
    return _planned_scenarios(COGS_SCENARIO_PLAN, last_day)


# the scenarios of the demo month, as the demo_ci_url fixture builds it (6 days, 5 branches): each one
# really is in that database (test_demo_issue12_data)
RECEIVABLES_SCENARIOS: dict[str, Scenario] = receivables_scenarios(DEMO_MONTH_END)
PAYABLES_SCENARIOS: dict[str, Scenario] = payables_scenarios(DEMO_MONTH_END)
COGS_SCENARIOS: dict[str, Scenario] = cogs_scenarios(DEMO_MONTH_END)


def _account_customer_columns(customers: list[tuple[str, str]]) -> tuple[list, list, list]:
    """(codes, names, emails) of account customers."""
    return ([code for code, _ in customers], [name for _, name in customers],
            [f"accounts@{code.lower()}.example.co.nz" for code, _ in customers])


def long_description(base: str) -> str:
    """A stock description over 4,000 characters: a uniform order's embroidery and size schedule."""
    sizes = ["XS", "S", "M", "L", "XL", "2XL"]
    parts = [f"{base}, embroidered with the college crest (left chest, 8 cm, thread navy 2344 and gold 1022)."
             " Size and name schedule:"]
    number = 0
    while len(" ".join(parts)) <= 4200:
        number += 1
        parts.append(f"student {number:03d} size {sizes[number % len(sizes)]} name tape '{FIRST_NAMES[number % len(FIRST_NAMES)]}';")
    return " ".join(parts)


class Issue12Plants:
    """Plants the scenarios of ISSUE12_PLANS into a build's data (add_other_processes calls it).
    planted: process -> name -> (branch_code, day index, numbers, day index of each number)."""

    def __init__(self, catalogue: Catalogue, days: int, branch_codes: np.ndarray):
        self.catalogue, self.days, self.branch_codes = catalogue, days, branch_codes
        self.index_of = {code: i for i, code in enumerate(branch_codes.tolist()) if code != WEB}
        self.planted: dict[str, dict[str, tuple[str, int, tuple[str, ...], tuple[int, ...]]]] = {process: {} for process in ISSUE12_PLANS}
        self._till_sale: tuple[str, int, int] | None = None  # pos_on_account: (branch_code, day, document)

    def where(self, process: str, name: str) -> tuple[int, int, list[int]] | None:
        """(branch index, the scenario's day index, each number's day index) when the build holds them."""
        branch, back, documents = ISSUE12_PLANS[process][name]
        backs = [back, *(at for _, at in documents)]
        if branch not in self.index_of or max(backs) > self.days - 1:
            return None
        return self.index_of[branch], self.days - 1 - back, [self.days - 1 - at for _, at in documents]

    def mark(self, process: str, name: str, numbers: tuple[str, ...] | None = None, days: tuple[int, ...] | None = None) -> None:
        branch, back, documents = ISSUE12_PLANS[process][name]
        self.planted[process][name] = (
            branch, self.days - 1 - back,
            numbers if numbers is not None else tuple(number for number, _ in documents),
            days if days is not None else tuple(self.days - 1 - at for _, at in documents),
        )

    def product(self, item: str) -> int:
        return catalogue_product(self.catalogue, item)

    # -- the tills ---------------------------------------------------------------------------------

    def plant_tills(self, pos: TillDocuments) -> None:
        """pos_on_account: a sale to an account customer (ACC005) at a till, $150.00 by EFTPOS and the
        rest charged to account."""
        found = self.where("receivables", "pos_on_account")
        if found is None:
            return
        branch, day, _ = found
        shirts, belts = self.product("Linen Button Shirt"), self.product("Leather Belt")
        sale = pos.sell(self.catalogue, branch, day, day * 86_400 + 11 * 3600 + 20 * 60, "EFTPOS", [(shirts, 5000), (belts, 5000)])
        pos.docs["account_cents"][sale] = int(pos.totals()[sale]) - 15_000
        pos.docs["customer"][sale] = [code for code, _ in ACCOUNT_CUSTOMERS].index("ACC005")
        self._till_sale = (RECEIVABLES_SCENARIO_PLAN["pos_on_account"][0], day, sale)

    def numbered_tills(self, invoice_no: np.ndarray, account_cents: np.ndarray) -> None:
        """The P number the tills gave the sale charged to account (the only such document)."""
        if self._till_sale is None:
            return
        [number] = invoice_no[account_cents != 0].tolist()
        self.mark("receivables", "pos_on_account", numbers=(number,), days=(self._till_sale[1],))

    # -- the office: account-customer documents ------------------------------------------------------

    def stock(self, item: str, quantity_x1000: int, *, price_x10000: int | None = None, costed: bool = True,
              description: str | None = None) -> dict:
        product = self.product(item)
        return {
            "sku": self.catalogue.sku[product], "description": description or self.catalogue.description[product],
            "quantity_x1000": quantity_x1000,
            "unit_price_incl_x10000": int(self.catalogue.price_x10000[product] if price_x10000 is None else price_x10000),
            "discount_incl_cents": 0, "gst_code": "S", "analysis_code": self.catalogue.analysis_code[product],
            "unit_cost_excl_x10000": int(self.catalogue.cost_x10000[product]) if costed else 0, "unit_cost_missing": not costed,
        }

    def plant_office(self, data: dict[str, list[dict]]) -> None:
        """The account-customer documents of the receivables and cost-of-goods-sold scenarios."""
        documents: list[dict] = []
        customers = dict(ACCOUNT_CUSTOMERS + LOOK_ALIKE_CUSTOMERS)
        emails = {"ACC011": "jane.smith@example.co.nz", "ACC012": "jsmith.studio@example.co.nz"}

        def document(number: str, branch: int, day: int, made: tuple[int, int, int], customer: str, lines: list[dict],
                     original: int = -1, tenders: list[tuple[str, int]] | None = None) -> int:
            made_day, hour, minute = made
            documents.append({"number": number, "branch": branch, "day": day, "created": made_day * 86_400 + hour * 3600 + minute * 60,
                              "customer": customer, "lines": lines, "original": original, "tenders": tenders})
            return len(documents) - 1

        def returned(original: int, quantities: dict[int, int]) -> list[dict]:
            """The original's lines (line index -> quantity ×1000 returned), negated: a credit's lines."""
            lines = documents[original]["lines"]
            return [{**lines[index], "quantity_x1000": -quantity} for index, quantity in quantities.items()]

        if found := self.where("receivables", "credit_exceeds_amount_due"):
            branch, _, (invoice_day, credit_day) = found
            invoice = document("A3900001", branch, invoice_day, (invoice_day, 10, 15), "ACC007",
                               [self.stock("Merino Crew Neck Jumper", 3000), self.stock("Rib Knit Beanie", 4000)],
                               tenders=[("CASH", 20_000)])  # a $200.00 deposit in cash; the rest on account
            document("A3900002", branch, credit_day, (credit_day, 14, 30), "ACC007", returned(invoice, {0: 3000, 1: 4000}), original=invoice)
            self.mark("receivables", "credit_exceeds_amount_due")
        if found := self.where("receivables", "original_on_later_day"):
            branch, _, (invoice_day, credit_day) = found
            invoice = document("A3900003", branch, invoice_day, (credit_day, 9, 5), "ACC004",  # made the day before it is dated
                               [self.stock("Waterproof Walking Boots", 6000), self.stock("Packable Rain Shell", 6000)])
            document("A3900004", branch, credit_day, (credit_day, 16, 40), "ACC004", returned(invoice, {0: 2000}), original=invoice)
            self.mark("receivables", "original_on_later_day")
        if found := self.where("receivables", "look_alike_customers"):
            branch, _, (first, second) = found
            document("A3900005", branch, first, (first, 10, 40), "ACC011",
                     [self.stock("Wrap Summer Dress", 1000), self.stock("Merino Scarf", 1000)])
            document("A3900006", branch, second, (second, 13, 5), "ACC012", [self.stock("Leather Sneakers", 1000)])
            self.mark("receivables", "look_alike_customers")
        if found := self.where("receivables", "long_description"):
            branch, _, (at,) = found
            polo = self.catalogue.description[self.product("Pique Polo Shirt")]
            document("A3900007", branch, at, (at, 11, 0), "ACC003",
                     [self.stock("Pique Polo Shirt", 30_000, description=long_description(polo)), self.stock("Rib Knit Beanie", 30_000)])
            self.mark("receivables", "long_description")
        if found := self.where("receivables", "three_decimal_quantities"):
            branch, _, (at,) = found
            document("A3900008", branch, at, (at, 15, 10), "ACC002", [
                self.stock("Linen Fabric per Metre", 2375),
                self.stock("Cotton Drill per Metre", 12_125, price_x10000=184_375),  # the customer's price: 18.4375
                self.stock("Wool Socks 3-Pack", 1000),
            ])
            self.mark("receivables", "three_decimal_quantities")
        if found := self.where("cogs", "missing_cost"):
            branch, _, (at,) = found
            document("A3900009", branch, at, (at, 12, 45), "ACC009", [
                self.stock("Soy Scented Candle", 12_000),
                self.stock("Stoneware Mug", 24_000, costed=False),  # a new line received without its cost yet
                self.stock("Linen Tea Towel", 24_000, costed=False),
            ])
            self.mark("cogs", "missing_cost")
        if found := self.where("cogs", "freight_not_cogs"):
            branch, _, (at,) = found
            freight = {"sku": None, "description": "Freight", "quantity_x1000": 1000, "unit_price_incl_x10000": 450_000,
                       "discount_incl_cents": 0, "gst_code": "S", "analysis_code": "FREIGHT", "unit_cost_excl_x10000": 0,
                       "unit_cost_missing": True}
            document("A3900010", branch, at, (at, 9, 35), "ACC010",
                     [self.stock("Trail Running Shoes", 8000), self.stock("Fleece Hoodie", 8000), freight])
            self.mark("cogs", "freight_not_cogs")
        if not documents:
            return

        n = len(documents)
        n_lines = np.array([len(d["lines"]) for d in documents], dtype=np.int64)
        columns = [name for name in documents[0]["lines"][0]]
        lines = {name: np.array([line[name] for d in documents for line in d["lines"]],
                                dtype=object if name in ("sku", "description", "gst_code", "analysis_code") else None)
                 for name in columns}
        lines["doc"] = np.repeat(np.arange(n), n_lines)
        lines["line_no"] = positions_within(n_lines) + 1
        lines["line_total_incl_cents"] = line_total_cents(lines["quantity_x1000"], lines["unit_price_incl_x10000"], lines["discount_incl_cents"])
        lines["line_gst_cents"] = gst_cents(lines["line_total_incl_cents"], lines["gst_code"])
        original = np.array([d["original"] for d in documents], dtype=np.int64)
        sales = GeneratedSales(docs={
            "branch": np.array([d["branch"] for d in documents], dtype=np.int64), "is_credit": original >= 0,
            "original": original, "export": np.zeros(n, dtype=bool), "n_lines": n_lines,
            "total_incl_cents": segment_sums(lines["line_total_incl_cents"], n_lines),
            "total_gst_cents": segment_sums(lines["line_gst_cents"], n_lines),
        }, lines=lines)
        invoice_no = np.array([d["number"] for d in documents], dtype=object)
        created = np.array([d["created"] for d in documents], dtype=np.int64)
        codes = np.array([d["customer"] for d in documents], dtype=object)
        names = np.array([customers[code] for code in codes.tolist()], dtype=object)
        addresses = np.array([emails.get(code, f"accounts@{code.lower()}.example.co.nz") for code in codes.tolist()], dtype=object)
        invoices, invoice_lines = sales_tables(
            sales, invoice_no, np.array([d["day"] for d in documents], dtype=np.int64), created, created,
            np.full(n, "FINAL", dtype=object), ACCOUNT, self.branch_codes, (codes, names, addresses), None)
        data["sales_invoices"].append(invoices)
        data["sales_invoice_lines"].append(invoice_lines)
        # tenders: those a document names (paid at the counter), the rest of its total on account
        rows: list[tuple[str, int, str, int, int]] = []
        for d, total in zip(documents, sales.docs["total_incl_cents"].tolist()):
            paid = list(d["tenders"] or [])
            paid.append((ACCOUNT_TENDER, total - sum(cents for _, cents in paid)))
            rows += [(d["number"], tender_no, tender_type, cents, d["created"]) for tender_no, (tender_type, cents) in enumerate(paid, start=1)]
        data["sales_tenders"].append(tender_table({
            "invoice_no": np.array([r[0] for r in rows], dtype=object), "tender_no": np.array([r[1] for r in rows], dtype=np.int64),
            "tender_type": np.array([r[2] for r in rows], dtype=object), "amount": np.array([r[3] for r in rows], dtype=np.int64),
            "paid_at": np.array([r[4] for r in rows], dtype=np.int64),
        }))

    # -- the receiving dock: goods receipts -------------------------------------------------------------

    def plant_receipts(self, data: dict[str, list[dict]]) -> None:
        """The goods receipts of the payables scenarios: lines' totals round(quantity × unit cost, 2),
        GST 15 % of each S line's total (none on Z), the receipt's totals Σ its lines."""
        receipts: list[dict] = []

        def goods(item: str, quantity_x1000: int) -> tuple:
            product = self.product(item)
            return (self.catalogue.sku[product], self.catalogue.description[product], quantity_x1000,
                    int(self.catalogue.cost_x10000[product]), "S", self.catalogue.analysis_code[product])

        def receipt(number: str, supplier: int, invoice: str, branch: int, day: int, status: str, made: tuple[int, int],
                    lines: list[tuple], changed_after_seconds: int = 0) -> None:
            received = day * 86_400 + made[0] * 3600 + made[1] * 60
            receipts.append({"number": number, "supplier": supplier, "invoice": invoice, "branch": branch, "day": day,
                             "status": status, "received": received, "updated": received + changed_after_seconds, "lines": lines})

        plan = "payables"
        if found := self.where(plan, "same_number_two_suppliers"):
            branch, _, (first, second) = found
            receipt("GR490001", 0, "INV-20417", branch, first, "FINAL", (9, 40),
                    [goods("Merino Crew Neck Jumper", 24_000), goods("Merino Scarf", 12_000)])
            receipt("GR490002", 3, "INV-20417", branch, second, "FINAL", (10, 10),
                    [goods("Soy Scented Candle", 36_000), goods("Stoneware Mug", 24_000)])
            self.mark(plan, "same_number_two_suppliers")
        if found := self.where(plan, "same_supplier_repeats_number"):
            branch, _, (first, second) = found
            receipt("GR490003", 1, "PFI-88120", branch, first, "FINAL", (11, 0),
                    [goods("Leather Sneakers", 12_000), goods("Chelsea Boots", 6000)])
            receipt("GR490004", 1, "PFI-88120", branch, second, "FINAL", (9, 15), [goods("Chelsea Boots", 6000)])  # the back-order
            self.mark(plan, "same_supplier_repeats_number")
        if found := self.where(plan, "goods_returned"):
            branch, _, (at,) = found
            receipt("GR490005", 2, "SLC-CN-5521", branch, at, "FINAL", (14, 20),  # the supplier's credit note number
                    [goods("Leather Belt", -5000), goods("Leather Card Wallet", -3000)])
            self.mark(plan, "goods_returned")
        if found := self.where(plan, "held_receipt"):
            branch, _, (at,) = found
            receipt("GR490006", 4, "TTA-31877", branch, at, "HELD", (15, 0),
                    [goods("Linen Fabric per Metre", 40_500), goods("Cotton Drill per Metre", 25_250)])
            self.mark(plan, "held_receipt")
        if found := self.where(plan, "void_receipt"):
            branch, _, (at,) = found
            receipt("GR490007", 5, "AOS-66210", branch, at, "VOID", (9, 50), [goods("Puffer Jacket", 10_000)],
                    changed_after_seconds=5 * 3600)
            self.mark(plan, "void_receipt")
        if found := self.where(plan, "zero_rated_lines"):
            branch, _, (at,) = found
            receipt("GR490008", 5, "AOS-66342", branch, at, "FINAL", (13, 30), [
                goods("Packable Rain Shell", 12_000), goods("Trail Running Shoes", 6000),
                (None, INTERNATIONAL_FREIGHT, 1000, 1_850_000, "Z", "APPAREL"),
            ])
            self.mark(plan, "zero_rated_lines")
        if not receipts:
            return

        lines = [line for r in receipts for line in r["lines"]]
        n_lines = np.array([len(r["lines"]) for r in receipts], dtype=np.int64)
        quantity = np.array([line[2] for line in lines], dtype=np.int64)
        cost = np.array([line[3] for line in lines], dtype=np.int64)
        gst_code = np.array([line[4] for line in lines], dtype=object)
        total_excl = half_up_divide(quantity * cost, 100_000)
        gst = np.where(gst_code == "S", half_up_divide(total_excl * 15, 100), 0)
        numbers = np.array([r["number"] for r in receipts], dtype=object)
        data["goods_received"].append({
            "receipt_no": text(numbers),
            "supplier_code": text([SUPPLIERS[r["supplier"]][0] for r in receipts]),
            "supplier_name": text([SUPPLIERS[r["supplier"]][1] for r in receipts]),
            "branch_code": text(self.branch_codes[[r["branch"] for r in receipts]]),
            "received_date": day([r["day"] for r in receipts]),
            "supplier_invoice_no": text([r["invoice"] for r in receipts]),
            "status": text([r["status"] for r in receipts]),
            "updated_at": moment([r["updated"] for r in receipts]),
            "currency_code": text(["NZD"] * len(receipts)),
            "total_excl": fixed(segment_sums(total_excl, n_lines), 2),
            "total_gst": fixed(segment_sums(gst, n_lines), 2),
        })
        data["goods_received_lines"].append({
            "receipt_no": text(np.repeat(numbers, n_lines)),
            "line_no": integer(positions_within(n_lines) + 1),
            "sku": text([line[0] for line in lines]),
            "description": text([line[1] for line in lines]),
            "quantity": fixed(quantity, 3),
            "unit_cost_excl": fixed(cost, 4),
            "line_total_excl": fixed(total_excl, 2),
            "line_gst": fixed(gst, 2),
            "gst_code": text(gst_code),
            "analysis_code": text([line[5] for line in lines]),
        })


# ---------------------------------------------------------------------------------------------------
# Table data: contract column -> (kind, values); kinds say how values reach the database


def text(values) -> tuple:
    return ("text", np.asarray(values, dtype=object))


def integer(values) -> tuple:
    return ("int", np.asarray(values, dtype=np.int64))


def fixed(units, places: int, missing: np.ndarray | None = None) -> tuple:
    return ("fixed", np.asarray(units, dtype=np.int64), places, missing)


def day(values) -> tuple:
    return ("day", np.asarray(values, dtype=np.int64))


def moment(values) -> tuple:
    return ("moment", np.asarray(values, dtype=np.int64))


def flag(values) -> tuple:
    return ("flag", np.asarray(values, dtype=bool))


def sales_tables(
    sales: GeneratedSales,
    invoice_no: np.ndarray,
    doc_day: np.ndarray,
    created: np.ndarray,
    updated: np.ndarray,
    status: np.ndarray,
    source: str,
    branch_codes: np.ndarray,
    customer: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    order_ref: np.ndarray | None,
) -> tuple[dict, dict]:
    docs, lines = sales.docs, sales.lines
    n = len(invoice_no)
    nothing = np.full(n, None, dtype=object)
    original_no = np.where(docs["is_credit"], invoice_no[np.maximum(docs["original"], 0)], None)
    codes, names, emails = customer if customer is not None else (nothing, nothing, nothing)
    invoices = {
        "invoice_no": text(invoice_no),
        "doc_type": text(np.where(docs["is_credit"], "CREDIT", "INVOICE")),
        "source": text(np.full(n, source, dtype=object)),
        "branch_code": text(branch_codes[docs["branch"]]),
        "business_date": day(doc_day),
        "created_at": moment(created),
        "updated_at": moment(updated),
        "status": text(status),
        "customer_code": text(codes),
        "customer_name": text(names),
        "customer_email": text(emails),
        "order_ref": text(order_ref if order_ref is not None else nothing),
        "original_invoice_no": text(original_no),
        "currency_code": text(np.full(n, "NZD", dtype=object)),
        "total_incl": fixed(docs["total_incl_cents"], 2),
        "total_gst": fixed(docs["total_gst_cents"], 2),
    }
    invoice_lines = {
        "invoice_no": text(invoice_no[lines["doc"]]),
        "line_no": integer(lines["line_no"]),
        "sku": text(lines["sku"]),
        "description": text(lines["description"]),
        "quantity": fixed(lines["quantity_x1000"], 3),
        "unit_price_incl": fixed(lines["unit_price_incl_x10000"], 4),
        "discount_incl": fixed(lines["discount_incl_cents"], 2),
        "line_total_incl": fixed(lines["line_total_incl_cents"], 2),
        "line_gst": fixed(lines["line_gst_cents"], 2),
        "gst_code": text(lines["gst_code"]),
        "analysis_code": text(lines["analysis_code"]),
        "unit_cost_excl": fixed(lines["unit_cost_excl_x10000"], 4, lines["unit_cost_missing"]),
    }
    return invoices, invoice_lines


def tender_table(tenders: dict[str, np.ndarray]) -> dict:
    return {
        "invoice_no": text(tenders["invoice_no"]),
        "tender_no": integer(tenders["tender_no"]),
        "tender_type": text(tenders["tender_type"]),
        "amount": fixed(tenders["amount"], 2),
        "paid_at": moment(tenders["paid_at"]),
    }


# ---------------------------------------------------------------------------------------------------
# Writing


class TableWriter:
    """Bulk inserts in chunks inside the caller's transaction. SQLite gets plain text and integers
    through the driver's executemany (NUMERIC affinity stores the decimal text as a number); servers get
    Decimal, date and datetime through SQLAlchemy Core's executemany."""

    def __init__(self, connection: Connection, first_day: date):
        self.connection = connection
        self.sqlite = connection.dialect.name == "sqlite"
        self.first_day = first_day
        self.epoch = np.datetime64(first_day.isoformat(), "s")

    def insert(self, table: Table, data: Mapping[str, tuple]) -> int:
        keys = list(data)
        rows = len(data[keys[0]][1]) if keys else 0
        for start in range(0, rows, INSERT_CHUNK_ROWS):
            stop = min(start + INSERT_CHUNK_ROWS, rows)
            columns = [self.values(data[key], start, stop) for key in keys]
            if self.sqlite:
                quote = self.connection.dialect.identifier_preparer.quote
                statement = (
                    f"INSERT INTO {quote(table.name)} ({', '.join(quote(table.c[key].name) for key in keys)}) "
                    f"VALUES ({', '.join('?' for _ in keys)})"
                )
                cursor = self.connection.connection.cursor()
                try:
                    cursor.executemany(statement, zip(*columns))
                finally:
                    cursor.close()
            else:
                self.connection.execute(table.insert(), [dict(zip(keys, row)) for row in zip(*columns)])
        return rows

    def values(self, column: tuple, start: int, stop: int) -> list:
        kind, values = column[0], column[1][start:stop]
        if kind in ("text", "int"):
            return values.tolist()
        if kind == "flag":
            return [int(v) for v in values.tolist()] if self.sqlite else values.tolist()
        if kind == "fixed":
            places, missing = column[2], column[3]
            texts = decimal_texts(values, places)
            if not self.sqlite:
                texts = [Decimal(t) for t in texts]
            if missing is not None:
                texts = [None if gone else t for t, gone in zip(texts, missing[start:stop].tolist())]
            return texts
        if kind == "day":
            days = [self.first_day + timedelta(days=int(d)) for d in range(int(values.max(initial=0)) + 1)]
            lookup = [d.isoformat() for d in days] if self.sqlite else days
            return [lookup[d] for d in values.tolist()]
        if kind == "moment":
            stamps = self.epoch + values.astype("timedelta64[s]")
            if self.sqlite:
                # SQLAlchemy's own SQLite DateTime format, so text comparisons with bound values hold
                return [f"{s[:10]} {s[11:]}.000000" for s in np.datetime_as_string(stamps, unit="s").tolist()]
            return stamps.tolist()
        raise ValueError(kind)


def decimal_texts(units: np.ndarray, places: int) -> list[str]:
    """Integer units of 10**-places as exact decimal text: (-1500, 3) -> '-1.500'."""
    scale = 10**places
    magnitude = np.abs(units)
    return [
        f"{'-' if negative else ''}{whole}.{part:0{places}d}"
        for negative, whole, part in zip((units < 0).tolist(), (magnitude // scale).tolist(), (magnitude % scale).tolist())
    ]


# ---------------------------------------------------------------------------------------------------
# The database


@dataclass(frozen=True)
class DemoSummary:
    first_day: date
    last_day: date
    days: int
    branches: int
    sales_invoices: int
    sales_invoice_lines: int
    eretailer_invoices: int
    eretailer_lines: int
    sales_tenders: int
    cash_ups: int
    goods_received: int
    goods_received_lines: int
    seed: int
    # the takings scenarios this database holds, as TAKINGS_SCENARIOS names them: name -> (branch_code, ISO day)
    takings_scenarios: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # the scenarios of receivables, payables and cost of goods sold this database holds, as
    # RECEIVABLES_SCENARIOS, PAYABLES_SCENARIOS and COGS_SCENARIOS name them (pos_on_account with its number)
    receivables_scenarios: Mapping[str, Scenario] = field(default_factory=dict)
    payables_scenarios: Mapping[str, Scenario] = field(default_factory=dict)
    cogs_scenarios: Mapping[str, Scenario] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.days} trading days {self.first_day} … {self.last_day}, {self.branches} branches, "
            f"{self.sales_invoices:,} sales documents with {self.sales_invoice_lines:,} lines "
            f"({self.eretailer_invoices:,} E-Retailer with {self.eretailer_lines:,} lines), "
            f"{self.sales_tenders:,} tenders, {self.cash_ups:,} cash-ups, "
            f"{self.goods_received:,} goods receipts with {self.goods_received_lines:,} lines (seed {self.seed})"
        )


def nz_yesterday() -> date:
    return datetime.now(NZ).date() - timedelta(days=1)


def branch_list(count: int) -> list[tuple[str, str]]:
    listed = BRANCHES[:count]
    for number in range(len(listed) + 1, count + 1):
        listed.append((f"BR{number:03d}", f"Branch {number}"))
    return listed


def create_ci_tables(engine: Engine | Connection, names: CINames | None = None, *, drop: bool = False) -> CITables:
    """Create the contract's views as tables (the demo; tests); with drop, drop them first."""
    tables = build_ci_tables(names)
    if drop:
        tables.metadata.drop_all(engine, checkfirst=True)
    tables.metadata.create_all(engine, checkfirst=True)
    return tables


def _demo_engine(url: str | Engine) -> tuple[Engine, bool]:
    """An engine of our own (disposed afterwards) so that SQLite speed settings never leak into the pool
    of the pipeline's engine."""
    if isinstance(url, Engine):
        return url, False
    url = normalised_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, poolclass=NullPool), True
    return create_engine(url, pool_pre_ping=True), True


def create_demo_database(
    url: str | Engine,
    *,
    days: int = 60,
    end_day: date | None = None,
    branches: int = 5,
    invoices_per_day: tuple[int, int] = (50, 300),
    lines_per_invoice: tuple[int, int] = (1, 6),
    seed: int = 20261124,
    include_other_processes: bool = True,
    names: CINames | None = None,
) -> DemoSummary:
    """Drop and recreate the contract's tables and fill them; the same arguments give the same rows."""
    if days < 1 or branches < 1:
        raise ValueError("days and branches must be at least 1")
    if not 0 <= invoices_per_day[0] <= invoices_per_day[1]:
        raise ValueError(f"invoices_per_day must be (low, high) with 0 ≤ low ≤ high, not {invoices_per_day}")
    if not 1 <= lines_per_invoice[0] <= lines_per_invoice[1]:
        raise ValueError(f"lines_per_invoice must be (low, high) with 1 ≤ low ≤ high, not {lines_per_invoice}")
    end_day = end_day or nz_yesterday()
    first_day = end_day - timedelta(days=days - 1)
    rng = np.random.default_rng(seed)
    catalogue = build_catalogue()
    branch_rows = branch_list(branches)
    branch_codes = np.array([code for code, _ in branch_rows], dtype=object)
    store_count = len(branch_rows) - 1  # index 0 is WEB

    data: dict[str, list[dict]] = {name: [] for name in (
        "branches", "sales_invoices", "sales_invoice_lines", "sales_tenders", "cash_ups",
        "goods_received", "goods_received_lines")}
    every_branch = branch_rows + [CLOSED_BRANCH]
    data["branches"].append({
        "branch_code": text([code for code, _ in every_branch]),
        "branch_name": text([name for _, name in every_branch]),
        "active": flag([True] * len(branch_rows) + [False]),
    })

    # E-Retailer: the web store trades every day; some orders are collected from a store
    per_day = rng.integers(invoices_per_day[0], invoices_per_day[1] + 1, size=days)
    doc_day = np.repeat(np.arange(days), per_day)
    n = len(doc_day)
    created = sorted_times(rng, doc_day, 7 * 3600, 23 * 3600, all_day_share=0.1)
    branch = np.zeros(n, dtype=np.int64)
    if store_count:
        collect = rng.random(n) < 0.12
        branch[collect] = rng.integers(1, store_count + 1, size=int(collect.sum()))
    sales = generate_sales(
        rng, catalogue, branch, lines_range=lines_per_invoice, credit_rate=0.03, freight_rate=0.85,
        freight_allowed=branch == 0, export_rate=0.02, donation_rate=0.01, discount_rate=0.12,
    )
    invoice_no = numbered("W", 1_000_001, n, 7)
    status = statuses(rng, n, held=0.01, void=0.01)
    updated = updated_times(rng, created, status, edited_share=0.04)
    pool = max(50, n // 3)
    customer = copy_from_original((pool * rng.random(n) ** 2).astype(np.int64), sales)  # repeat customers
    codes, names_, emails = web_customers(rng, pool)
    order_ref = copy_from_original(numbered("ORD-", 500_001, n, 6), sales)
    invoices, lines = sales_tables(sales, invoice_no, doc_day, created, updated, status, ERETAILER, branch_codes,
                                   (codes[customer], names_[customer], emails[customer]), order_ref)
    data["sales_invoices"].append(invoices)
    data["sales_invoice_lines"].append(lines)
    web_tenders = tenders_for(rng, invoice_no, sales.docs["total_incl_cents"], created, ERETAILER_TENDERS, voucher_share=0.04)
    data["sales_tenders"].append(tender_table(web_tenders))
    eretailer_invoices, eretailer_lines = n, len(sales.lines["doc"])
    position = {number: i for i, number in enumerate(invoice_no.tolist())}
    web_vouchers = [  # (day, branch, cents) of the FINAL web orders paid in part by gift voucher
        (int(doc_day[doc]), str(branch_codes[sales.docs["branch"][doc]]), int(amount))
        for doc, amount in ((position[number], amount) for number, tender_type, amount in zip(
            web_tenders["invoice_no"].tolist(), web_tenders["tender_type"].tolist(), web_tenders["amount"].tolist())
            if tender_type == "GIFT_VOUCHER")
        if status[doc] == "FINAL"
    ]

    planted: dict[str, tuple[str, int]] = {}
    issue12: dict[str, dict] = {}
    if include_other_processes:
        tills = np.random.default_rng([seed, TILLS_STREAM])
        planted = add_other_processes(rng, catalogue, data, days, branch_codes, store_count, lines_per_invoice,
                                      tills=tills, web_vouchers=web_vouchers, scenarios=issue12)

    engine, own_engine = _demo_engine(url)
    try:
        tables = create_ci_tables(engine, names, drop=True)
        counts: dict[str, int] = {}
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA synchronous = OFF")  # a demo: rebuilt, not recovered
            writer = TableWriter(connection, first_day)
            for attribute, parts in data.items():
                counts[attribute] = sum(writer.insert(getattr(tables, attribute), part) for part in parts)
    finally:
        if own_engine:
            engine.dispose()

    return DemoSummary(
        first_day=first_day, last_day=end_day, days=days, branches=len(branch_rows),
        sales_invoices=counts["sales_invoices"], sales_invoice_lines=counts["sales_invoice_lines"],
        eretailer_invoices=eretailer_invoices, eretailer_lines=eretailer_lines,
        sales_tenders=counts["sales_tenders"], cash_ups=counts["cash_ups"],
        goods_received=counts["goods_received"], goods_received_lines=counts["goods_received_lines"], seed=seed,
        takings_scenarios={name: (str(branch), (first_day + timedelta(days=at)).isoformat()) for name, (branch, at) in planted.items()},
        **{f"{process}_scenarios": _built_scenarios(ISSUE12_PLANS[process], issue12.get(process, {}), first_day)
           for process in ISSUE12_PLANS},
    )


def _built_scenarios(plan: ScenarioPlan, planted: Mapping[str, tuple], first_day: date) -> dict[str, Scenario]:
    """The planted scenarios (Issue12Plants.planted) as Scenarios, in the plan's order, days as ISO text."""
    def iso(at: int) -> str:
        return (first_day + timedelta(days=at)).isoformat()

    return {name: Scenario(branch, iso(at), tuple(numbers), tuple(iso(d) for d in days))
            for name in plan if name in planted for branch, at, numbers, days in [planted[name]]}


def add_other_processes(
    rng: np.random.Generator,
    catalogue: Catalogue,
    data: dict[str, list[dict]],
    days: int,
    branch_codes: np.ndarray,
    store_count: int,
    lines_per_invoice: tuple[int, int],
    tills: np.random.Generator | None = None,
    web_vouchers: Iterable[tuple[int, str, int]] = (),
    scenarios: dict[str, dict[str, Scenario]] | None = None,
) -> dict[str, tuple[str, int]]:
    """POS sales and cash-ups in the stores, account customer invoices and credits, goods received.
    Returns the takings scenarios planted: name -> (branch_code, day index). The scenarios of
    receivables, payables and cost of goods sold (ISSUE12_PLANS) are added after what the random
    streams draw (they draw nothing), and those planted are put in `scenarios` (process -> name ->
    (branch_code, day index, numbers, day index of each number), as Issue12Plants.planted)."""
    planted: dict[str, tuple[str, int]] = {}
    issue12 = Issue12Plants(catalogue, days, branch_codes)
    # POS: a few sales per store per day, in time order
    if store_count:
        per_store_day = rng.integers(3, 10, size=(days, store_count))
        doc_day = np.repeat(np.repeat(np.arange(days), store_count), per_store_day.ravel())
        branch = np.repeat(np.tile(np.arange(1, store_count + 1), days), per_store_day.ravel())
        created = rng.integers(9 * 3600, 17 * 3600 + 1800, size=len(doc_day)) + doc_day * 86_400
        order = np.lexsort((created, doc_day))
        doc_day, branch, created = doc_day[order], branch[order], created[order]
        sales = generate_sales(rng, catalogue, branch, lines_range=(1, 4), credit_rate=0.03,
                               donation_rate=0.02, discount_rate=0.05)
        n = len(doc_day)
        status = statuses(rng, n, held=0.0, void=0.005)
        updated = updated_times(rng, created, status, edited_share=0.0)
        # one tender per document, its type drawn before the tills' extras settle the amount
        tender_type = tenders_for(rng, np.arange(n), sales.docs["total_incl_cents"], created, POS_TENDERS)["tender_type"]
        # cash is sometimes over or short: drawn per FINAL store, day and tender type, as CI's tills are
        final = status == "FINAL"
        drawn = (pd.DataFrame({"branch": sales.docs["branch"][final], "day": doc_day[final], "tender_type": tender_type[final]})
                 .groupby(["branch", "day", "tender_type"], sort=True).size().reset_index())
        off = (drawn["tender_type"].to_numpy() == "CASH") & (rng.random(len(drawn)) < 0.15)
        miscount = np.zeros(len(drawn), dtype=np.int64)
        miscount[off] = rng.integers(-500, 501, size=int(off.sum()))
        miscount = CASH_STEP_CENTS * half_up_divide(miscount, CASH_STEP_CENTS)  # counted cash is whole 10 cents too
        miscounts = {key: int(cents) for key, cents in zip(
            zip(drawn["branch"].tolist(), drawn["day"].tolist(), drawn["tender_type"].tolist()), miscount.tolist()) if cents}

        tills = tills if tills is not None else np.random.default_rng(TILLS_STREAM)
        pos = TillDocuments.of(sales, doc_day, created, updated, status, tender_type)
        pos.sell_vouchers_now_and_then(tills)
        planted = plant_takings_scenarios(tills, pos, catalogue, days, branch_codes, web_vouchers, miscounts)
        issue12.plant_tills(pos)
        pos.round_cash()
        sales, doc_day, created, updated, status, tender_type = pos.finished()
        n = len(doc_day)
        invoice_no = numbered("P", 2_000_001, n, 7)
        issue12.numbered_tills(invoice_no, sales.docs["account_cents"])
        customer = sales.docs["customer"]
        known = customer >= 0
        customers = tuple(np.where(known, np.array(values, dtype=object)[np.maximum(customer, 0)], None)
                          for values in _account_customer_columns(ACCOUNT_CUSTOMERS))
        invoices, lines = sales_tables(sales, invoice_no, doc_day, created, updated, status, POS, branch_codes,
                                       customers if known.any() else None, None)
        data["sales_invoices"].append(invoices)
        data["sales_invoice_lines"].append(lines)
        total = sales.docs["total_incl_cents"]
        # one tender per document for its total; a document charged in part to account has a second, ACCOUNT
        account = sales.docs["account_cents"]
        count = 1 + (account != 0).astype(np.int64)
        doc = np.repeat(np.arange(n), count)
        tender_no = positions_within(count) + 1
        second = tender_no == 2
        tender_rows = {
            "invoice_no": invoice_no[doc], "tender_no": tender_no,
            "tender_type": np.where(second, ACCOUNT_TENDER, tender_type[doc]).astype(object),
            "amount": np.where(second, account[doc], total[doc] - account[doc]), "paid_at": created[doc],
        }
        data["sales_tenders"].append(tender_table(tender_rows))

        # Cash-ups: the FINAL documents' tenders per store, day and tender type, counted as drawn above
        # (a till's ACCOUNT row, when it charged a sale to account, is what it charged: no money counted)
        final = status[doc] == "FINAL"
        expected = (pd.DataFrame({"branch": sales.docs["branch"][doc][final], "day": doc_day[doc][final],
                                  "tender_type": tender_rows["tender_type"][final], "expected": tender_rows["amount"][final]})
                    .groupby(["branch", "day", "tender_type"], sort=True)["expected"].sum().reset_index())
        keys = zip(expected["branch"].tolist(), expected["day"].tolist(), expected["tender_type"].tolist())
        counted = expected["expected"].to_numpy(dtype=np.int64) + np.array([miscounts.get(key, 0) for key in keys], dtype=np.int64)
        data["cash_ups"].append({
            "branch_code": text(branch_codes[expected["branch"].to_numpy()]),
            "business_date": day(expected["day"].to_numpy()),
            "tender_type": text(expected["tender_type"].to_numpy(dtype=object)),
            "expected_amount": fixed(expected["expected"].to_numpy(dtype=np.int64), 2),
            "counted_amount": fixed(counted, 2),
        })

    # Account customers: a handful of invoices (and some credits) a day, charged to account
    per_day = rng.integers(1, 5, size=days)
    doc_day = np.repeat(np.arange(days), per_day)
    n = len(doc_day)
    created = sorted_times(rng, doc_day, 9 * 3600, 17 * 3600)
    branch = rng.integers(1, store_count + 1, size=n) if store_count else np.zeros(n, dtype=np.int64)
    sales = generate_sales(rng, catalogue, branch, lines_range=(1, max(5, lines_per_invoice[1])),
                           credit_rate=0.10, discount_rate=0.20)
    invoice_no = numbered("A", 3_000_001, n, 7)
    status = statuses(rng, n, held=0.02, void=0.01)
    updated = updated_times(rng, created, status, edited_share=0.05)
    who = copy_from_original(rng.integers(0, len(ACCOUNT_CUSTOMERS), size=n), sales)
    account_codes, account_names, account_emails = (np.array(values, dtype=object)[who]
                                                    for values in _account_customer_columns(ACCOUNT_CUSTOMERS))
    invoices, lines = sales_tables(sales, invoice_no, doc_day, created, updated, status, ACCOUNT, branch_codes,
                                   (account_codes, account_names, account_emails), None)
    data["sales_invoices"].append(invoices)
    data["sales_invoice_lines"].append(lines)
    data["sales_tenders"].append(tender_table(tenders_for(
        rng, invoice_no, sales.docs["total_incl_cents"], created, (["ACCOUNT"], [1.0]))))

    # Goods received: deliveries against supplier invoices, GST 15 % on the exclusive amount
    per_day = rng.integers(1, 4, size=days)
    doc_day = np.repeat(np.arange(days), per_day)
    n = len(doc_day)
    supplier = rng.integers(0, len(SUPPLIERS), size=n)
    n_lines = rng.integers(1, 7, size=n)
    product = rng.choice(len(catalogue), size=int(n_lines.sum()), p=catalogue.popularity)
    quantity = rng.integers(2, 25, size=len(product)) * 1000
    cost = catalogue.cost_x10000[product]
    total_excl = half_up_divide(quantity * cost, 100_000)
    gst = half_up_divide(total_excl * 15, 100)
    status = statuses(rng, n, held=0.04, void=0.03)
    received = doc_day * 86_400 + rng.integers(8 * 3600, 16 * 3600, size=n)
    receipt_no = numbered("GR", 400_001, n, 6)
    line_doc = np.repeat(np.arange(n), n_lines)
    data["goods_received"].append({
        "receipt_no": text(receipt_no),
        "supplier_code": text(np.array([s[0] for s in SUPPLIERS], dtype=object)[supplier]),
        "supplier_name": text(np.array([s[1] for s in SUPPLIERS], dtype=object)[supplier]),
        "branch_code": text(branch_codes[rng.integers(0, store_count + 1, size=n)]),
        "received_date": day(doc_day),
        "supplier_invoice_no": text([f"{SUPPLIERS[s][2]}-{70_000 + i * 7 + s}" for i, s in enumerate(supplier.tolist())]),
        "status": text(status),
        "updated_at": moment(updated_times(rng, received, status, edited_share=0.05)),
        "currency_code": text(np.full(n, "NZD", dtype=object)),
        "total_excl": fixed(segment_sums(total_excl, n_lines), 2),
        "total_gst": fixed(segment_sums(gst, n_lines), 2),
    })
    data["goods_received_lines"].append({
        "receipt_no": text(receipt_no[line_doc]),
        "line_no": integer(positions_within(n_lines) + 1),
        "sku": text(catalogue.sku[product]),
        "description": text(catalogue.description[product]),
        "quantity": fixed(quantity, 3),
        "unit_cost_excl": fixed(cost, 4),
        "line_total_excl": fixed(total_excl, 2),
        "line_gst": fixed(gst, 2),
        "gst_code": text(np.full(len(product), "S", dtype=object)),
        "analysis_code": text(catalogue.analysis_code[product]),
    })

    # The scenarios of receivables, payables and cost of goods sold, after everything drawn
    issue12.plant_office(data)
    issue12.plant_receipts(data)
    if scenarios is not None:
        scenarios.update(issue12.planted)
    return planted


# ---------------------------------------------------------------------------------------------------
# Handcrafted documents (tests, demos)


def _money(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def insert_documents(
    engine: Engine | Connection,
    invoices: Iterable[Mapping],
    lines: Iterable[Mapping] = (),
    names: CINames | None = None,
    *,
    tenders: Iterable[Mapping] = (),
    branches: Iterable[Mapping] = (),
) -> None:
    """Insert handcrafted rows (keys: contract column names; money as Decimal or exact text).

    Conveniences: a line without line_total_incl gets round(quantity × unit price − discount, 2) (on a
    line of negative quantity −round(|quantity| × unit price − discount, 2)) and
    without line_gst the GST for its gst_code; an invoice without totals gets the sums of its lines;
    doc_type INVOICE, source ERETAILER, status FINAL, currency NZD and updated_at = created_at by default.
    """
    tables = build_ci_tables(names)
    line_rows = []
    for line in lines:
        row = {"sku": None, "discount_incl": Decimal("0.00"), "gst_code": "S", "unit_cost_excl": None, **line}
        if "line_total_incl" not in row:  # a credit line (quantity negative): −round(|quantity| × price − discount)
            quantity = _money(row["quantity"])
            gross = abs(quantity) * _money(row["unit_price_incl"]) - _money(row["discount_incl"])
            size = gross.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            row["line_total_incl"] = -size if quantity < 0 else size
        if "line_gst" not in row:
            total = _money(row["line_total_incl"])
            row["line_gst"] = ((total * 3 / 23).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
                               if row["gst_code"] == "S" else Decimal("0.00"))
        line_rows.append(row)
    invoice_rows = []
    for invoice in invoices:
        own = [line for line in line_rows if line["invoice_no"] == invoice["invoice_no"]]
        row = {
            "doc_type": "INVOICE", "source": ERETAILER, "status": "FINAL", "currency_code": "NZD",
            "customer_code": None, "customer_name": None, "customer_email": None, "order_ref": None,
            "original_invoice_no": None, **invoice,
        }
        row.setdefault("updated_at", row["created_at"])
        row.setdefault("total_incl", sum((_money(line["line_total_incl"]) for line in own), Decimal("0.00")))
        row.setdefault("total_gst", sum((_money(line["line_gst"]) for line in own), Decimal("0.00")))
        invoice_rows.append(row)

    def write(connection: Connection) -> None:
        for table, rows in ((tables.branches, list(branches)), (tables.sales_invoices, invoice_rows),
                            (tables.sales_invoice_lines, line_rows), (tables.sales_tenders, list(tenders))):
            if rows:
                connection.execute(table.insert(), [dict(row) for row in rows])

    if isinstance(engine, Connection):
        write(engine)
    else:
        with engine.begin() as connection:
            write(connection)
