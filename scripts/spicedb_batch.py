#!/usr/bin/env python3
"""Answers many SpiceDB validation cases in one process, with the real SpiceDB.

usage: PEERS/.venv/bin/python scripts/spicedb_batch.py --peers PEERS [--deadline S] < jobs.jsonl > answers.jsonl

The differential fuzzer (tests/integration/spicedb_fuzz.rs) writes one JSON object per
line:
  {"id": "...", "schema": "...", "relationships": ["doc:d#viewer@user:a", ...],
   "checks": [{"check": "doc:d#view@user:a", "context": {...} | null}, ...],
   "start": 0}
and reads one JSON object per line back, in the same order:
  {"id": "...", "answers": ["allowed" | "denied" | "conditional[missing=a,b]" |
                            "error: ...", ...]}            (checks[start:])
or, when SpiceDB refuses the schema or a relationship,
  {"id": "...", "load_error": "..."}.

Each case runs in a fresh in-memory embedded SpiceDB (v1.54.0, fully
consistent), through PEERS/spicedb_peer.py as PEERS/spicedb_oracle.py does:
the same answers as `spicedb_oracle.py FILE.yaml`, without paying the
interpreter and library start-up per case.

On cyclic data SpiceDB can spend minutes and gigabytes before it reports
"max depth exceeded", and its FFI call cannot be cancelled. A check that
takes longer than --deadline seconds is answered "error: deadline exceeded",
its line is printed with "incomplete": true, and the process exits with
status 75 at once (abandoning the runaway call); the caller restarts it on
the rest, from the next check ("start").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

EXIT_ABANDONED = 75


def check_answer(sp, db, text: str, context) -> str:
    """spicedb_oracle.check_answer."""
    p = sp.parse_rel(text)
    if context is not None:
        p.context = context
    resp = sp.check(db, p)
    ans = sp.answer(resp)
    if ans == "conditional" and resp.partial_caveat_info.missing_required_context:
        ans += "[missing=" + ",".join(sorted(resp.partial_caveat_info.missing_required_context)) + "]"
    return ans


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", required=True, type=Path, help="the ../shared/peers directory")
    ap.add_argument("--deadline", type=float, default=2.0, help="seconds per check (default 2)")
    ap.add_argument("--verbose", action="store_true", help="name each case on stderr as it starts")
    args = ap.parse_args()
    sys.path.insert(0, str(args.peers.resolve()))
    import spicedb_peer as sp  # noqa: E402  (found through --peers)

    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        if args.verbose:
            print(f"{job['id']}: {len(job['checks'])} checks", file=sys.stderr, flush=True)
        out: dict = {"id": job["id"]}
        db = sp.start()
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
            for q in job["checks"][job.get("start", 0):]:
                result: dict = {}

                def run(q=q, result=result):
                    try:
                        result["answer"] = check_answer(sp, db, q["check"], q.get("context"))
                    except Exception as e:  # noqa: BLE001  (max depth and other check errors)
                        detail = e.details() if hasattr(e, "details") else str(e)
                        result["answer"] = f"error: {detail}"

                worker = threading.Thread(target=run, daemon=True)
                worker.start()
                worker.join(args.deadline)
                if worker.is_alive():
                    answers.append(f"error: deadline exceeded ({args.deadline}s)")
                    out["answers"] = answers
                    out["incomplete"] = True
                    print(json.dumps(out), flush=True)
                    os._exit(EXIT_ABANDONED)
                answers.append(result["answer"])
            out["answers"] = answers
        db.close()
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
