"""The ``datadesk`` command: one entry point for operators, product teams and CI.

Each sub-command names the function that carries it out as ``module:function``;
the module is imported only when that command runs, so ``datadesk dialogs
check`` does not load the database drivers. A command function takes the
parsed arguments and the settings of its side and returns the exit status:
backend commands get the backend's ``Settings``, bot commands the bot's
``BotSettings`` (so a bot command never reads the backend's secrets), and the
commands that run both get a ``Deployment`` holding each. Commands that
belong to one side live on that side (``backend/crm/cli.py``,
``bot/dialogs/cli.py``); this package only assembles them, and alone runs
both sides together (``datadesk run``, ``datadesk db upgrade``).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from backend.settings import Settings
from bot.settings import BotSettings
from common.settings import SettingsError
from common.vocabulary.locales import SHIPPED_LOCALES
from datadesk.deployment import Deployment

AddArgs = Callable[[argparse.ArgumentParser], None]

# Whose settings a command is handed (see the module docstring).
BACKEND, BOT, BOTH = "backend", "bot", "both"
LOADERS: dict[str, Callable[[], Any]] = {
    BACKEND: Settings.from_env,
    BOT: BotSettings.from_env,
    BOTH: Deployment.from_env,
}


def _none(_: argparse.ArgumentParser) -> None:
    return None


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chat",
        action="store_true",
        help="without a Telegram token, open the dialogs in this terminal",
    )
    p.add_argument("--concurrency", type=int, default=1, help="requests the worker runs at once")
    p.add_argument("--lang", default=None, help="with --chat: locale to start in")
    p.add_argument(
        "--as", dest="as_ref", default=None, help="with --chat: talk as this demo customer (C-1101)"
    )


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=int, default=1, help="requests run at once")
    p.add_argument("--once", action="store_true", help="drain the queue, then exit")


def _chat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lang", default=None, help=f"locale to start in ({', '.join(SHIPPED_LOCALES)})"
    )
    p.add_argument(
        "--as",
        dest="as_ref",
        default=None,
        help="talk as this demo customer, e.g. C-1101: a chat of its own; 'share' shares its number",
    )


def _file_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="CRM JSON file (see README)")


def _ref_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", help="customer reference, e.g. C-1001")


def _dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=None, help="dialogs folder (default: dialogs/)")


def _revision_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--message", required=True, help="what the migration does")
    p.add_argument("--bot", action="store_true", help="the bot database (default: the backend's)")
    p.add_argument(
        "--autogenerate",
        action="store_true",
        help="fill it from the models' differences with the database (run `db upgrade` first)",
    )


def _rotate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=500, help="rows re-encrypted per transaction")
    p.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds to wait between batches (spare the database)",
    )


def _agent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="login name")
    p.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    p.add_argument(
        "--must-change",
        action="store_true",
        help="the agent must choose a new password at their first login",
    )


def _agent_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="login name")


def _agent_role(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="login name")
    p.add_argument("--role", choices=("agent", "supervisor"), required=True)


# (words, help, add-arguments, "module:function", whose settings)
COMMANDS: tuple[tuple[tuple[str, ...], str, AddArgs, str, str], ...] = (
    (("run",), "backend, worker, bot and console in one process", _run_args, "datadesk.run:run_all", BOTH),
    (("backend",), "the backend HTTP API and agent console", _none, "backend.runner:run_backend", BACKEND),
    (("worker",), "a worker that carries out queued requests", _worker_args, "backend.runner:run_worker", BACKEND),
    (("bot",), "the Telegram channel", _none, "bot.runner:run_bot", BOT),
    (("chat",), "talk to the dialogs in this terminal", _chat_args, "datadesk.demo_chat:chat_command", BOT),
    (("db", "upgrade"), "migrate the backend and bot databases", _none, "datadesk.migrate:upgrade_command", BOTH),
    (("db", "revision"), "write a new migration file (developers)", _revision_args, "datadesk.migrate:revision_command", BOTH),
    (("crm", "import"), "import customers from a JSON file (all or nothing)", _file_arg, "backend.crm.cli:import_command", BACKEND),
    (("crm", "export"), "print one customer's record as JSON", _ref_arg, "backend.crm.cli:export_command", BACKEND),
    (("crm", "seed-demo"), "load the demo customers", _none, "backend.crm.cli:seed_demo_command", BACKEND),
    (("dialogs", "check"), "validate dialog files", _dir_arg, "bot.dialogs.cli:check_command", BOT),
    (("dialogs", "test"), "run the scripted dialog tests", _dir_arg, "bot.dialogs.cli:test_command", BOT),
    (("dialogs", "reload"), "tell running bots to reload dialog files", _none, "bot.dialogs.cli:reload_command", BOT),
    (("locales", "check"), "check every catalog is complete and consistent", _none, "bot.i18n.check:check_command", BOT),
    (("agents", "add"), "add a console user; password on stdin", _agent_args, "backend.console.cli:add_agent_command", BACKEND),
    (("agents", "list"), "list console users: role, state, last login", _none, "backend.console.cli:list_command", BACKEND),
    (("agents", "disable"), "stop a console user logging in; end their sessions", _agent_name, "backend.console.cli:disable_command", BACKEND),
    (("agents", "enable"), "let a disabled console user log in again", _agent_name, "backend.console.cli:enable_command", BACKEND),
    (("agents", "remove"), "remove a console user (the audit trail keeps their id)", _agent_name, "backend.console.cli:remove_command", BACKEND),
    (("agents", "reset-password"), "temporary password on stdin, to change at next login", _agent_name, "backend.console.cli:reset_password_command", BACKEND),
    (("agents", "role"), "make a console user an agent or a supervisor", _agent_role, "backend.console.cli:role_command", BACKEND),
    (("audit", "verify"), "verify the audit log: keys, keyed chain, signed checkpoints", _none, "backend.audit.verifier:verify_command", BACKEND),
    (("keys", "status"), "how many encrypted values are on which key", _none, "backend.keys:status_command", BACKEND),
    (("keys", "rotate"), "re-encrypt every value onto the primary key, in batches", _rotate_args, "backend.key_rotation:rotate_command", BACKEND),
    (("purge",), "erase held data whose hold has ended", _none, "backend.retention:purge_command", BACKEND),
)  # fmt: skip


# What each group of commands is for, as `datadesk --help` lists it.
GROUPS: dict[str, str] = {
    "db": "the databases: migrate them, write a new migration",
    "crm": "the built-in CRM: import, export, demo customers",
    "dialogs": "dialog files: check, test, reload in running bots",
    "locales": "translation catalogs: check them",
    "agents": "agent console users",
    "audit": "the audit log: verify it",
    "keys": "encryption keys: status and rotation",
}

DESCRIPTION = (
    "datadesk: a bank's customer data-rights assistant. One command for every process and tool."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datadesk", description=DESCRIPTION)
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for words, help_text, add_args, target, side in COMMANDS:
        subparsers = top
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group = subparsers.add_parser(word, help=GROUPS[key], description=GROUPS[key])
                groups[key] = group.add_subparsers(dest=f"sub{depth}", required=True, metavar="SUB")
            subparsers = groups[key]
        command = subparsers.add_parser(words[-1], help=help_text, description=help_text)
        add_args(command)
        command.set_defaults(target=target, side=side)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, load the command's side's settings, run it; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = LOADERS[args.side]()
    except SettingsError as exc:
        print(f"datadesk: {exc}", file=sys.stderr)
        return 2
    module_name, _, function_name = args.target.partition(":")
    command: Callable[[argparse.Namespace, Any], int] = getattr(
        importlib.import_module(module_name), function_name
    )
    try:
        status = command(args, settings)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
        return status
    except SettingsError as exc:
        # Found only once the command runs: keys that do not fit the database.
        print(f"datadesk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`datadesk crm export C-1 | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"datadesk: {_address_in_use(exc)}", file=sys.stderr)
        return 2


def _address_in_use(exc: OSError) -> str:
    """One line for a port another process holds, naming the settings that move it."""
    return (
        f"cannot listen: {exc.strerror or exc}; another process holds the port. "
        "Stop it, or choose another port with "
        "DATADESK_HTTP_PORT (backend and console) or DATADESK_WEBHOOK_PORT (the bot's webhook)."
    )


if __name__ == "__main__":
    sys.exit(main())
