"""The ``charter`` console script (``flows.cli:main``), split by command group:

``data`` (ingest, import-labels, sql, audit), ``constitution``, ``models``, ``stages``
(generate, critique, label), ``preferences`` (merge, export), ``training`` (train, eval),
``checkpoints`` (score, lineage), ``pipeline`` (run, schedule); ``options`` turns settings models into
options and ``common`` holds what the groups share.
"""

from flows.cli.entry import app, main

__all__ = ["app", "main"]
