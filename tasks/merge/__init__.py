"""The merge stage: the merge policy, preference sets in the store, and its Prefect task."""
