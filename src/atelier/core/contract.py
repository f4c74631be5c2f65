"""The input data contract: which tables Atelier reads, their columns, types and rules.

The simulator writes data that satisfies it, `atelier.data.validate` enforces it on any input, and the
README's "Data contract" section is this module in prose. Only `orders` is required.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "timestamp", "number", "integer", "text"]


#: Event types the features understand. Other types are kept (they still mark a session as active).
class DataContractError(ValueError):
    """The input does not meet the data contract in a way row quarantine cannot fix."""


KNOWN_EVENT_TYPES = ("product_view", "add_to_cart", "purchase")
#: Devices with their own share features; other values count only towards the session total.
KNOWN_DEVICES = ("mobile", "desktop", "tablet")


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, kind, whether it must be present, and its bounds."""

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    minimum_inclusive: bool = True
    description: str = ""


@dataclass(frozen=True)
class Table:
    """One input table: its name, primary key, columns and a sentence on what a row is."""

    name: str
    key: str
    required: bool
    row: str
    columns: tuple[Column, ...] = field(default_factory=tuple)
    time_column: str | None = None

    def column(self, name: str) -> Column:
        """The column called `name` (KeyError if the contract has none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r} in the contract")

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def id_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "id"]


ORDERS = Table(
    name="orders",
    key="order_id",
    required=True,
    row="one order (all its items together)",
    time_column="ordered_at",
    columns=(
        Column("customer_id", "id", description="who ordered"),
        Column("order_id", "id", description="unique per order"),
        Column("ordered_at", "timestamp", description="when the order was placed (ISO 8601)"),
        Column("amount", "number", minimum=0, description="amount paid, after discounts"),
        Column("quantity", "integer", required=False, nullable=True, minimum=1, description="items in the order"),
        Column("product_id", "id", required=False, nullable=True, description="the product, for single-item orders"),
        Column(
            "discount",
            "number",
            required=False,
            nullable=True,
            minimum=0,
            description="discount given, same currency as amount",
        ),
        Column(
            "session_id", "id", required=False, nullable=True, description="the clickstream session the order came from"
        ),
    ),
)

EVENTS = Table(
    name="events",
    key="event_id",
    required=False,
    row="one clickstream event",
    time_column="ts",
    columns=(
        Column("event_id", "id", description="unique per event"),
        Column("customer_id", "id", description="who acted"),
        Column("session_id", "id", description="the visit the event belongs to"),
        Column("ts", "timestamp", description="when it happened (ISO 8601)"),
        Column("event_type", "text", description="product_view, add_to_cart, purchase (others are kept)"),
        Column("product_id", "id", required=False, nullable=True, description="the product concerned, if any"),
        Column(
            "device", "text", required=False, nullable=True, description="mobile, desktop, tablet (others are kept)"
        ),
        Column(
            "dwell_seconds",
            "number",
            required=False,
            nullable=True,
            minimum=0,
            description="time spent on the event's page",
        ),
    ),
)

CUSTOMERS = Table(
    name="customers",
    key="customer_id",
    required=False,
    row="one customer",
    time_column="signup_at",
    columns=(
        Column("customer_id", "id", description="unique per customer"),
        Column("signup_at", "timestamp", required=False, nullable=True, description="when the account was created"),
        Column("age_band", "text", required=False, nullable=True, description="e.g. 25-34"),
        Column(
            "gender", "text", required=False, nullable=True, description="free text, e.g. female, male, unspecified"
        ),
        Column("region", "text", required=False, nullable=True, description="free text"),
    ),
)

PRODUCTS = Table(
    name="products",
    key="product_id",
    required=False,
    row="one product",
    columns=(
        Column("product_id", "id", description="unique per product"),
        Column("category", "text", description="e.g. dresses, shoes"),
        Column(
            "price",
            "number",
            required=False,
            nullable=True,
            minimum=0,
            minimum_inclusive=False,
            description="list price",
        ),
        Column("price_tier", "text", required=False, nullable=True, description="e.g. budget, mid, premium"),
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in (ORDERS, EVENTS, CUSTOMERS, PRODUCTS)}

#: File formats Atelier reads, in the order it looks for them.
FILE_SUFFIXES = (".parquet", ".csv")
