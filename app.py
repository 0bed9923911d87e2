"""ImagingOps command line and WSGI entry point.

    python app.py serve          web, jobs and DICOM receiver on one machine
    python app.py web            the Dash dashboard only
    python app.py jobs           the scheduler and the DICOM receiver
    python app.py --help         every command

For gunicorn, `app:server` builds the Flask server on first import.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from core.config import ConfigError, load_settings
from core.runtime import Runtime, configure_logging, open_runtime

log = logging.getLogger("imagingops")


def cmd_migrate(args: argparse.Namespace) -> int:
    open_runtime("migrate")
    log.info("Schema is at the newest revision")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from core import audit

    runtime = open_runtime("audit")
    with runtime.sessions() as session:
        checked, broken = audit.verify_chain(session)
    if broken is None:
        print(f"OK: audit chain intact ({checked} rows checked)")
        return 0
    print(f"FAILED: audit row {broken.row_id}: {broken.problem}", file=sys.stderr)
    return 1


def cmd_jobs(args: argparse.Namespace) -> int:
    """Run the scheduler and, unless --no-scp, the DICOM receiver in this process."""
    from jobs.scheduler import default_jobs, run_forever

    runtime = open_runtime("jobs")
    scp = None
    if not args.no_scp:
        from jobs.scp import start_scp

        scp = start_scp(runtime)
    specs = default_jobs(runtime.settings)
    run_forever(runtime, specs, on_stop=scp.shutdown if scp is not None else None)
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    """Backtest the breach predictor on every study's history and on all together."""
    from sqlalchemy import select

    from core.backtest import run_backtest
    from core.models import Study

    runtime = open_runtime("backtest")
    with runtime.sessions.begin() as session:
        study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
        for study_id in [None, *study_ids]:
            result = run_backtest(session, study_id=study_id, threshold=args.threshold)
            label = "all studies" if study_id is None else f"study {study_id}"
            if result is None:
                print(f"{label}: no finished cases to replay")
                continue
            print(
                f"{label}: {result.cases} cases, {result.breaches} breaches, "
                f"precision {result.precision}, recall {result.recall}"
            )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the web and jobs processes as children and stop both on SIGTERM/SIGINT."""
    # Migrate once here so the children do not race to create the schema.
    open_runtime("serve")
    children = [
        subprocess.Popen([sys.executable, __file__, "jobs"]),
        subprocess.Popen([sys.executable, __file__, "web"]),
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while not stopping:
        for child in children:
            code = child.poll()
            if code is not None:
                log.error("Child process %s exited with %s; stopping", child.args, code)
                stopping = True
                exit_code = code or 1
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    log.info("Stopped")
    return exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="ImagingOps")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(
        func=cmd_migrate
    )
    sub.add_parser("serve", help="run web, jobs and DICOM receiver").set_defaults(
        func=cmd_serve
    )

    jobs = sub.add_parser("jobs", help="run the scheduler and the DICOM receiver")
    jobs.add_argument(
        "--no-scp", action="store_true", help="do not start the DICOM receiver"
    )
    jobs.set_defaults(func=cmd_jobs)

    backtest = sub.add_parser(
        "triage-backtest", help="measure the breach predictor on finished cases"
    )
    backtest.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="breach probability at which a case counts as flagged (0 to 1)",
    )
    backtest.set_defaults(func=cmd_backtest)

    audit = sub.add_parser("audit", help="check or export the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain").set_defaults(
        func=cmd_audit
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


def __getattr__(name: str) -> object:
    """Build the WSGI `server` lazily so importing this module stays cheap."""
    if name == "server":
        from dashboard.app import create_app

        runtime: Runtime = open_runtime("web")
        return create_app(runtime).server
    raise AttributeError(name)


if __name__ == "__main__":
    sys.exit(main())
