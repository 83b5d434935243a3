"""The speed and physics benchmarks in one place (``cms-anomaly bench ...``, ``make bench``); results
of recorded runs are in ``benchmarks/results/``. May import every other package."""
