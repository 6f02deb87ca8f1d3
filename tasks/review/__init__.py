"""The feedback bench: queues of the pairs people should see next, the browser app they label
them in, and the bench's own state (annotators, sessions, leases, submitted labels).

:mod:`.queues` loads and runs the SQL queues, :mod:`.items` turns queued pair ids into what a
page shows, :mod:`.display` decides the order the two responses are shown in, :mod:`.state`
keeps the bench's SQLite database and publishes its labels to the store, :mod:`.app` is the
FastAPI app. Everything but :mod:`.app` imports without FastAPI.
"""
