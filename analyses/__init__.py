"""The analysis jobs, their plots and reports, and their commands.

Each job is a ``Config`` dataclass and a ``run_*`` function writing ``OUT/report/`` (summary.md,
summary.json, index.html and PNGs): ``rediscovery`` (the main job, Knapp et al.), ``trigger``
(Cerri et al.), ``disco`` (Mikuni et al.), ``outlier`` (Chekanov et al.), ``dijet`` (LHC Olympics),
``hunt`` (a search without a signal hypothesis; its selections in ``hunt_selections``, its report in
``hunt_report``), ``evaluate`` (every model against every benchmark). ``analysis`` holds the steps they
share, ``samples`` the muon + jets samples of ``rediscovery`` and ``hunt``, ``cocktail`` the single-lepton
production, ``plotting`` the mplhep figures (drawn in ``plot_curves``, ``plot_hists`` and ``plot_fits`` in
the style of ``plot_style``), ``run`` the ``cms-anomaly run`` command. The console entry point is
:mod:`cms_anomaly.cli`.
"""
