"""Backtest the breach predictor on a synthetic history and write docs/triage.md.

    DATABASE_URL=postgresql://... python -m bench.backtest [--cases N] [--readers N]

Creates its own database, fills it with `bench.history`, runs
`core.backtest.run_backtest`, prints the figures and replaces the block between the
markers in docs/triage.md with them.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy.orm import Session

from bench.common import bench_database, machine_line
from bench.history import generate_history
from core.backtest import run_backtest
from core.config import PROJECT_ROOT

BEGIN = "<!-- backtest:begin -->"
END = "<!-- backtest:end -->"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def figures(cases: int, readers: int) -> str:
    with bench_database("backtest") as engine:
        with engine.begin() as conn:
            generate_history(conn, cases=cases, readers=readers)
        with Session(engine) as session, session.begin():
            started = time.perf_counter()
            result = run_backtest(session)
            seconds = time.perf_counter() - started
            assert result is not None
            lines = [
                f"Synthetic history: {cases} finished cases, {readers} readers "
                f"(`python -m bench.backtest --cases {cases} --readers {readers}`).",
                f"Replayed cases: {result.cases}; breaches among them: "
                f"{result.breaches}; backtest time {seconds:.2f} s on "
                f"{machine_line(engine)}.",
                "",
                "| threshold | flagged | true positives | precision | recall |",
                "|---|---|---|---|---|",
            ]
            for row in result.detail["thresholds"]:
                tp, flagged = row["true_positives"], row["predicted"]
                precision = tp / flagged if flagged else None
                recall = tp / row["breaches"] if row["breaches"] else None
                lines.append(
                    f"| {row['threshold']:.1f} | {flagged} | {tp} | "
                    f"{_percent(precision)} | {_percent(recall)} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--readers", type=int, default=40)
    args = parser.parse_args()
    text = figures(args.cases, args.readers)
    print(text)
    path = PROJECT_ROOT / "docs" / "triage.md"
    document = path.read_text()
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
