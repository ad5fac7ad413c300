"""Recount reports of ``accelerator_compile.py`` from the compiled HLO they kept, by today's rules.

    python benchmarks/recount_compile.py DIR [DIR ...]

Each ``DIR`` holds ``report.json`` and ``compiled.hlo.txt`` or its ``.gz`` (and, for a GPU, ``dump/``,
without which a GPU report is refused: its kernel launches and atomics come from there).  The
per-micro-step figures and details are counted again with ``benchmarks/hlo_counts.py`` as it is
now, written back into ``report.json``; ``recounted`` lists each recount that changed a figure
(the commit of the rules and the figures they replaced); the compile itself, its settings and its commit are kept.  A TPU compile
takes minutes; a rule's fix should not need one.
"""

from __future__ import annotations

import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import accelerator_compile as ac  # noqa: E402


def hlo_path(d: str) -> str | None:
    for name in ("compiled.hlo.txt", "compiled.hlo.txt.gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return None


def read_hlo(d: str) -> str:
    p = hlo_path(d)
    with (gzip.open(p, "rt") if p.endswith(".gz") else open(p)) as f:
        return f.read()


def recount(d: str) -> dict:
    path = os.path.join(d, "report.json")
    with open(path) as f:
        rep = json.load(f)
    hlo = read_hlo(d)
    shapes = rep["table_shapes"]
    v = rep["corpus"]["vocab_size"]
    rows = {v, v - 1} if rep["settings"]["loss"] == "hs" else {v}
    info = {"table_shapes": shapes, "raw_words_per_micro_step": rep["per_micro_step"]["raw_words_per_micro_step"],
            "vector_shapes": sorted({s[0] for s in shapes.values()} | rows)}
    dump = os.path.join(d, "dump")
    counts = ac.count(hlo, info, rep["settings"]["steps_per_call"], dump if os.path.isdir(dump) else None,
                      rep["platform"])
    old = rep["per_micro_step"]
    changed = {k: old.get(k) for k, val in counts["per_micro_step"].items() if old.get(k) != val}
    if changed:  # each recount that changed a figure: the rules' commit and the figures replaced
        rep["recounted"] = rep.get("recounted", []) + [{"rules_commit": ac.git_commit(), "replaced": changed}]
    rep.update(counts)
    with open(path + ".tmp", "w") as f:
        json.dump(rep, f, indent=1)
    os.replace(path + ".tmp", path)
    return changed


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    for d in argv:
        if not hlo_path(d) or not os.path.exists(os.path.join(d, "report.json")):
            print(f"recount_compile: {d} has no report.json and compiled.hlo.txt(.gz)", file=sys.stderr)
            return 2
        with open(os.path.join(d, "report.json")) as f:
            platform = json.load(f).get("platform")
        if platform == "cuda" and not os.path.isdir(os.path.join(d, "dump")):
            # a GPU's kernel launches, CAS loops and atomics come from the dump's thunks and PTX:
            # recounted from the HLO alone they would be replaced by lesser figures
            print(f"recount_compile: {d} is a GPU report without its dump/ (needed for its kernels and "
                  "atomics); compile it again instead", file=sys.stderr)
            return 2
    for d in argv:
        changed = recount(d)
        new = json.load(open(os.path.join(d, "report.json")))["per_micro_step"]
        print(d, {k: (v, new[k]) for k, v in changed.items() if k != "sorts"} or "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
