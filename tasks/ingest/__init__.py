"""Bringing users' files into the store.

Prompt sets, human label exports, and the ingest stage's Prefect tasks.
"""
