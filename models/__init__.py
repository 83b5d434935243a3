"""Anomaly-detection models (PyTorch -> TorchScript) and XGBoost baselines.

Modules
-------
``registry``       one ``ModelSpec`` per model kind (builder, hyper-parameters, inputs, budget)
``feature_sets``   named inputs (HLF-21, HLF-24, RMM, ADC2021 objects) = feature-table columns
``data``           parquet feature tables -> float32 matrices, seeded train/validation split
``preprocessing``  fitted standardisation, one-hot coding, RMM zero-cell mask (torch buffers)
``ae``, ``vae``, ``alad``, ``double_ae``   the models of Chekanov, Cerri, Knapp, Mikuni et al.
``training``       mini-batch loop: early stopping, LR on plateau, resumable checkpoints
``export``         TorchScript + JSON model card, thresholds at SM FPR 5.4e-6 / 1e-5 / 1e-3
``bdt``            supervised XGBoost per signal, CWoLa k-fold classifier
``base``           the interface every model implements (training loop and export rely on it)
``pipeline``       train-and-export drivers used by ``cms-anomaly train`` (``cli``)
``scorers``        ``coffea.ml_tools`` scorers of the exported files, for the processor
``datasim``        a classifier of data against simulation
``nplm``           the New Physics Learning Machine goodness-of-fit test (D'Agnolo and Wulzer)
``errors``         the package's exception classes

Every exported model takes RAW features (float32, (N, n_inputs)) because its fitted
preprocessing is inside; :func:`cms_anomaly.models.scorers.load_scorer` wraps it
for the coffea processor.
"""
