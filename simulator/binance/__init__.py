"""The embedded exchange's Binance USDⓈ-M futures personality.

It shares the clock, the price engine, the account engine and the fault state with the
Bybit personality (``simulator/``) and adds only what is Binance's: signed REST under
``/fapi/...`` with request weights and Binance's error shapes, the listenKey user data
stream on ``/private``, the mark-price streams on ``/market``, and the legacy routes that
open but stay silent for private data.

Reference: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
"""
