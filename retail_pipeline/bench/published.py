"""The figures published for the real Online Retail file, computed again from a raw CSV and compared.

Every public analysis of the dataset starts from the same few steps (keep Quantity > 0 and a CustomerID; then also
UnitPrice > 0 and drop exact duplicate rows), and their results are widely published. Computing them from the raw
file the lake holds answers two questions: did we ingest the real file unchanged (every figure exact), and does the
synthetic twin spend money like the real shop (every figure within its tolerance, docs/performance.md)?

The computation is DuckDB over the raw CSV as delivered, with the raw strings cast the way pandas would read them
(the published figures come from pandas notebooks): a Quantity or UnitPrice that is not a number, or a date that is
not a date, leaves the row out of the sets that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from retail_core import dialect

# name -> (published value, tolerance, kind). Tolerance: a relative share for counts and money ("rel"), points for
# a percentage ("pts"), None for a figure shown but not judged (exact only on the real file).
_MONTHS = {
    "2010-12": "572713.89",
    "2011-01": "569445.04",
    "2011-02": "447137.35",
    "2011-03": "595500.76",
    "2011-04": "469200.36",
    "2011-05": "678594.56",
    "2011-06": "661213.69",
    "2011-07": "600091.01",
    "2011-08": "645343.90",
    "2011-09": "952838.38",
    "2011-10": "1039318.79",
    "2011-11": "1161817.38",
    "2011-12": "518192.79",
}


@dataclass(frozen=True)
class Figure:
    name: str
    published: Decimal
    tolerance: Decimal | None  # None: shown, not judged
    unit: str  # "rows", "GBP", "%", "customers", "codes"
    relative: bool = True  # the tolerance is a share of the published value; else absolute (points)


PUBLISHED: tuple[Figure, ...] = (
    Figure("rows with Quantity > 0 and a CustomerID", Decimal(397_924), Decimal(0), "rows"),
    Figure("their revenue, Σ Quantity × UnitPrice", Decimal("8911407.90"), Decimal("0.02"), "GBP"),
    Figure("United Kingdom's share of that revenue", Decimal("82.01"), Decimal("0.5"), "%", relative=False),
    Figure("customers in that set", Decimal(4_339), Decimal("0.02"), "customers"),
    Figure("stock codes in that set", Decimal(3_665), Decimal("0.02"), "codes"),
    *(Figure(f"revenue {month}", Decimal(value), Decimal("0.02"), "GBP") for month, value in _MONTHS.items()),
    Figure("rows after Quantity>0, UnitPrice>0, CustomerID, distinct", Decimal(392_692), Decimal(0), "rows"),
    Figure("of which Germany", Decimal(9_025), Decimal("0.02"), "rows"),
    Figure("of which France", Decimal(8_326), Decimal("0.02"), "rows"),
    Figure("of which EIRE", Decimal(7_226), Decimal("0.02"), "rows"),
    Figure("revenue of customer 14646", Decimal("280206.02"), None, "GBP"),
    Figure("revenue of customer 18102", Decimal("259657.30"), None, "GBP"),
    Figure("revenue of customer 17450", Decimal("194550.79"), None, "GBP"),
)


@dataclass(frozen=True)
class Comparison:
    figure: Figure
    measured: Decimal

    @property
    def difference(self) -> Decimal:
        return self.measured - self.figure.published

    @property
    def off_by(self) -> Decimal:
        """The difference in the tolerance's terms: a share of the published value, or points."""
        if not self.figure.relative:
            return abs(self.difference)
        return abs(self.difference) / self.figure.published if self.figure.published else abs(self.difference)

    @property
    def within(self) -> bool | None:
        if self.figure.tolerance is None:
            return None
        return self.off_by <= self.figure.tolerance


