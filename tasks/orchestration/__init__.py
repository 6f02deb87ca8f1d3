"""Running flows.

The pipeline config, where batches run (local, Ray), Prefect's temporary server,
deployments and task options.
"""
