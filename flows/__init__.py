"""charter's Prefect flows (orchestration only) and its command line."""
