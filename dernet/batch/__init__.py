"""Archive-scale screening on Ray Data (the 'scale' extra): the gate's core in an actor pool, one Parquet row per
input, resumable, from a laptop to a cluster. `python -m dernet.batch INPUT... --out DIR`."""
