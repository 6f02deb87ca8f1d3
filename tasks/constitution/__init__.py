"""Constitution files.

The principle model, machine-checkable rules, diffs between versions and importers from
other formats.
"""
