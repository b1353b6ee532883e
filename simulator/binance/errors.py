"""Binance's error envelope: ``{"code": -1121, "msg": "Invalid symbol."}`` and its HTTP status.

https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
(4XX for malformed requests, 401 for key problems, 403 WAF, 408 timeout, 429 rate limit,
418 IP ban, 5XX internal errors)
"""

from __future__ import annotations


class BinanceError(Exception):
    """An API error as Binance answers it."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def unknown(msg: str) -> BinanceError:
    return BinanceError(-1000, msg)


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def invalid_param(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def bad_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def bad_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def rejected_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def bad_timestamp(ahead: bool) -> BinanceError:
    if ahead:
        return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the "
                                   "server's time.")
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def no_listen_key() -> BinanceError:
    return BinanceError(-1125, "This listenKey does not exist.")
