"""What runs on a worker: columnar objects, features, selections, histograms, the coffea processor, and the
runner that executes it over a fileset."""
