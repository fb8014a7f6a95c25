"""Where downloaded data goes, and a quick "is the download host reachable?" check.

Checking first lets an offline machine fail in seconds with a clear message instead of waiting
for urllib's retries and timeouts inside a dataset library.
"""

from __future__ import annotations

import os

from clusterbench.run.net import host_of, reachable  # noqa: F401 - the datasets' entry point

DATA_ENV = "CLUSTERBENCH_DATA"
DEFAULT_DATA_HOME = "~/.cache/clusterbench/data"


def data_home() -> str:
    """``$CLUSTERBENCH_DATA`` when set, else ``~/.cache/clusterbench/data`` (absolute path)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(DATA_ENV) or DEFAULT_DATA_HOME))
