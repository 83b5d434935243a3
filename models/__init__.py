"""Anomaly-detection models (PyTorch -> TorchScript) and XGBoost baselines."""
