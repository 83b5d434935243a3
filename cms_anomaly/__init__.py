"""cms-anomaly: columnar anomaly detection on CMS (Open Data) NanoAOD, on the Scikit-HEP stack.

The public Python API, for notebooks and scripts (the ``cms-anomaly`` command runs whole jobs)::

    from cms_anomaly import AnomalyProcessor, load_fileset, make_executor, run_processor

    fileset = load_fileset("out/sm/fileset.json")
    with make_executor("dask") as executor:  # or scheduler="tcp://..." / "gateway+https://..." (a dask-gateway)
        output = run_processor(fileset, AnomalyProcessor(selection="single_lepton"), executor=executor)
    output["ttbar"]["hists"]["ht"].plot1d()

The packages, in the order of the data flow (none imports one listed below it; the exact rule is the
``ALLOWED`` table of ``tests/test_layout.py``):

``cms_anomaly.core``        shared helpers of every layer
``cms_anomaly.stats``       pure statistics on numpy arrays and hist objects (imports no project package)
``cms_anomaly.datasets``    event production (Pythia 8 + detector response -> NanoAOD), filesets
``cms_anomaly.processors``  objects, features, RMM, selections, the coffea processor, the runner
``cms_anomaly.models``      AE, VAE, ALAD, double AE, XGBoost; TorchScript export; ml_tools scorers
``cms_anomaly.analyses``    the analysis jobs (``Config`` + ``run_*``), plots, reports, their commands
``cms_anomaly.benchmarks``  the speed and physics benchmarks (``cms-anomaly bench ...``)
``cms_anomaly.cli``         the ``cms-anomaly`` console command, which registers the commands of them all

Names are imported on first use, so ``import cms_anomaly`` stays light (no torch, no dask).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # processors: what runs on a worker
    "AnalysisConfig": "cms_anomaly.processors.config",
    "load_config": "cms_anomaly.processors.config",
    "AnomalyProcessor": "cms_anomaly.processors.processor",
    "build_objects": "cms_anomaly.processors.objects",
    "compute_features": "cms_anomaly.processors.features",
    "load_fileset": "cms_anomaly.processors.runner",
    "make_executor": "cms_anomaly.processors.runner",
    "run_processor": "cms_anomaly.processors.runner",
    "run_graph": "cms_anomaly.processors.runner",
    "save_outputs": "cms_anomaly.processors.runner",
    # models: scorers for the processor (coffea.ml_tools wrappers of exported files)
    "load_scorer": "cms_anomaly.models.scorers",
    "TorchScorer": "cms_anomaly.models.scorers",
    "XGBoostScorer": "cms_anomaly.models.scorers",
    "KFoldScorer": "cms_anomaly.models.scorers",
    # datasets: generation
    "produce": "cms_anomaly.datasets.production",
    # analyses: each job as Config + run
    "RediscoveryConfig": "cms_anomaly.analyses.rediscovery",
    "run_rediscovery": "cms_anomaly.analyses.rediscovery",
    "TriggerConfig": "cms_anomaly.analyses.trigger",
    "run_trigger": "cms_anomaly.analyses.trigger",
    "DiscoConfig": "cms_anomaly.analyses.disco",
    "run_disco": "cms_anomaly.analyses.disco",
    "OutlierConfig": "cms_anomaly.analyses.outlier",
    "run_outlier": "cms_anomaly.analyses.outlier",
    "DijetConfig": "cms_anomaly.analyses.dijet",
    "run_dijet": "cms_anomaly.analyses.dijet",
    "HuntConfig": "cms_anomaly.analyses.hunt",
    "HuntResult": "cms_anomaly.analyses.hunt",
    "run_hunt": "cms_anomaly.analyses.hunt",
}

__all__ = list(_EXPORTS)  # the lazily imported names above


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cms_anomaly' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
