"""The analysis jobs, their plots and reports, and the ``cms-anomaly`` command line.

Each job is a ``Config`` dataclass and a ``run_*`` function writing ``OUT/report/`` (summary.md,
summary.json, index.html and PNGs): ``rediscovery`` (the main job, Knapp et al.), ``trigger``
(Cerri et al.), ``disco`` (Mikuni et al.), ``outlier`` (Chekanov et al.), ``dijet`` (LHC Olympics),
``hunt`` (a search without a signal hypothesis; its selections in ``hunt_selections``, its report in
``hunt_report``), ``evaluate`` (every model against every benchmark). ``analysis`` holds the steps they
share, ``samples`` the muon + jets samples of ``rediscovery`` and ``hunt``, ``cocktail`` the single-lepton
production, ``plotting`` the mplhep figures, ``run`` the
``cms-anomaly run`` command and the processor benchmark, ``cli`` the console entry point.
"""
