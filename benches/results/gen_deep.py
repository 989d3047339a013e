#!/usr/bin/env python3
"""Deep-nesting workload: groups g0 ⊂ g1 ⊂ … ⊂ g9 (10 levels of group#member usersets),
10,000 users directly in the innermost g0, document:top viewable by g9#member.
Checks: 1,000 members (allowed, path 10 deep) and 1,000 non-members (denied: the
whole hierarchy is explored). Writes WORKLOAD and WORKLOAD.answers."""
import sys
out = sys.argv[1]
depth, members = 10, 10_000
rels = ["document:top#viewer@group:g%d#member" % (depth - 1)]
rels += ["group:g%d#member@group:g%d#member" % (k + 1, k) for k in range(depth - 1)]
rels += ["group:g0#member@user:u%d" % i for i in range(members)]
checks = [("document:top#view@user:u%d" % ((i * 7919) % members), "allowed") for i in range(1000)]
checks += [("document:top#view@user:x%d" % i, "denied") for i in range(1000)]
checks = [c for pair in zip(checks[:1000], checks[1000:]) for c in pair]
schema = """definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | group#member
    permission view = viewer
}
"""
with open(out, "w") as f:
    f.write("%% zanzibar-workload v1\n%% meta {\"deep\": 10, \"members\": 10000}\n%% schema\n")
    f.write(schema)
    f.write("%% relationships\n" + "\n".join(rels) + "\n%% checks\n")
    f.write("\n".join(c for c, _ in checks) + "\n%% end\n")
with open(out + ".answers", "w") as f:
    f.write("".join("%s\t%s\n" % c for c in checks))
print("wrote", out, len(rels), "relationships", len(checks), "checks")
