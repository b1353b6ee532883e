"""Errors answered in Bybit's envelope."""

from __future__ import annotations


class SimError(Exception):
    """An API error: `code` is Bybit's retCode, `msg` its retMsg."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


def params_error(msg: str) -> SimError:
    return SimError(10001, msg)