def measure(raw_csv: Path, *, encoding: str = "utf-8") -> dict[str, Decimal]:
    """Every figure of :data:`PUBLISHED`, computed from ``raw_csv`` (the raw export, header included)."""
    import duckdb

    charset = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}[encoding]
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in dialect.RAW_COLUMNS) + "}"
    path = str(raw_csv).replace("'", "''")
    read = (
        f"read_csv('{path}', columns = {columns}, header = true, delim = ',', quote = '\"', escape = '\"', "
        f"auto_detect = false, null_padding = true, ignore_errors = true, encoding = '{charset}')"
    )
    con = duckdb.connect()
    try:
        con.execute("set enable_progress_bar = false")
        # pandas' reading: numbers as numbers (else NaN), CustomerID a float, dates in either layout. (The n_ names:
        # DuckDB's identifiers ignore case, so "Quantity" and quantity would be one column.)
        con.execute(f"""
            create temp table raw as
            select
                "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                "Country",
                try_cast(trim("Quantity") as bigint) as n_quantity,
                try_cast(trim("UnitPrice") as decimal(18, 3)) as n_unit_price,
                try_cast(try_cast(trim("CustomerID") as double) as bigint) as n_customer_id,
                coalesce(
                    try_strptime(trim("InvoiceDate"), '%Y-%m-%d %H:%M:%S'),
                    try_strptime(trim("InvoiceDate"), '%Y-%m-%d %H:%M'),
                    try_strptime(trim("InvoiceDate"), '%m/%d/%Y %H:%M'),
                    try_strptime(trim("InvoiceDate"), '%m/%d/%Y %H:%M:%S')
                ) as invoiced_at
            from {read}
        """)
        con.execute("""
            create temp table sales as
            select *, n_quantity * n_unit_price as revenue from raw where n_quantity > 0 and n_customer_id is not null
        """)
        figures: dict[str, Decimal] = {}
        rows, revenue, uk, customers, codes = con.execute("""
            select
                count(*),
                coalesce(sum(revenue), 0),
                coalesce(sum(revenue) filter (where "Country" = 'United Kingdom'), 0),
                count(distinct n_customer_id),
                count(distinct "StockCode")
            from sales
        """).fetchone()
        names = [f.name for f in PUBLISHED]
        figures[names[0]] = Decimal(rows)
        figures[names[1]] = Decimal(revenue)
        figures[names[2]] = (Decimal(uk) * 100 / Decimal(revenue)) if revenue else Decimal(0)
        figures[names[3]] = Decimal(customers)
        figures[names[4]] = Decimal(codes)
        monthly = dict(
            con.execute("""
                select strftime(invoiced_at, '%Y-%m'), sum(revenue) from sales
                where invoiced_at is not null group by 1
            """).fetchall()
        )
        for month in _MONTHS:
            figures[f"revenue {month}"] = Decimal(monthly.get(month) or 0)
        # "distinct": exact duplicate rows of the raw file, as pandas' drop_duplicates sees them.
        con.execute("""
            create temp table clean as
            select distinct
                "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                "Country"
            from sales where n_unit_price > 0
        """)
        figures["rows after Quantity>0, UnitPrice>0, CustomerID, distinct"] = Decimal(
            con.execute("select count(*) from clean").fetchone()[0]
        )
        by_country = dict(con.execute('select "Country", count(*) from clean group by 1').fetchall())
        for country in ("Germany", "France", "EIRE"):
            figures[f"of which {country}"] = Decimal(by_country.get(country, 0))
        by_customer = dict(
            con.execute("select n_customer_id, sum(revenue) from sales group by n_customer_id").fetchall()
        )
        for customer in (14646, 18102, 17450):
            figures[f"revenue of customer {customer}"] = Decimal(by_customer.get(customer) or 0)
    finally:
        con.close()
    return figures


def compare(measured: dict[str, Decimal]) -> list[Comparison]:
    return [Comparison(figure, measured[figure.name]) for figure in PUBLISHED]


def format_value(value: Decimal, unit: str) -> str:
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "GBP":
        return f"£{value:,.2f}"
    return f"{value:,.0f}"
