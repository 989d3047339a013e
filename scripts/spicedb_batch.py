#!/usr/bin/env python3
"""Answers many SpiceDB validation cases in one process, with the real SpiceDB.

usage: PEERS/.venv/bin/python scripts/spicedb_batch.py --peers PEERS < jobs.jsonl > answers.jsonl

The differential fuzzer (tests/spicedb_fuzz.rs) writes one JSON object per
line:
  {"id": "...", "schema": "...", "relationships": ["doc:d#viewer@user:a", ...],
   "checks": [{"check": "doc:d#view@user:a", "context": {...} | null}, ...]}
and reads one JSON object per line back, in the same order:
  {"id": "...", "answers": ["allowed" | "denied" | "conditional[missing=a,b]" |
                            "error: ...", ...]}
or, when SpiceDB refuses the schema or a relationship,
  {"id": "...", "load_error": "..."}.

Each case runs in a fresh in-memory embedded SpiceDB (v1.54.0, fully
consistent), through the functions of PEERS/spicedb_oracle.py: the same
answers as `spicedb_oracle.py FILE.yaml`, without paying the interpreter
and library start-up per case.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", required=True, type=Path, help="the ../shared/peers directory")
    args = ap.parse_args()
    sys.path.insert(0, str(args.peers.resolve()))
    import spicedb_oracle as oracle  # noqa: E402  (found through --peers)
    import spicedb_peer as sp  # noqa: E402

    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        out: dict = {"id": job["id"]}
        db = sp.start()
        try:
            try:
                db.schema().WriteSchema(sp.WriteSchemaRequest(schema=job["schema"]))
            except Exception as e:  # noqa: BLE001  (SpiceDB refused the schema)
                out["load_error"] = f"schema: {e}"
            if "load_error" not in out:
                try:
                    rels = [sp.to_relationship(sp.parse_rel(r)) for r in job["relationships"]]
                    if rels:
                        sp.write_relationships(db, rels)
                except Exception as e:  # noqa: BLE001  (SpiceDB refused a relationship)
                    out["load_error"] = f"relationships: {e}"
            if "load_error" not in out:
                answers = []
                for q in job["checks"]:
                    try:
                        answers.append(oracle.check_answer(db, q["check"], q.get("context")))
                    except Exception as e:  # noqa: BLE001  (max depth and other check errors)
                        detail = e.details() if hasattr(e, "details") else str(e)
                        answers.append(f"error: {detail}")
                out["answers"] = answers
        finally:
            db.close()
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
