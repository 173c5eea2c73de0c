"""The scheduler process (APScheduler) and one module per job family.

Runs as its own process, never inside web workers; see the SLA and jobs issue.
"""
