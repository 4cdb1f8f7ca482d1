"""The example service's own settings, for benchmarks 2, 4 and 5.

Only two changes: imports of 1M rows are allowed (the service's default cap, 20 MB of CSV, is
about 400k rows), and export files go under benchmarks/var.
"""

from benchmarks.harness import VAR
from example_project.settings import *  # noqa: F403

EXAMPLE_SUBSCRIBER_IMPORT_MAX_BYTES = 512 * 1024 * 1024
MEDIA_ROOT = str(VAR / "media")
