#!/usr/bin/python3
"""
compare_safetensors.py A.safetensors B.safetensors [--json A.json B.json]

Exit 0 when both files hold the same tensors (same names, dtypes, shapes and
bytes; order and __metadata__ ignored), and the optional JSON files hold
equal objects; else print the differences and exit 1.  Used by
test_converters.sh.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refutil as ru                                   # noqa: E402


def main(argv):
    if len(argv) not in (2, 5) or (len(argv) == 5 and argv[2] != "--json"):
        print(__doc__.strip().split("\n")[0], file=sys.stderr)
        return 2
    a, _ = ru.read_safetensors(argv[0])
    b, _ = ru.read_safetensors(argv[1])
    bad = ["only in %s: %s" % (argv[0], n) for n in sorted(set(a) - set(b))]
    bad += ["only in %s: %s" % (argv[1], n) for n in sorted(set(b) - set(a))]
    for n in sorted(set(a) & set(b)):
        (da, sa, ra), (db, sb, rb) = a[n], b[n]
        if (da, sa) != (db, sb):
            bad.append("%s: %s%s vs %s%s" % (n, da, list(sa), db, list(sb)))
        elif ra != rb:
            bad.append("%s: values differ" % n)
    if len(argv) == 5:
        ja, jb = (json.load(open(p)) for p in argv[3:5])
        for k in sorted(set(ja) | set(jb)):
            if ja.get(k, "<absent>") != jb.get(k, "<absent>"):
                bad.append("config %s: %r vs %r" % (k, ja.get(k, "<absent>"), jb.get(k, "<absent>")))
    for line in bad:
        print("DIFF " + line)
    print("%s: %d tensors compared, %d differences" % (os.path.basename(argv[1]), len(set(a) & set(b)), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
