"""Backups: one archive holding the database and a manifest, and a restore that checks it.

`operations.py` takes and restores backups (the `flask backup` commands and the nightly
job call it), `archive.py` reads and writes the archive format, `sqlite.py` and
`postgresql.py` copy each database consistently while the portal runs,
`retention.py` decides which archives to keep and `tasks.py` is the nightly job.
"""
