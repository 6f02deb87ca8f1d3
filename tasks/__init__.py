"""charter's units of work: one sub-package per pipeline stage (see the README's Development section).

Each stage package holds its pure logic, its settings model and its thin Prefect task
wrappers (``prefect_tasks.py``). Only the ``prefect_tasks`` modules import Prefect at
import time (``tasks.orchestration`` imports it inside the functions that need it), and only
the modules that train, score or run a model import torch, so the logic stays usable from
plain Python without either.
"""
