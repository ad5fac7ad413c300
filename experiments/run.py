"""``python -m experiments.run STUDY``: run a study's variants and write its tables and plots.

    python -m experiments.run objectives                        # every variant but smoke
    python -m experiments.run knobs --variants 'dim-*,window-5'  # names or globs
    python -m experiments.run seeds --variants smoke --corpus tiny.txt --workdir /tmp/w --results /tmp/r
    python -m experiments.run objectives --report-only           # rebuild tables/plots from finished runs
    python -m experiments.run objectives --list                  # the variants and their status

Finished variants (``summary.json`` in their work dir) are not trained again; an interrupted
one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from . import STUDIES
from .runner import DEFAULT_RESULTS, DEFAULT_WORKDIR, run_study


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", choices=STUDIES)
    p.add_argument("--variants", default=None, help="comma-separated names or globs (default: all but smoke)")
    p.add_argument("--corpus", default=None, help="corpus for every variant (default: the study's)")
    p.add_argument("--workdir", default=None, help=f"root of the runs' work dirs (default {DEFAULT_WORKDIR})")
    p.add_argument("--results", default=None, help=f"reports go to RESULTS/STUDY (default {DEFAULT_RESULTS})")
    p.add_argument("--report-only", action="store_true", help="train nothing; rebuild the report")
    p.add_argument("--list", action="store_true", help="list the variants and their status, train nothing")
    a = p.parse_args(argv)
    if a.list:
        import os
        from .runner import collect, load_study, resolve_corpus
        mod = load_study(a.study)
        for n, v in mod.variants().items():
            r = collect(n, v, resolve_corpus(a.corpus, v, mod), os.path.abspath(a.workdir or DEFAULT_WORKDIR))
            print(f"{n:28s} {v.tool:7s} {r['status']:10s} {v.settings}")
        return 0
    out = run_study(a.study, a.variants, a.corpus, a.workdir, a.results,
                    log=lambda *x: print(*x, flush=True), report_only=a.report_only)
    failed = [n for n, s in out["statuses"].items() if s.startswith("failed")]
    done = sum(r.get("status") == "done" for r in out["rows"])
    print(f"{a.study}: {done}/{len(out['rows'])} variants done; report {out['files']['md']}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
