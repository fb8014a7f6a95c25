"""Search-space parameters a method declares for tuning (plain data: methods never see Optuna)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """An integer range (``low..high``, optionally log-scaled) or a set of ``choices``."""

    name: str
    choices: tuple | None = None
    low: int = 0
    high: int = 0
    log: bool = False

    @classmethod
    def integer(cls, name: str, low: int, high: int, log: bool = False) -> Param:
        return cls(name, low=int(low), high=int(high), log=log)

    @classmethod
    def categorical(cls, name: str, choices) -> Param:
        return cls(name, choices=tuple(choices))

    def values(self) -> list:
        return list(self.choices) if self.choices is not None else list(range(self.low, self.high + 1))

    @property
    def size(self) -> int:
        return len(self.choices) if self.choices is not None else self.high - self.low + 1

    def describe(self) -> str:
        if self.choices is not None:
            return f"{self.name} in {{{','.join(str(c) for c in self.choices)}}}"
        return f"{self.name}={self.low}..{self.high}" + (" (log)" if self.log else "")
