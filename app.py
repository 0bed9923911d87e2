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
    # Migrate once before the workers start, so they do not race.
    open_runtime("web-migrate")
    command = [sys.executable, "-m", "gunicorn", "--bind", bind]
    command += ["--workers", str(args.workers), "--access-logfile", "-", "app:server"]
    log.info("Serving the dashboard with gunicorn at %s", bind)
    return subprocess.call(command)


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
    sub.add_parser("serve", help="run web, jobs and DICOM receiver").set_defaults(
        func=cmd_serve
    )

    add_web_commands(sub)

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
