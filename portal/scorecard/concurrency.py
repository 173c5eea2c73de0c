"""Running a page's independent figure queries side by side.

A scorecard is a dozen aggregate queries that do not depend on each other; one after
another they take the sum of their times, side by side about the longest one (each
waits on its own database connection, so the threads do run in parallel). Each task
gets its own app context, hence its own session and connection, and a copy of the
caller's context variables (a frozen clock in tests and the demo). Read-only work
only: nothing here commits.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from flask import current_app

T = TypeVar("T")

MAX_THREADS = min(8, (os.cpu_count() or 2) * 2)


def side_by_side(tasks: list[Callable[[], T]]) -> list[T]:
    """The tasks' results, in order; the first failure is raised here."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run(task: Callable[[], T]) -> T:
        with app.app_context():
            return task()

    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(tasks))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, run, task) for task in tasks]
        return [future.result() for future in futures]
