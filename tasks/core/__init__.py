"""Shared building blocks.

Errors that name file/line/field, content hashes, located YAML and JSONL readers, record
checks, conversations, calibration.
"""
