"""``python -m experiments.run STUDY``: run a study's variants and write its tables and plots.

    python -m experiments.run objectives                        # every variant but smoke
    python -m experiments.run knobs --variants 'dim-*,window-5'  # names or globs
    python -m experiments.run seeds --variants smoke --corpus tiny.txt --workdir /tmp/w --results /tmp/r
    python -m experiments.run objectives --report-only           # rebuild tables/plots from finished runs
    python -m experiments.run objectives --list                  # the variants and their status

Finished variants (``summary.json`` in their work dir) are not trained again; an interrupted
one resumes from its checkpoint.  Training: :mod:`experiments.running`; tables and statistics:
:mod:`experiments.report`; plots: :mod:`experiments.plots`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Callable, Optional

from . import STUDIES
from .report import collect, noise_line, report, seed_stats
from .running import DEFAULT_RESULTS, DEFAULT_WORKDIR, Variant, is_smoke, load_study, resolve_corpus, run_variant, select


def _seed_noise(workroot: str, corpus: Optional[str]) -> str:
    """The seeds study's spread, for another study's report (a courtesy: never fails a report)."""
    try:
        seeds = load_study("seeds")
        rows = [collect(n, v, resolve_corpus(corpus, v, seeds), workroot)
                for n, v in seeds.variants().items() if not is_smoke(n)]
        return noise_line(seed_stats(rows))
    except (Exception, SystemExit):
        return ""


def run_study(study: str, variants: Optional[str] = None, corpus: Optional[str] = None,
              workdir: Optional[str] = None, results: Optional[str] = None, log: Callable = print,
              report_only: bool = False) -> dict:
    """Run the selected variants of ``study`` (all but smoke by default), resuming finished ones,
    then write the report over every variant.  Returns ``{"rows", "files", "statuses"}``."""
    module = load_study(study)
    allv: dict[str, Variant] = module.variants()
    names = select(allv, variants)
    workroot = os.path.abspath(workdir or DEFAULT_WORKDIR)
    outdir = os.path.join(results or DEFAULT_RESULTS, study)
    os.makedirs(workroot, exist_ok=True)
    corpus_of = {n: resolve_corpus(corpus, v, module) for n, v in allv.items()}

    statuses = {}
    for n in names if not report_only else ():
        if allv[n].skip:
            statuses[n] = "skipped"
            continue
        try:
            statuses[n], _ = run_variant(n, allv[n], corpus_of[n], workroot, log=log)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one failed variant does not stop the study
            statuses[n] = f"failed: {type(e).__name__}: {e}"
            log(f"{n}: FAILED\n{traceback.format_exc()}")
    shown = [n for n in allv if not is_smoke(n) or n in names]
    rows = [collect(n, allv[n], corpus_of[n], workroot) for n in shown]
    for r in rows:
        if str(statuses.get(r["variant"], "")).startswith("failed"):
            r["status"] = statuses[r["variant"]]
    label = ", ".join(sorted({f"`{os.path.basename(corpus_of[n])}`" for n in shown}))
    noise = "" if getattr(module, "SEEDS", False) else _seed_noise(workroot, corpus)
    files = report(study, module, rows, workroot, outdir, label, noise)
    return {"rows": rows, "files": files, "statuses": statuses}


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
        mod = load_study(a.study)
        for n, v in mod.variants().items():
            r = collect(n, v, resolve_corpus(a.corpus, v, mod), os.path.abspath(a.workdir or DEFAULT_WORKDIR))
            print(f"{n:28s} {v.tool:14s} {r['status']:10s} {v.settings}")
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
