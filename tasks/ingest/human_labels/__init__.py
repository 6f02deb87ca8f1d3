"""Human pairwise preference labels: one module per annotation tool's format, plus the import itself.

:mod:`.importer` parses a file in any format and writes it to the store; :mod:`.label_rows`
builds the row every format produces (and says what a label's id hashes); :mod:`.sources`
holds what several readers share (``datasets`` folders, conversations); :mod:`.charter_jsonl`,
:mod:`.hh_rlhf`, :mod:`.label_studio`, :mod:`.argilla`, :mod:`.csv_labels` and
:mod:`.trl_preferences` each read one format.
"""

from tasks.ingest.human_labels.importer import (
    FORMATS,
    ImportResult,
    ParsedLabels,
    import_labels,
    parse_label_file,
)
from tasks.ingest.human_labels.label_rows import LabelOrigin, human_label_row

__all__ = [
    "FORMATS",
    "ImportResult",
    "LabelOrigin",
    "ParsedLabels",
    "human_label_row",
    "import_labels",
    "parse_label_file",
]
