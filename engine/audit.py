"""Checking the record: every history entry against the hash chain (``engine.store.chain``), every
instance's latest entry against the hash the instance keeps, and, given a seal written earlier, every
entry the seal names against the hash it had then, and every plan version sent or issued by then
against the hash of its text.

A chain only shows a change made by someone who did not also recompute the hashes after it. Anyone
who can write to the database could do that, so ``seal`` writes the latest hash of every instance to
a file that the council keeps where the database's administrators cannot write (a daily email to the
auditor, a write-once store): ``verify --seal`` then shows any entry changed since, however well the
chain was recomputed. The output names cases by their number only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from .errors import InvalidInput
from .store.chain import CHAIN_FORMAT, FIELDS, GENESIS, entry_hash

SEAL_FORMAT = "ehcp-seal-1"


@dataclass
class Verified:
    instances: int = 0
    entries: int = 0
    breaks: list[str] = field(default_factory=list)
    sealed_checked: int = 0

    @property
    def intact(self) -> bool:
        return not self.breaks


def _instances(conn: Connection) -> dict[int, tuple[int, str, str, str, int]]:
    """id -> (case, workflow, latest entry's hash, state, version)."""
    rows = conn.execute(
        text("SELECT id, case_id, workflow, history_hash, state, version FROM workflow_instance")
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def _plans(conn: Connection) -> dict[str, str]:
    """Every plan version sent or issued ("case:version"), by the hash of its text: they never change."""
    rows = conn.execute(text("SELECT case_id, version, sections FROM plan_version WHERE status <> 'draft'"))
    return {f"{r[0]}:{r[1]}": hashlib.sha256(str(r[2]).encode()).hexdigest() for r in rows}


def _snapshot(engine: Engine) -> Connection:
    """One connection whose reads all see the database as it was at their first (while the service
    goes on writing): SQLite's read transaction, PostgreSQL's REPEATABLE READ."""
    conn = engine.connect()
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _entries(conn: Connection, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Every history entry, by instance and seq, a batch at a time (a county's record does not fit
    in memory at once)."""
    after = (-1, -1)
    sql = text(
        f"SELECT {', '.join(FIELDS)}, hash FROM history WHERE instance_id > :i OR (instance_id = :i AND seq > :s) "
        "ORDER BY instance_id, seq LIMIT :n"
    )
    while True:
        rows = conn.execute(sql, {"i": after[0], "s": after[1], "n": batch}).mappings().fetchall()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        after = (rows[-1]["instance_id"], rows[-1]["seq"])


def verify(
    engine: Engine, seal: dict[str, Any] | None = None, progress: Callable[[int], None] | None = None
) -> Verified:
    """Check the whole record; ``seal`` (from ``read_seal``) adds the entries and plans it names."""
    with _snapshot(engine) as conn, conn.begin():
        return _verify(conn, seal, progress)


def _verify(conn: Connection, seal: dict[str, Any] | None, progress: Callable[[int], None] | None) -> Verified:
    instances = _instances(conn)
    out = Verified(instances=len(instances))
    sealed: dict[int, tuple[int, str]] = {}
    if seal is not None:
        sealed = {int(k): (int(v[0]), str(v[1])) for k, v in seal["heads"].items()}
    last: dict[int, str] = {}
    tips: dict[int, tuple[int, str]] = {}  # each instance's last entry: (seq, the state it left)

    def where(row: dict[str, Any]) -> str:
        found = instances.get(row["instance_id"])
        case_id, workflow = (found[0], found[1]) if found is not None else (row["case_id"], "?")
        return f"case {case_id}, {workflow} (instance {row['instance_id']}), entry {row['seq']}"

    for row in _entries(conn):
        out.entries += 1
        if progress is not None:
            progress(1)
        iid = row["instance_id"]
        previous = last.get(iid, GENESIS)
        fields = {k: row[k] for k in FIELDS}
        expected = entry_hash(previous, **fields)
        if row["hash"] != expected:
            # Its own content changed, or an entry before it was changed, removed or added: the
            # chain is checked on from the hash stored here, so each break is reported once.
            out.breaks.append(
                f"{where(row)}: does not match what it says, or an entry before it was changed, removed or added"
            )
        last[iid] = row["hash"]
        tips[iid] = (row["seq"], row["to_state"])
        if iid in sealed and sealed[iid][0] == row["seq"]:
            out.sealed_checked += 1
            if row["hash"] != sealed[iid][1]:
                out.breaks.append(f"{where(row)}: changed since the seal (its hash then was {sealed[iid][1][:12]}…)")
            del sealed[iid]
    for iid, (case_id, workflow, head, state, version) in sorted(instances.items()):
        if last.get(iid, GENESIS) != head:
            out.breaks.append(
                f"case {case_id}, {workflow} (instance {iid}): its latest entries were removed or added outside "
                "the service (the instance's own hash does not match its last entry)"
            )
        elif tips.get(iid, (0, state)) != (version, state):  # the state is not in the hash: checked here
            seq, left = tips.get(iid, (0, state))
            out.breaks.append(
                f"case {case_id}, {workflow} (instance {iid}): changed outside the service (it is at '{state}', "
                f"step {version}; its last entry, {seq}, left it at '{left}')"
            )
    for iid, (seq, _) in sorted(sealed.items()):
        found = instances.get(iid)
        who = f"case {found[0]}, {found[1]} (instance {iid})" if found is not None else f"instance {iid}"
        out.breaks.append(f"{who}, entry {seq}: in the seal, but no longer in the record")
    if seal is not None:
        plans = _plans(conn)
        for key, digest in sorted(seal.get("plans", {}).items()):
            case_id, version = key.split(":")
            if key not in plans:
                out.breaks.append(f"case {case_id}, plan version {version}: in the seal, but no longer in the record")
            elif plans[key] != digest:
                out.breaks.append(f"case {case_id}, plan version {version}: its text has changed since the seal")
            out.sealed_checked += 1
    return out


def write_seal(engine: Engine, path: Path, now: datetime) -> int:
    """Write every instance's latest entry (seq, hash) to ``path``; returns how many."""
    with _snapshot(engine) as conn, conn.begin():
        rows = conn.execute(
            text(
                "SELECT h.instance_id, h.seq, h.hash FROM history h JOIN workflow_instance i "
                "ON i.id = h.instance_id AND h.hash = i.history_hash ORDER BY h.instance_id"
            )
        ).fetchall()
        plans = _plans(conn)
    heads = {str(r[0]): [r[1], r[2]] for r in rows}
    seal = {"format": SEAL_FORMAT, "chain": CHAIN_FORMAT, "sealed_at": now.isoformat(), "heads": heads, "plans": plans}
    path.write_text(json.dumps(seal, indent=1) + "\n", encoding="utf-8")
    return len(heads)


def read_seal(path: Path) -> dict[str, Any]:
    try:
        seal = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"--seal: {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"--seal: {path}: not a seal written by 'ehcp audit seal' ({exc})") from None
    if not isinstance(seal, dict) or seal.get("format") != SEAL_FORMAT or not isinstance(seal.get("heads"), dict):
        raise InvalidInput(f"--seal: {path}: not a seal written by 'ehcp audit seal'")
    return seal
