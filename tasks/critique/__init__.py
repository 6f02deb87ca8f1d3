"""The critique -> revision stage (SL-CAI data): chains of rounds, their plan, and its Prefect tasks."""
