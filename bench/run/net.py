"""Is a download host reachable? Asked first, so an offline machine fails in seconds with a
clear message instead of waiting out a library's retries."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


def host_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    The attempt runs in a daemon thread because name resolution ignores socket timeouts and
    can block for much longer on a machine without network.
    """
    if not host:
        return False
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, name=f"reach-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def host_of(url: str) -> tuple[str, int]:
    """(host, port) of a URL, the port defaulting from the scheme."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return parts.hostname or "", port


def reachable(url: str, timeout: float = 3.0) -> bool:
    """:func:`host_reachable` for the host of a URL."""
    return host_reachable(*host_of(url), timeout=timeout)
