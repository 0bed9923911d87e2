"""Entry point for the two-process test: assign reads and sweep SLAs in a loop.

    python -m tests.jobs.contend DATABASE_URL START_FILE

Waits for START_FILE to exist so both processes begin together, then prints the
number of reads it assigned and the alerts it created as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from core import sla
from core.assignment import assign_open_reads
from core.db import make_engine, make_sessionmaker
from tests.factories import NOW


def main(url: str, start_file: str) -> int:
    engine = make_engine(url, application_name="imagingops-contend")
    sessions = make_sessionmaker(engine)
    while not Path(start_file).exists():
        time.sleep(0.01)
    assigned = alerts = 0
    idle_rounds = 0
    while idle_rounds < 3:
        with sessions.begin() as session:
            placed = len(assign_open_reads(session, NOW, limit=60))
        with sessions.begin() as session:
            alerts += sla.sweep(session, NOW)
        assigned += placed
        idle_rounds = idle_rounds + 1 if placed == 0 else 0
    print(json.dumps({"assigned": assigned, "alerts": alerts}))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
