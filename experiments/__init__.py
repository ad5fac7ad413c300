"""Reproducible ablation studies: one Python config file per study, one runner.

    python -m experiments.run STUDY [--variants a,b|'glob*'] [--corpus PATH] [--workdir DIR]

Each study module (``objectives``, ``knobs``, ``seeds``, ``reference``) holds a header with
the exact command, the expected runtime and the result it last produced, and a
``variants()`` function returning named variants, one of them ``smoke`` (seconds on CPU,
used by the tests).  :mod:`experiments.running` trains a variant (work dirs, resuming),
:mod:`experiments.report` writes the tables and statistics, :mod:`experiments.plots` the PNGs,
:mod:`experiments.gensim_ref` is the gensim runner shared with ``benchmarks/quality.py``; see
README.md here for each study's command, runtime and answers.
"""

STUDIES = ("objectives", "knobs", "seeds", "reference", "simlex")
