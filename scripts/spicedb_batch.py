#!/usr/bin/env python3
"""Answers many SpiceDB validation cases in one process, with the real SpiceDB.

usage: PEERS/.venv/bin/python scripts/spicedb_batch.py --peers PEERS [--deadline S] < jobs.jsonl > answers.jsonl

The differential fuzzer (tests/integration/spicedb_fuzz.rs) writes one JSON object per
line:
  {"id": "...", "schema": "...", "relationships": ["doc:d#viewer@user:a", ...],
   "checks": [{"check": "doc:d#view@user:a", "context": {...} | null}, ...],
   "lookups": [{"kind": "resources", "resource_type": "doc", "permission": "view",
                "subject": "user:a" | "group:g#member", "context": ...},
               {"kind": "subjects", "resource": "doc:d", "permission": "view",
                "subject_type": "user", "subject_relation": "member" | null, "context": ...},
               {"kind": "expand", "resource": "doc:d", "permission": "view"}, ...],
   "start": 0}
and reads one JSON object per line back, in the same order:
  {"id": "...", "answers": ["allowed" | "denied" | "conditional[missing=a,b]" |
                            "error: ...", ..., LOOKUP, ...]}  ((checks + lookups)[start:])
where a LOOKUP answer is {"items": [...]} or {"error": "..."}: resource ids
(LookupResources) or subject ids (LookupSubjects; the wildcard as "*" or
"*-a,b" with its exclusions), each with "?" appended when CONDITIONAL;
for "expand" the sorted, de-duplicated leaf subjects of the tree
("type:id" or "type:id#rel"), the tree's shape normalised away.
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


def _subject(sp, text: str):
    obj, _, rel = text.partition("#")
    ty, _, oid = obj.partition(":")
    return sp.SubjectReference(object=sp.ObjectReference(object_type=ty, object_id=oid), optional_relation=rel)


def _leaves(node, out: set) -> None:
    """Every leaf subject of an ExpandPermissionTree answer."""
    if node.HasField("leaf"):
        for s in node.leaf.subjects:
            text = f"{s.object.object_type}:{s.object.object_id}"
            if s.optional_relation:
                text += "#" + s.optional_relation
            out.add(text)
    else:
        for child in node.intermediate.children:
            _leaves(child, out)


def lookup_answer(sp, db, q: dict) -> dict:
    """One lookup, answered by SpiceDB (see the module docs for the form)."""
    from authzed.api.v1 import (  # noqa: E402
        ExpandPermissionTreeRequest,
        LookupResourcesRequest,
        LookupSubjectsRequest,
    )
    from authzed.api.v1.permission_service_pb2 import LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
    from authzed.api.v1.permission_service_pb2_grpc import PermissionsServiceStub

    full = sp.Consistency(fully_consistent=True)
    conditional = LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
    stub = PermissionsServiceStub(db.channel())
    kind = q["kind"]
    if kind == "expand":
        ty, _, oid = q["resource"].partition(":")
        resp = db.permissions().ExpandPermissionTree(ExpandPermissionTreeRequest(
            consistency=full, resource=sp.ObjectReference(object_type=ty, object_id=oid),
            permission=q["permission"]))
        out: set = set()
        _leaves(resp.tree_root, out)
        return {"items": sorted(out)}
    items = []
    if kind == "resources":
        req = LookupResourcesRequest(consistency=full, resource_object_type=q["resource_type"],
                                     permission=q["permission"], subject=_subject(sp, q["subject"]))
        if q.get("context") is not None:
            req.context.CopyFrom(sp._struct(q["context"]))
        for r in stub.LookupResources(req, timeout=60):
            items.append(r.resource_object_id + ("?" if r.permissionship == conditional else ""))
    else:
        ty, _, oid = q["resource"].partition(":")
        req = LookupSubjectsRequest(consistency=full, resource=sp.ObjectReference(object_type=ty, object_id=oid),
                                    permission=q["permission"], subject_object_type=q["subject_type"],
                                    optional_subject_relation=q.get("subject_relation") or "")
        if q.get("context") is not None:
            req.context.CopyFrom(sp._struct(q["context"]))
        for r in stub.LookupSubjects(req, timeout=60):
            s = r.subject
            text = s.subject_object_id
            if r.excluded_subjects:
                text += "-" + ",".join(sorted(e.subject_object_id for e in r.excluded_subjects))
            items.append(text + ("?" if s.permissionship == conditional else ""))
    return {"items": sorted(set(items))}


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
            queries = job["checks"] + job.get("lookups", [])
            for q in queries[job.get("start", 0):]:
                result: dict = {}

                def run(q=q, result=result):
                    try:
                        if "kind" in q:
                            result["answer"] = lookup_answer(sp, db, q)
                        else:
                            result["answer"] = check_answer(sp, db, q["check"], q.get("context"))
                    except Exception as e:  # noqa: BLE001  (max depth and other check errors)
                        detail = e.details() if hasattr(e, "details") else str(e)
                        result["answer"] = {"error": detail} if "kind" in q else f"error: {detail}"

                worker = threading.Thread(target=run, daemon=True)
                worker.start()
                worker.join(args.deadline)
                if worker.is_alive():
                    overrun = f"deadline exceeded ({args.deadline}s)"
                    answers.append({"error": overrun} if "kind" in q else f"error: {overrun}")
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
