"""Where downloaded data goes, and a quick "is the download host reachable?" check.

Checking first lets an offline machine fail in seconds with a clear message instead of waiting
for urllib's retries and timeouts inside a dataset library.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlsplit

DATA_ENV = "CLUSTERBENCH_DATA"
DEFAULT_DATA_HOME = "~/.cache/clusterbench/data"


def data_home() -> str:
    """``$CLUSTERBENCH_DATA`` when set, else ``~/.cache/clusterbench/data`` (absolute path)."""
    return os.path.abspath(os.path.expanduser(os.environ.get(DATA_ENV) or DEFAULT_DATA_HOME))


def host_of(url: str) -> tuple[str, int]:
    """(host, port) of a URL, the port defaulting from the scheme."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return parts.hostname or "", port


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the URL's host opens within ``timeout`` seconds.

    The connect runs in a daemon thread because name resolution ignores socket timeouts and can
    hang far longer than ``timeout`` on a machine without network.
    """
    host, port = host_of(url)
    if not host:
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, name=f"reachable-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
