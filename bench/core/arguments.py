"""Command-line values checked by the same declarations as spec parameters
(:mod:`clusterbench.core.params`): each is an argparse ``type=`` callable, so a bad value is
refused while the command line is read, before anything runs, as one line::

    parser.add_argument("--seed", type=value(Seed), action="append")
    parser.add_argument("--port", type=value(Port), default=5000)
    parser.add_argument("--results", type=value(ExistingResults))      # a reading command
    parser.add_argument("--json", type=value(Annotated[str, WritableFile()]))
    parser.add_argument("--sort", type=value(Annotated[str, Closest(("nmi", "ari"))]))

The message argparse prints is ``argument --seed: -1 must be >= 0``; the command line's parser
turns it into ``clusterbench: error: --seed -1 must be >= 0``.
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from clusterbench.core.faults import StoreFault
from clusterbench.core.params import ExistingDir, Interval, Marker, Problem, as_declared, check
from clusterbench.core.writable import probe_file, probe_folder

Port = Annotated[int, Interval(1, 65535)]
Count = Annotated[int, Interval(1, None)]  # --n, --workers, --topk: at least one
NonNegative = Annotated[int, Interval(0, None)]  # --explain N (0: none)


@dataclass(frozen=True)
class Writable(Marker):
    """A folder the command writes into (it may not exist yet: its nearest existing parent is
    probed by creating and removing a file)."""

    noun = "a writable folder"

    def _probe(self, path: str) -> None:
        probe_folder(path, None)

    def problem(self, value, owner=None):
        try:
            self._probe(str(value))
        except StoreFault as fault:
            return Problem(f"cannot be written: {fault}")
        return None

    def describe(self, noun, owner=None):
        return self.noun


@dataclass(frozen=True)
class WritableFile(Writable):
    """A file the command writes (replaced whole); its folder must take a new file."""

    noun = "a writable file"

    def _probe(self, path: str) -> None:
        probe_file(path, None)


@dataclass(frozen=True)
class Closest(Marker):
    """One of ``choices``; another value is answered with the closest choices."""

    choices: tuple[str, ...]

    def problem(self, value, owner=None):
        if str(value) in self.choices:
            return None
        return Problem(unknown_choice(str(value), self.choices), strong=False)

    def describe(self, noun, owner=None):
        return ", ".join(self.choices)


def unknown_choice(value: str, choices, noun: str = "choice") -> str:
    """``is not a known metric (did you mean nmi?); choose one of ...``"""
    near = difflib.get_close_matches(value, list(choices), n=2, cutoff=0.5)
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    return f"is not a known {noun}{hint}; choose one of {', '.join(choices)}"


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def host_problem(host: str) -> str | None:
    """Why ``host`` is neither a host name nor an IP address (None when it is one)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    return None if _HOST.fullmatch(host) else f"host {host!r} is not a host name or an IP address"


@dataclass(frozen=True)
class HostName(Marker):
    """A host name or an IP address (an interface to bind, a head to join)."""

    def problem(self, value, owner=None):
        why = host_problem(str(value))
        return Problem(f"is not allowed: {why}") if why else None

    def describe(self, noun, owner=None):
        return "a host name or an IP address"


@dataclass(frozen=True)
class Address(Marker):
    """``HOST:PORT``, ``SCHEME://HOST:PORT`` (``schemes``) or one of ``words`` (e.g. auto)."""

    schemes: tuple[str, ...] = ()
    words: tuple[str, ...] = ()

    def problem(self, value, owner=None):
        text = str(value)
        if text in self.words:
            return None
        scheme, sep, rest = text.partition("://")
        if sep and scheme not in self.schemes:
            return Problem(f"is not allowed: scheme {scheme}:// is not {' or '.join(s + '://' for s in self.schemes)}")
        hostport = rest if sep else text
        host, colon, port = hostport.rpartition(":")
        if not colon:
            host, port = hostport, ""
        why = host_problem(host) if host else "no host"
        if why is None and port and not (port.isdigit() and 1 <= int(port) <= 65535):
            why = f"port {port!r} is not a number in [1, 65535]"
        if why is None and not port and not sep:
            why = "no port"
        return Problem(f"is not {self.describe('')}: {why}") if why else None

    def describe(self, noun, owner=None):
        forms = ["HOST:PORT", *(f"{s}://HOST:PORT" for s in self.schemes), *self.words]
        return ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]


