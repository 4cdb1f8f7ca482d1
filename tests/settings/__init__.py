"""The suite's settings (pytest's DJANGO_SETTINGS_MODULE, and the worker and command
subprocesses'): every test runs in one process, so these are the widest, the example's, which
build on the jobs suite's, which build on the keys suite's (tests/settings/keys.py)."""

from tests.settings.example import *  # noqa: F403
