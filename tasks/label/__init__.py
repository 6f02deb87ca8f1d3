"""The label stage: comparison pairs, the AI judge, soft-label arithmetic, the plan, and its Prefect tasks."""