ExistingResults = Annotated[str, ExistingDir()]  # a reading command's --results: never created by reading


def _typed(text: str) -> Any:
    """The command line's text as the value it spells: none, true/false, an integer, a number, text."""
    low = text.strip().lower()
    if low == "none":
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class value:  # noqa: N801 - reads as a type in add_argument(type=value(Seed))
    """An argparse ``type=``: the text read as its declaration ``hint`` admits, then checked."""

    def __init__(self, hint: Any, name: str | None = None):
        self.hint = hint
        self.__name__ = name or "value"  # argparse names the type in some messages

    def __call__(self, text: str):
        parsed = as_declared(_typed(text), self.hint)
        parsed = text if isinstance(parsed, str) else parsed  # text stays as typed ("007", "1e3")
        problem = check("value", parsed, self.hint)
        if problem:
            raise argparse.ArgumentTypeError(f"{text} {problem.removeprefix(f'value={_word(parsed)} ')}")
        return parsed


def _word(value: Any) -> str:
    """A value as :func:`clusterbench.core.params.check` shows it after ``key=``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


_ARGUMENT = re.compile(r"argument (?P<names>[^:]+): (?P<message>.*)", re.S)
_ARGPARSE_PHRASES = ("invalid ", "expected ", "not allowed", "ignored explicit argument")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose every refusal is one line, ``clusterbench: error: ...``, exit
    status 2 (argparse's own prints the usage first): ``argument --seed: -1 must be >= 0`` reads
    ``--seed -1 must be >= 0``."""

    def error(self, message: str):
        found = _ARGUMENT.fullmatch(message)
        if found:
            name = max(found["names"].split("/"), key=len)  # the long form of -d/--dataset
            own = not found["message"].startswith(_ARGPARSE_PHRASES)  # ours begin with the value itself
            message = f"{name}{' ' if own else ': '}{found['message']}"
        self.exit(2, f"clusterbench: error: {' '.join(message.split())}\n")


@dataclass(frozen=True)
class WritablePath(Writable):
    """A file or a folder the command writes (``--out``): its place must take new files."""

    noun = "a writable path"

    def _probe(self, path: str) -> None:
        probe_folder(path, None) if not _is_file(path) else probe_file(path, None)


def _is_file(path: str) -> bool:
    from pathlib import Path

    return Path(path).expanduser().is_file()


RayAddress = Annotated[str, Address(("ray",), ("auto",))]
# Options every command spells alike, checked alike wherever they appear (dest -> declaration):
# a command added later gets its checks by naming its options the same way.
BY_DEST: dict[str, Any] = {
    "seed": Annotated[int, Interval(0, None)], "port": Port, "workers": Count, "n": Count, "topk": Count,
    "explain": NonNegative, "host": Annotated[str, HostName()], "ray_address": RayAddress,
    "json": Annotated[str, WritableFile()], "html": Annotated[str, WritableFile()],
    "markdown": Annotated[str, WritableFile()], "out": Annotated[str, WritablePath()],
    "results": Annotated[str, Writable()],
}


def declare_values(parser: argparse.ArgumentParser, reading: set[str]) -> argparse.ArgumentParser:
    """Give each subcommand's options named in :data:`BY_DEST` their checked ``type=`` (an
    option typed otherwise than ``int`` keeps its own). A ``reading`` command's ``--results``
    must exist (reading never creates it); where the command also takes ``--tracking-uri``, the
    command checks that itself (a server's URI needs no results folder)."""
    for action in parser._actions:  # third-party: argparse keeps its actions and subparsers here
        if not isinstance(action, argparse._SubParsersAction):  # third-party: argparse's subcommands
            continue
        for command, sub in action.choices.items():
            dests = {option.dest for option in sub._actions}  # third-party: argparse's actions
            for option in sub._actions:  # third-party: argparse's actions
                hint = BY_DEST.get(option.dest)
                if option.dest == "results" and command in reading:
                    hint = None if "tracking_uri" in dests else ExistingResults
                if hint is not None and option.type in (None, int) and option.option_strings:
                    option.type = value(hint, option.dest)
    return parser
