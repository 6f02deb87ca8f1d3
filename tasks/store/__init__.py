"""The store.

Immutable Parquet tables, their schemas, run lineage, read-only SQL, the audit views and
the exports in TRL's formats.
"""
