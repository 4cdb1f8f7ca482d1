"""The management commands: a user's mistake is a ``CommandError`` (one line and exit status 1,
no traceback), and ``--help`` shows the default of every option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import BaseCommand, CommandError, call_command, load_command_class
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["purge_idempotency_keys", "recover_jobs"]


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unknown_database_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"Unknown database 'nope'.*'default'"):
        call_command("purge_idempotency_keys", "--database", "nope")


def test_an_unknown_database_alias_setting_is_a_command_error_naming_the_setting() -> None:
    with (
        override_settings(IDEMPOTENCY_JOBS={"DATABASE_ALIAS": "nope"}),
        pytest.raises(CommandError, match=r"IDEMPOTENCY_JOBS\['DATABASE_ALIAS'\]"),
    ):
        call_command("purge_idempotency_keys", "--dry-run")


def test_an_unknown_database_exits_with_status_1_and_no_traceback() -> None:
    done = manage("purge_idempotency_keys", "--database", "nope")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("CommandError: Unknown database 'nope'"), done.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_the_default_of_every_option(name: str) -> None:
    parser = load_command_class("idempotency_jobs", name).create_parser("manage.py", name)
    djangos = {action.dest for action in BaseCommand().create_parser("manage.py", name)._actions}
    options = [action for action in parser._actions if action.dest not in djangos]
    assert options
    for action in options:
        if action.nargs != 0:  # a flag (--dry-run) is off unless given
            assert "(default: " in (action.help or ""), action.option_strings


def test_purge_help_shows_the_batch_size_and_the_database() -> None:
    parser = load_command_class("idempotency_jobs", "purge_idempotency_keys").create_parser(
        "manage.py", "purge_idempotency_keys"
    )
    text = " ".join(parser.format_help().split())
    assert "Rows per DELETE (default: 5000)." in text
    assert "(default: IDEMPOTENCY_JOBS['DATABASE_ALIAS'], now 'default')" in text
