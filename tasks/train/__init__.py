"""Training: reward model, DPO, PPO, checkpoint lineage, and the training Prefect tasks."""
