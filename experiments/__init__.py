"""Reproducible ablation studies: one Python config file per study, one runner.

    python -m experiments.run STUDY [--variants a,b|'glob*'] [--corpus PATH] [--workdir DIR]

Each study module (``objectives``, ``knobs``, ``seeds``, ``reference``) holds a header with
the exact command, the expected runtime and the result it last produced, and a
``variants()`` function returning named variants, one of them ``smoke`` (seconds on CPU,
used by the tests).  See :mod:`experiments.runner` for the work dir and report layout.
"""

STUDIES = ("objectives", "knobs", "seeds", "reference")
