"""Columnar objects, features, selections, the coffea processor, statistics and the CLI."""
