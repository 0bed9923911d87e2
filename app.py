"""ImagingOps command line and WSGI entry point.

    python app.py serve          web, jobs and DICOM receiver on one machine
    python app.py web            the Dash dashboard only
    python app.py jobs           the scheduler and the DICOM receiver
    python app.py --help         every command

For gunicorn, `app:server` builds the Flask server on first import.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
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


def cmd_audit_export(args: argparse.Namespace) -> int:
    from core import audit_export

    if args.format != "csv":
        print(
            f"FAILED: format {args.format!r} is not supported; use csv", file=sys.stderr
        )
        return 2
    runtime = open_runtime("audit")
    with runtime.sessions() as session:
        try:
            study_id = audit_export.study_id_for(session, args.study)
        except LookupError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        if args.output:
            with open(args.output, "w", newline="", encoding="utf-8") as out:
                count = audit_export.write_csv(session, study_id, out)
            print(f"Wrote {count} audit rows of {args.study} to {args.output}")
        else:
            audit_export.write_csv(session, study_id, sys.stdout)
    return 0


def cmd_charter_load(args: argparse.Namespace) -> int:
    from core import charter

    try:
        with open(args.file, encoding="utf-8") as source:
            source_text = source.read()
    except OSError as exc:
        print(f"FAILED: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    runtime = open_runtime("charter")
    try:
        with runtime.sessions.begin() as session:
            result = charter.load(
                session, args.study, source_text, actor=args.actor, reason=args.reason
            )
            affected = charter.describe_cases(session, result.affected_case_ids)
    except charter.CharterError as exc:
        print(f"FAILED: {args.file}: {exc}", file=sys.stderr)
        return 1
    print(f"Stored charter version {result.version} of study {args.study}")
    _print_affected_cases(affected)
    return 0


def _print_affected_cases(cases: list[dict[str, object]]) -> None:
    """Print the open cases that a charter change affects (also in the audit row)."""
    if not cases:
        print("No open cases are affected.")
        return
    noun = "case" if len(cases) == 1 else "cases"
    print(
        f"{len(cases)} open {noun} affected; each keeps the version it started under:"
    )
    for case in cases:
        if case["charter_version"] is None:
            kept = "no version recorded, so it follows the new version"
        else:
            kept = f"keeps version {case['charter_version']}"
        print(f"  case {case['id']} ({case['state']}): {kept}")


def cmd_jobs(args: argparse.Namespace) -> int:
    """Run the scheduler and, unless --no-scp, the DICOM receiver in this process."""
    import threading

    from jobs.scheduler import default_jobs, run_forever

    runtime = open_runtime("jobs")
    specs = default_jobs(runtime.settings)
    if args.no_scp:
        run_forever(runtime, specs)
        return 0

    from jobs.scp import ingest_received, start_scp

    wake = threading.Event()
    stop = threading.Event()
    receiver_ingest = threading.Thread(
        target=ingest_received, args=(runtime, wake, stop), name="scp-ingest"
    )
    receiver_ingest.start()
    try:
        server = start_scp(runtime, wake=wake)
    except OSError as exc:
        stop.set()
        wake.set()
        receiver_ingest.join()
        print(
            f"FAILED: the DICOM receiver cannot listen on "
            f"{runtime.settings.scp_host}:{runtime.settings.scp_port} ({exc}); "
            "set IMAGINGOPS_SCP_PORT or stop the other listener",
            file=sys.stderr,
        )
        return 2

    # The ingest thread is not a daemon, so it must be stopped even when the
    # scheduler fails to start, or the process would never exit.
    try:
        run_forever(runtime, specs)
    finally:
        server.shutdown()
        stop.set()
        wake.set()
        receiver_ingest.join()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest a folder once, with a progress bar; inputs stay unless --move."""
    from pathlib import Path

    from tqdm import tqdm

    from core.ingest import ingest_folder
    from core.ingest.pipeline import walk_files

    folder = Path(args.path)
    if not folder.is_dir():
        print(f"FAILED: {folder} is not a folder", file=sys.stderr)
        return 2
    runtime = open_runtime("ingest")
    total = sum(1 for _ in walk_files(folder))
    with tqdm(total=total, unit="file") as bar:
        report = ingest_folder(
            runtime, folder, progress=bar.update, remove_inputs=args.move
        )
    print(
        f"{report.ingested} ingested ({report.unmatched} unmatched), "
        f"{report.duplicates} duplicates, {report.conflicts} conflicts, "
        f"{report.quarantined} quarantined, {report.cases_created} cases created"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from core.status import collect_status

    status = collect_status(open_runtime("status"))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    for key, value in status.items():
        print(f"{key}: {value}")
    return 0


def cmd_scp(args: argparse.Namespace) -> int:
    from jobs.scp import run_scp

    return run_scp(open_runtime("scp"))


def cmd_backtest(args: argparse.Namespace) -> int:
    """Backtest the breach predictor on every study's history and on all together."""
    from core.backtest import run_all_backtests

    runtime = open_runtime("backtest")
    with runtime.sessions.begin() as session:
        for study_id, result in run_all_backtests(session, threshold=args.threshold):
            label = "all studies" if study_id is None else f"study {study_id}"
            if result is None:
                print(f"{label}: no finished cases to replay")
                continue
            print(
                f"{label}: {result.cases} cases, {result.breaches} breaches, "
                f"precision {result.precision}, recall {result.recall}"
            )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo portfolio (unless it exists) and print the demo users."""
    import json
    import time

    from core import demo

    runtime = open_runtime("demo")
    with runtime.sessions() as session:
        exists = demo.portfolio_exists(session)
        built = demo.portfolio_built(session)
    if exists and not built:
        print(
            "FAILED: an earlier demo build did not finish, so the database holds "
            "only part of the demo portfolio. Build it into an empty database: "
            "a new DATABASE_URL, or a new IMAGINGOPS_DATA_DIR for the embedded one",
            file=sys.stderr,
        )
        return 1
    if exists and not args.if_empty:
        print(
            "FAILED: the database already contains the demo portfolio", file=sys.stderr
        )
        return 1
    if not exists:
        # One log line per simulated workflow step would bury the demo users below.
        for name in ("core.lifecycle", "core.qc", "core.reads", "core.ingest"):
            logging.getLogger(name).setLevel(logging.WARNING)
        started = time.monotonic()
        summary = demo.build_portfolio(runtime)
        print(
            f"Demo portfolio built in {time.monotonic() - started:.0f} s: "
            f"{summary.studies} studies, {summary.sites} sites, "
            f"{summary.subjects} subjects, {summary.cases} cases, "
            f"{summary.ingested} instances ingested"
        )
    passwords = json.loads(demo.credentials_path(runtime).read_text())
    print("Demo users (username / password), also in", demo.credentials_path(runtime))
    for username, role, _ in demo.DEMO_USERS:
        print(f"  {role:<14} {username:<15} {passwords[username]}")
    print(
        f"  {'reader':<14} {'reader01':<15} {passwords['reader01']}  (and reader02..)"
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


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the dashboard with gunicorn when installed, else Dash's own server."""
    settings = load_settings()
    bind = f"{settings.web_host}:{settings.web_port}"
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        from dashboard.app import create_app

        log.info("gunicorn is not installed; serving with the Dash server at %s", bind)
        app = create_app(open_runtime("web"))
        app.run(host=settings.web_host, port=settings.web_port, debug=False)
        return 0
    # Migrate once before the workers start, so they do not race. A child process
    # does it because this one becomes gunicorn below and never runs its exit
    # handlers, which is where an embedded database server is released.
    subprocess.run([sys.executable, __file__, "migrate"], check=True)
    command = [sys.executable, "-m", "gunicorn", "--bind", bind]
    command += ["--workers", str(args.workers), "--access-logfile", "-", "app:server"]
    log.info("Serving the dashboard with gunicorn at %s", bind)
    # Become gunicorn, so a SIGTERM to this process reaches its master directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)


def _probability(text: str) -> float:
    """Parse a probability from 0 to 1 for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    # Written so that NaN, for which every comparison is false, is rejected too.
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def _read_password(path: str | None) -> str:
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise ValueError("the two passwords differ")
    return first


def cmd_users_create(args: argparse.Namespace) -> int:
    from core import accounts

    try:
        password = _read_password(args.password_file)
    except (OSError, ValueError) as exc:
        print(f"FAILED: cannot read the password: {exc}", file=sys.stderr)
        return 1
    runtime = open_runtime("users")
    try:
        with runtime.sessions.begin() as session:
            study_ids = accounts.study_ids_for_protocols(session, args.study or [])
            accounts.create_user(
                session,
                args.username,
                password,
                args.role,
                display_name=args.display_name,
                timezone=args.timezone,
                study_ids=study_ids,
                actor="cli",
            )
    except accounts.AccountError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"Created user {args.username} with role {args.role}")
    return 0


def add_web_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    web = sub.add_parser("web", help="serve the dashboard (never runs the scheduler)")
    web.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    web.set_defaults(func=cmd_web)

    users = sub.add_parser("users", help="manage dashboard users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a user")
    create.add_argument("username")
    create.add_argument(
        "--role",
        required=True,
        help="admin, leadership, study_manager, qc_reviewer, reader or sponsor",
    )
    create.add_argument(
        "--study",
        action="append",
        metavar="PROTOCOL",
        help="grant a study by protocol id; repeat for more",
    )
    create.add_argument(
        "--password-file",
        help="read the password from this file "
        "(first line); without it the password is prompted for",
    )
    create.add_argument("--display-name", default="")
    create.add_argument("--timezone", default="UTC", help="IANA time zone name")
    create.set_defaults(func=cmd_users_create)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="ImagingOps")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(
        func=cmd_migrate
    )
    demo = sub.add_parser("demo", help="build the demo portfolio and print its users")
    demo.add_argument(
        "--if-empty",
        action="store_true",
        help="only print the demo users when the portfolio already exists",
    )
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("serve", help="run web, jobs and DICOM receiver").set_defaults(
        func=cmd_serve
    )

    jobs = sub.add_parser("jobs", help="run the scheduler and the DICOM receiver")
    jobs.add_argument(
        "--no-scp", action="store_true", help="do not start the DICOM receiver"
    )
    jobs.set_defaults(func=cmd_jobs)

    ingest = sub.add_parser("ingest", help="ingest a folder of DICOM files once")
    ingest.add_argument("path", help="folder to ingest, recursively")
    ingest.add_argument(
        "--move", action="store_true", help="remove each input once its row is saved"
    )
    ingest.set_defaults(func=cmd_ingest)
    status = sub.add_parser("status", help="print counts, job runs and folders")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    sub.add_parser("scp", help="run the DICOM C-STORE receiver alone").set_defaults(
        func=cmd_scp
    )
    add_web_commands(sub)
    backtest = sub.add_parser(
        "triage-backtest", help="measure the breach predictor on finished cases"
    )
    backtest.add_argument(
        "--threshold",
        type=_probability,
        default=0.5,
        help="breach probability at which a case counts as flagged (0 to 1)",
    )
    backtest.set_defaults(func=cmd_backtest)

    audit = sub.add_parser("audit", help="check or export the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain").set_defaults(
        func=cmd_audit
    )
    export = audit_sub.add_parser("export", help="write a study's audit trail")
    export.add_argument("--study", required=True, help="protocol id, e.g. ONC-301")
    export.add_argument("--format", default="csv", help="output format (csv)")
    export.add_argument("--output", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_audit_export)

    charter = sub.add_parser("charter", help="manage study charters")
    charter_sub = charter.add_subparsers(dest="charter_command", required=True)
    load = charter_sub.add_parser("load", help="store a new charter version")
    load.add_argument("file", help="charter YAML file")
    load.add_argument("--study", required=True, help="protocol id, e.g. ONC-301")
    load.add_argument("--reason", help="why the charter changes (required after v1)")
    load.add_argument(
        "--actor", default=f"cli:{getpass.getuser()}", help="name for the audit trail"
    )
    load.set_defaults(func=cmd_charter_load)
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
