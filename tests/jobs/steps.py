"""Job steps for the scheduler tests, at module level so spawned workers import them."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from core.runtime import Runtime
from jobs.scheduler import JobSpec, run_forever


def seven_items(runtime: Runtime) -> int:
    return 7


def hang(runtime: Runtime) -> int:
    threading.Event().wait()
    return 0


def fail(runtime: Runtime) -> int:
    raise ValueError("broken step")


def slow_with_marker(runtime: Runtime) -> int:
    """Create the marker file, then keep working for a moment."""
    Path(os.environ["IMAGINGOPS_TEST_MARKER"]).touch()
    time.sleep(2)
    return 3


def main(url: str) -> int:
    """Run the scheduler with the slow step until SIGTERM (the SIGTERM test)."""
    from core.config import load_settings
    from core.db import make_engine, make_sessionmaker
    from core.runtime import configure_logging

    configure_logging("INFO")
    engine = make_engine(url)
    runtime = Runtime(load_settings(), url, engine, make_sessionmaker(engine))
    run_forever(runtime, [JobSpec("slow", slow_with_marker, 3600, 60)])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
