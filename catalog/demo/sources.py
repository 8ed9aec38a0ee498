"""Small generated source databases for the demo: a CRM, a webshop and an ERP (SQLite files).

Deterministic (seeded): 300 people, of whom the systems know overlapping subsets, with a few
fields the systems disagree on, so that unified records show merging and conflicts.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

FIRST = [
    "Anna",
    "Ben",
    "Chloe",
    "Daan",
    "Emma",
    "Finn",
    "Gwen",
    "Hugo",
    "Iris",
    "Jens",
    "Kim",
    "Lars",
    "Mia",
    "Noah",
    "Olivia",
    "Pieter",
    "Quinn",
    "Rosa",
    "Sven",
    "Tess",
]
LAST = [
    "Jansen",
    "de Vries",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "de Boer",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
]
COUNTRIES = ["NL", "BE", "DE", "FR"]
STATUSES = ["CREATED", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"]

SCHEMAS = {
    "crm": [
        "CREATE TABLE contact (contact_id INTEGER PRIMARY KEY, email_address TEXT NOT NULL, "
        "full_name TEXT, phone_number TEXT, birth_date TEXT, loyalty_level TEXT, "
        "preferred_store_code TEXT, created_date TEXT)",
    ],
    "webshop": [
        "CREATE TABLE customer (customer_no TEXT PRIMARY KEY, email TEXT NOT NULL, "
        "first_name TEXT, last_name TEXT, phone TEXT, birthday TEXT, country_code TEXT, "
        "created TEXT)",
        'CREATE TABLE "order" (order_no TEXT PRIMARY KEY, customer_no TEXT REFERENCES customer, '
        "creation_date TEXT, order_status TEXT, order_total REAL, currency_code TEXT, "
        "shipping_address TEXT)",
    ],
    "erp": [
        "CREATE TABLE debtor (debtor_no TEXT PRIMARY KEY, name TEXT, email TEXT, telephone TEXT, "
        "country TEXT, payment_terms TEXT, credit_limit REAL)",
        "CREATE TABLE sales_order (sales_order_no TEXT PRIMARY KEY, customer_reference TEXT, "
        "sold_to_debtor TEXT REFERENCES debtor, created_on TEXT, net_value REAL, currency TEXT, "
        "overall_status TEXT)",
    ],
}


def generate_demo_sources(directory: Path) -> dict[str, Path]:
    """Create (once) the demo databases in ``directory``; returns system key -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / f"{name}.db" for name in SCHEMAS}
    if all(f.exists() for f in files.values()):
        return files
    rng = random.Random(20261123)
    people: list[dict[str, Any]] = []
    for i in range(1, 301):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        people.append(
            {
                "i": i,
                "first": first,
                "last": last,
                "email": f"{first}.{last}.{i}@example.com".lower().replace(" ", ""),
                "phone": f"+31 6 {rng.randint(10000000, 99999999)}",
                "birth": f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}",
                "country": rng.choice(COUNTRIES),
            }
        )
    for name, ddl in SCHEMAS.items():
        tmp = files[name].with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        for stmt in ddl:
            conn.execute(stmt)
        if name == "crm":  # people 1..250
            conn.executemany(
                "INSERT INTO contact VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        p["i"],
                        p["email"],
                        f"{p['first']} {p['last']}",
                        # every 7th person: the CRM has an older phone number than the webshop
                        p["phone"] if p["i"] % 7 else "+31 20 5550000",
                        p["birth"],
                        rng.choice(["BRONZE", "SILVER", "GOLD"]),
                        f"STORE-{rng.randint(1, 40):03d}",
                        "2021-03-01",
                    )
                    for p in people
                    if p["i"] <= 250
                ],
            )
        elif name == "webshop":  # people 100..300
            conn.executemany(
                "INSERT INTO customer VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        f"W{p['i']:05d}",
                        p["email"],
                        p["first"],
                        p["last"],
                        p["phone"],
                        p["birth"],
                        p["country"],
                        "2023-06-15",
                    )
                    for p in people
                    if p["i"] >= 100
                ],
            )
            conn.executemany(
                'INSERT INTO "order" VALUES (?,?,?,?,?,?,?)',
                [
                    (
                        f"SO-{10000 + n}",
                        f"W{p['i']:05d}",
                        f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}",
                        rng.choice(STATUSES),
                        round(rng.uniform(40, 300), 2),
                        "EUR",
                        f"{rng.randint(1, 200)} Main Street, {p['country']}",
                    )
                    for n, p in enumerate(p for p in people if p["i"] >= 100)
                ],
            )
        else:  # people 150..300, every 5th with another country than the webshop
            conn.executemany(
                "INSERT INTO debtor VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        f"D{p['i']:05d}",
                        f"{p['first']} {p['last']}",
                        p["email"],
                        p["phone"],
                        p["country"] if p["i"] % 5 else "LU",
                        "NET30",
                        5000.0,
                    )
                    for p in people
                    if p["i"] >= 150
                ],
            )
            conn.executemany(
                "INSERT INTO sales_order VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        f"E{n:06d}",
                        f"SO-{10000 + n}",
                        f"D{p['i']:05d}",
                        "2026-10-01",
                        round(rng.uniform(40, 300), 2),
                        "EUR",
                        "OPEN",
                    )
                    for n, p in enumerate(p for p in people if p["i"] >= 100)
                    if p["i"] >= 150
                ],
            )
        conn.commit()
        conn.close()
        tmp.replace(files[name])
    return files


def demo_sources_document(files: dict[str, Path]) -> str:
    """Source nodes for the demo databases, PART_OF their systems (a catalog document)."""
    lines = ["nodes:"]
    for name, path in sorted(files.items()):
        lines += [
            f"  - id: source:{name}-db",
            f"    name: {name.upper()} database (demo)",
            "    description: Generated demo database; live records are read from it.",
            "    tags: [demo]",
            f"    properties: {{type: SQL, location: 'sqlite:///{path.resolve()}'}}",
        ]
    lines.append("relations:")
    for name in sorted(files):
        lines.append(f"  - {{from: source:{name}-db, type: PART_OF, to: system:{name}}}")
    return "\n".join(lines) + "\n"


__all__ = ["demo_sources_document", "generate_demo_sources"]
