#!/usr/bin/env python3
"""What the order of client_ids costs SQLite's unique (room, user_id, client_id) index.

One room, one user, already `PREFILL` messages stored; then 30 batches of 1,000 messages, each in
one transaction, with client_ids that are (a) a counter, (b) UUIDv7 (time first, what the web UI
sends) or (c) UUIDv4 (random). Prints the time per batch and the bytes each batch wrote to the
WAL. Standard library only; the schema is the part of confab's `messages` that matters here.

    python3 bench/experiments/client_id_order.py [PREFILL]
"""

import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid


def uuid7() -> str:
    ms = int(time.time() * 1000)
    rand = os.urandom(10).hex()
    h = f"{ms:012x}7{rand[:3]}{(int(rand[3], 16) & 0x3 | 0x8):x}{rand[4:19]}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def run(kind: str, prefill: int) -> None:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "cid.db")
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-16384",
                   "wal_autocheckpoint=100000"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("""CREATE TABLE messages (pos INTEGER PRIMARY KEY AUTOINCREMENT,
                  room TEXT NOT NULL, seq INTEGER NOT NULL, user_id TEXT NOT NULL,
                  text TEXT NOT NULL, client_id TEXT NOT NULL)""")
    db.execute("CREATE UNIQUE INDEX messages_by_seq ON messages (room, seq)")
    db.execute("CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id)")
    count = 0

    def client_id() -> str:
        if kind == "counter":
            return f"{count:012d}"
        return uuid7() if kind == "uuid7" else str(uuid.uuid4())

    def batch() -> None:
        nonlocal count
        rows = []
        for _ in range(1000):
            count += 1
            rows.append(("room", count, "01936f0e-aaaa-7bbb-8ccc-0123456789ab", "x" * 100,
                         client_id()))
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO messages (room, seq, user_id, text, client_id) "
                       "VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")

    for _ in range(prefill // 1000):
        batch()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    started = time.perf_counter()
    for _ in range(30):
        batch()
    per_batch = (time.perf_counter() - started) / 30 * 1000
    wal = os.path.getsize(path + "-wal") / 30 / 1e6
    print(f"{kind:8} after {prefill:>9,} messages: {per_batch:5.1f} ms and {wal:4.1f} MB of WAL "
          "per batch of 1,000")
    db.close()
    shutil.rmtree(folder)


if __name__ == "__main__":
    stored = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    for order in ("counter", "uuid7", "uuid4"):
        run(order, stored)
