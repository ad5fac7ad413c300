"""Mean ± sd over seeds of ``benchmarks/quality.py`` records, and each group against the first.

    python benchmarks/seed_table.py "gensim=DIR/head_gensim_and_b256_s*.json:gensim" \
        "w2vjax batch 32=DIR/head_b32_s*.json:w2vjax"

Each argument is ``label=GLOB[,GLOB...][:TOOL]``: the records of the files matching a GLOB whose tool name
is TOOL (``gensim`` or ``w2vjax``; all records if omitted).  Prints a Markdown table (analogy,
WS-353, SimLex-999, raw words/s) and, for every group after the first, the difference from the
first with Welch's t-test (``experiments.report.welch``).
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments.report import welch  # noqa: E402

METRICS = [("analogy", "analogy (30k) %", 100.0, 2), ("ws353", "WS-353", 1.0, 3), ("simlex999", "SimLex-999", 1.0, 3)]


def load(spec: str) -> tuple[str, list[dict]]:
    label, _, rest = spec.partition("=")
    pattern, _, tool = rest.partition(":")
    files = sorted(f for p in pattern.split(",") for f in glob.glob(p))
    if not files:
        raise SystemExit(f"seed_table: no file matches {pattern}")
    recs = [r for f in files for r in json.load(open(f))["records"] if not tool or r.get("tool_name") == tool]
    if not recs:
        raise SystemExit(f"seed_table: no {tool} record in {pattern}")
    return label, recs


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    groups = [load(a) for a in argv]
    head = ["run", "seeds"] + [m[1] for m in METRICS] + ["raw words/s (loop)"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for label, recs in groups:
        cells = [label, str(len(recs))]
        for key, _, scale, dig in METRICS:
            v = np.array([r[key] for r in recs]) * scale
            cells.append(f"{v.mean():.{dig}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{dig}f}")
        cells.append(f"{np.mean([r['raw_words_per_s'] for r in recs]) / 1e6:.2f} M")
        print("| " + " | ".join(cells) + " |")
    base_label, base = groups[0]
    for label, recs in groups[1:]:
        parts = []
        for key, name, scale, dig in METRICS:
            d, lo, hi, p = welch([r[key] * scale for r in recs], [r[key] * scale for r in base])
            parts.append(f"{name} {d:+.{dig}f} (p {p:.3f})")
        print(f"\n{label} - {base_label}: " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
