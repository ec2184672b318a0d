"""A small, deterministic SQLite "warehouse" for the examples and the demo: products and FAQ entries.

``build_warehouse(path)`` writes the same rows every time (no randomness without a seed), so two runs of the
demo see the same data, and a test can change one row and expect exactly one update.

Tables:

``products``
    ``product_id`` (key), ``sku``, ``name``, ``category``, ``brand``, ``price`` (EUR), ``stock``, ``rating``,
    ``description``, ``updated_on``.
``faq``
    ``faq_id`` (key), ``category``, ``question``, ``answer``.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

PRODUCT_COUNT = 240
SEED = 20260601

_CATEGORIES: dict[str, dict[str, list[str]]] = {
    "Coffee": {
        "items": ["Espresso Machine", "Burr Grinder", "Pour-Over Kettle", "Milk Frother", "Cold Brew Maker"],
        "traits": ["15-bar pump", "ceramic burrs", "gooseneck spout", "steam wand", "stainless steel filter"],
        "uses": ["morning espresso", "filter coffee", "latte art", "iced coffee", "travel brewing"],
    },
    "Kitchen": {
        "items": ["Chef Knife", "Cast Iron Skillet", "Stand Mixer", "Cutting Board", "Dutch Oven"],
        "traits": [
            "forged carbon steel",
            "pre-seasoned surface",
            "planetary mixing",
            "end-grain walnut",
            "enamel coat",
        ],
        "uses": ["weeknight dinners", "bread baking", "meal prep", "slow braising", "searing steaks"],
    },
    "Outdoor": {
        "items": ["Trail Backpack", "Camping Stove", "Headlamp", "Sleeping Bag", "Water Filter"],
        "traits": [
            "ripstop nylon",
            "piezo ignition",
            "rechargeable battery",
            "down insulation",
            "hollow-fiber membrane",
        ],
        "uses": ["day hikes", "alpine camping", "night runs", "winter trips", "backcountry water"],
    },
    "Audio": {
        "items": ["Wireless Headphones", "Bookshelf Speaker", "USB Microphone", "Turntable", "Earbuds"],
        "traits": ["active noise cancelling", "silk dome tweeter", "cardioid capsule", "belt drive", "IPX4 rating"],
        "uses": ["long flights", "home listening", "podcast recording", "vinyl collections", "gym sessions"],
    },
    "Office": {
        "items": ["Standing Desk", "Ergonomic Chair", "Monitor Arm", "Mechanical Keyboard", "Desk Lamp"],
        "traits": ["dual motors", "lumbar support", "gas spring", "hot-swap switches", "dimmable LED"],
        "uses": ["remote work", "long coding sessions", "dual monitors", "writing", "late-night reading"],
    },
    "Garden": {
        "items": ["Pruning Shears", "Raised Bed Kit", "Hose Reel", "Compost Bin", "Seed Starter Tray"],
        "traits": ["bypass blades", "galvanized steel", "auto-rewind", "aerated chambers", "humidity dome"],
        "uses": ["rose pruning", "vegetable beds", "patio watering", "kitchen scraps", "spring seedlings"],
    },
}
_BRANDS = ["Northwind", "Alder & Co", "Brightline", "Kestrel", "Mosaic", "Tidewater", "Summit Works", "Larkspur"]
_EDITIONS = ["", "Pro", "Mini", "Plus", "Classic", "XL"]

FAQ: list[tuple[str, str, str]] = [
    ("Shipping", "How long does standard shipping take?", "Standard shipping takes 3-5 business days in the EU."),
    ("Shipping", "Do you ship outside the EU?", "Yes, to the UK, Norway and Switzerland; customs fees may apply."),
    ("Shipping", "Can I change my delivery address?", "Until the order ships, change it under Orders > Delivery."),
    (
        "Shipping",
        "Is express delivery available?",
        "Express delivery arrives the next business day if ordered by 14:00.",
    ),
    ("Shipping", "How do I track my parcel?", "The shipping e-mail holds a tracking link; it updates every few hours."),
    ("Returns", "What is the return window?", "You can return any item within 30 days of delivery."),
    ("Returns", "Are returns free?", "Returns are free in the EU with the prepaid label in your account."),
    ("Returns", "When do I get my refund?", "Refunds reach your account 5-7 days after the return arrives."),
    ("Returns", "Can I exchange an item?", "Yes: start a return and choose 'exchange' to get another size or colour."),
    ("Returns", "What if my item arrived damaged?", "Send a photo within 7 days and we ship a replacement at once."),
    ("Warranty", "How long is the warranty?", "Every product has a two-year warranty; Pro editions have three years."),
    ("Warranty", "Does the warranty cover accidental damage?", "No, it covers manufacturing defects only."),
    ("Warranty", "How do I claim the warranty?", "Open a ticket with the order number and a short description."),
    ("Warranty", "Is the warranty transferable?", "Yes, the warranty follows the product to its new owner."),
    ("Payments", "Which payment methods do you accept?", "Cards, PayPal, SEPA transfer and Klarna instalments."),
    (
        "Payments",
        "Is it safe to pay by card?",
        "Payments are processed by a PCI-DSS certified provider; we never see card numbers.",
    ),
    ("Payments", "Can I pay in instalments?", "Orders above 100 EUR can be paid in three interest-free instalments."),
    (
        "Payments",
        "Do you offer invoices for companies?",
        "Yes: add the VAT number at checkout to get a company invoice.",
    ),
    (
        "Account",
        "How do I reset my password?",
        "Use 'Forgot password' on the sign-in page; the link is valid for an hour.",
    ),
    (
        "Account",
        "Can I delete my account?",
        "Yes, under Settings > Privacy; order records are kept as the law requires.",
    ),
    (
        "Account",
        "How do I change my e-mail address?",
        "Under Settings > Profile; we send a confirmation to the new address.",
    ),
    ("Care", "How do I descale an espresso machine?", "Run the descaling program monthly with a citric acid solution."),
    ("Care", "How do I season a cast iron skillet?", "Oil it thinly and bake it upside down at 230 C for an hour."),
    ("Care", "Can the chef knife go in the dishwasher?", "No: wash it by hand and dry it at once to keep the edge."),
    ("Care", "How do I clean a burr grinder?", "Grind rice-free cleaning tablets, then brush the burrs."),
    ("Care", "How should I store a down sleeping bag?", "Loosely, in the large storage sack, never compressed."),
    (
        "Care",
        "How do I replace the water filter cartridge?",
        "After about 1,000 litres: unscrew the housing and swap the cartridge.",
    ),
    ("Care", "How do I clean wireless earbuds?", "Wipe them with a dry cloth; clean the mesh with a soft brush."),
    (
        "Products",
        "Which espresso machine suits beginners?",
        "The Espresso Machine Mini has presets and a simple steam wand.",
    ),
    (
        "Products",
        "Which chair is best for long sessions?",
        "The Ergonomic Chair Pro has adjustable lumbar support and armrests.",
    ),
    (
        "Products",
        "Are the headphones good for flights?",
        "Yes: the Wireless Headphones cancel engine noise and last 30 hours.",
    ),
    ("Products", "Does the standing desk hold two monitors?", "Yes, up to 120 kg with the dual-motor frame."),
    ("Products", "Can the camping stove use any gas canister?", "It takes standard EN417 screw-thread canisters."),
    ("Products", "Is the raised bed kit food safe?", "Yes, the galvanized steel is coated and safe for vegetables."),
    ("Stores", "Do you have physical stores?", "Showrooms in Berlin, Lyon and Utrecht open Tuesday to Saturday."),
    (
        "Stores",
        "Can I pick up an online order in a store?",
        "Yes, choose click-and-collect; orders are ready in two days.",
    ),
    ("Stores", "Do stores take returns of online orders?", "Yes, bring the item and the order number."),
    ("Sustainability", "Is the packaging recyclable?", "All packaging is paper or cardboard and fully recyclable."),
    (
        "Sustainability",
        "Do you offer repairs?",
        "Yes: our repair service fixes products out of warranty at cost price.",
    ),
    (
        "Sustainability",
        "Do you take back old devices?",
        "We recycle old electronics of any brand when you buy a new one.",
    ),
]


def products() -> list[dict[str, object]]:
    """The product rows: the same list every time."""
    rng = random.Random(SEED)
    rows = []
    categories = list(_CATEGORIES)
    for number in range(1, PRODUCT_COUNT + 1):
        category = categories[(number - 1) % len(categories)]
        spec = _CATEGORIES[category]
        index = rng.randrange(len(spec["items"]))
        item = spec["items"][index]
        edition = _EDITIONS[rng.randrange(len(_EDITIONS))]
        brand = _BRANDS[rng.randrange(len(_BRANDS))]
        name = f"{brand} {item}" + (f" {edition}" if edition else "")
        trait = spec["traits"][index]
        use = spec["uses"][rng.randrange(len(spec["uses"]))]
        price = round(rng.uniform(12, 900), 2)
        rating = round(rng.uniform(3.2, 5.0), 1)
        stock = rng.randrange(0, 400)
        description = (
            f"The {name} is a {category.lower()} product with {trait}, made for {use}."
            f" Rated {rating} out of 5 by customers. {'In stock' if stock else 'Back in stock soon'}."
        )
        rows.append(
            {
                "product_id": number,
                "sku": f"{category[:3].upper()}-{number:04d}",
                "name": name,
                "category": category,
                "brand": brand,
                "price": price,
                "stock": stock,
                "rating": rating,
                "description": description,
                "updated_on": f"2026-0{1 + number % 6}-{1 + number % 28:02d}",
            }
        )
    return rows


def faq_entries() -> list[dict[str, object]]:
    """The FAQ rows."""
    return [
        {"faq_id": number, "category": category, "question": question, "answer": answer}
        for number, (category, question, answer) in enumerate(FAQ, start=1)
    ]


def build_warehouse(path: str | Path) -> Path:
    """(Re)create the SQLite warehouse at ``path`` with the products and FAQ tables; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            DROP TABLE IF EXISTS products;
            DROP TABLE IF EXISTS faq;
            CREATE TABLE products (
                product_id INTEGER PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, category TEXT NOT NULL,
                brand TEXT NOT NULL, price REAL NOT NULL, stock INTEGER NOT NULL, rating REAL NOT NULL,
                description TEXT NOT NULL, updated_on TEXT NOT NULL
            );
            CREATE TABLE faq (
                faq_id INTEGER PRIMARY KEY, category TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL
            );
            """
        )
        columns = list(products()[0])
        connection.executemany(
            f"INSERT INTO products ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [tuple(row[column] for column in columns) for row in products()],
        )
        connection.executemany(
            "INSERT INTO faq (faq_id, category, question, answer) VALUES (?, ?, ?, ?)",
            [(row["faq_id"], row["category"], row["question"], row["answer"]) for row in faq_entries()],
        )
    connection.close()
    return path


def sqlite_connection_json(path: str | Path) -> str:
    """An Airflow connection (JSON, for ``AIRFLOW_CONN_<ID>``) to the SQLite file at ``path``."""
    import json

    return json.dumps({"conn_type": "sqlite", "host": str(Path(path).resolve())})


if __name__ == "__main__":  # python -m example_dags.warehouse /path/warehouse.db
    import sys

    target = build_warehouse(sys.argv[1] if len(sys.argv) > 1 else "warehouse.db")
    print(f"Built {target}: {PRODUCT_COUNT} products, {len(FAQ)} FAQ entries.")
    print(f"AIRFLOW_CONN_WAREHOUSE_SQLITE='{sqlite_connection_json(target)}'")
