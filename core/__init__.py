"""What every layer shares and that belongs to none: atomic outputs, four-vector conversions, worker
processes, the local Dask cluster, argparse types. Imports no other project package."""
