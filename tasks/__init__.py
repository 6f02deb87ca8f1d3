"""charter's units of work: pure domain logic first, thin Prefect wrappers beside it.

Modules here import neither Prefect nor a GPU stack at import time unless their
name says so (``tasks.prefect_*``), so the logic stays usable from plain Python.
"""
