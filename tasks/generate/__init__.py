"""The generate stage: which prompts, in which batches, the rows they produce, and its Prefect tasks."""
