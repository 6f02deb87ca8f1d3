"""The two consoles every command prints to: results on stdout, messages and errors on stderr.

Apart from :mod:`flows.cli.common` so that the entry point can report an error without importing
what the commands share (the store's Arrow and DuckDB stack among it).
"""

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
