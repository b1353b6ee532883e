"""Unit tests of the price and account engines (in-process, no sockets)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from feedctl.simulator.account import AccountEngine
from feedctl.simulator.errors import SimError
from feedctl.simulator.instruments import make_instruments
from feedctl.simulator.prices import SNAPSHOT_ORDER, PriceEngine

pytestmark = pytest.mark.unit
D = Decimal


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        self.ms += 1
        return self.ms


def make(symbols=("BTCUSDT", "ETHUSDT"), fee="0", spread="0", balance="100000"):
    inst = make_instruments(list(symbols))
    prices = PriceEngine(inst, seed=3)
    account = AccountEngine(inst, prices, Clock(), spread_bps=D(spread), fee_rate=D(fee),
                            balance=D(balance))
    events: list[tuple[str, list[dict]]] = []
    account.listeners.append(lambda topic, rows: events.append((topic, rows)))
    return prices, account, events


def positions(events):
    return [rows[0] for topic, rows in events if topic == "position"]


# -- prices -----------------------------------------------------------------------------
def test_walk_is_seeded_and_on_tick_grid():
    a = PriceEngine(make_instruments(["BTCUSDT", "DOGEUSDT"]), seed=11)
    b = PriceEngine(make_instruments(["BTCUSDT", "DOGEUSDT"]), seed=11)
    for i in range(50):
        a.step(1000 + i)
        b.step(1000 + i)
        for sym in ("BTCUSDT", "DOGEUSDT"):
            assert a.mark(sym) == b.mark(sym)
            tick = a.instruments[sym].tick_size
            assert a.mark(sym) % tick == 0
            assert a.snapshot(sym)[0]["markPrice"] == a.instruments[sym].fmt_price(a.mark(sym))


def test_delta_contains_only_changed_fields_and_symbol():
    prices = PriceEngine(make_instruments(["BTCUSDT"]), seed=5)
    now = time.time_ns() // 1_000_000
    before, cs0 = prices.snapshot("BTCUSDT", now)
    assert list(before) == list(SNAPSHOT_ORDER) and "openInterestValue" in before
    (symbol, delta, cs), = prices.step(now)
    after, cs1 = prices.snapshot("BTCUSDT", now)
    assert symbol == "BTCUSDT" and delta["symbol"] == "BTCUSDT"
    assert cs == cs1 == cs0 + 1
    changed = {k for k in SNAPSHOT_ORDER if before[k] != after[k]}
    assert set(delta) - {"symbol"} == changed
    assert "prevPrice24h" not in delta


def test_snapshot_is_current_and_the_next_delta_still_carries_the_change():
    prices = PriceEngine(make_instruments(["ETHUSDT"]), seed=5)
    prices.step(1)
    prices.set_price("ETHUSDT", "2500")
    assert prices.snapshot("ETHUSDT")[0]["markPrice"] == "2500.00"  # before any tick
    (_, delta, _), = prices.step(2)
    assert delta["markPrice"] == "2500.00"


def test_set_price_holds_and_release_resumes():
    prices = PriceEngine(make_instruments(["BTCUSDT"]), seed=5)
    assert prices.set_price("BTCUSDT", "60000.04") == D("60000.00")
    for i in range(20):
        prices.step(i)
        assert prices.mark("BTCUSDT") == D("60000.00")
    assert prices.snapshot("BTCUSDT")[0]["indexPrice"] == "60000.00"
    prices.release("BTCUSDT")
    moved = False
    for i in range(20):
        prices.step(i)
        moved = moved or prices.mark("BTCUSDT") != D("60000.00")
    assert moved
    with pytest.raises(ValueError):
        prices.set_price("BTCUSDT", "-1")


def test_scripted_path(monkeypatch):
    import feedctl.simulator.prices as mod

    now = [100.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    prices = PriceEngine(make_instruments(["ETHUSDT"]), seed=5)
    prices.set_path("ETHUSDT", [(0, "3000"), (500, "3100"), (1000, "2900")])
    prices.step(0)
    assert prices.mark("ETHUSDT") == D("3000.00")
    now[0] += 0.6
    prices.step(1)
    assert prices.mark("ETHUSDT") == D("3100.00")
    now[0] += 0.6
    prices.step(2)
    assert prices.mark("ETHUSDT") == D("2900.00")
    now[0] += 5
    prices.step(3)
    assert prices.mark("ETHUSDT") == D("2900.00")  # held at the last point
    assert prices.state("ETHUSDT")["held"] and not prices.state("ETHUSDT")["scripted"]


# -- account ----------------------------------------------------------------------------
def test_open_add_averages_entry_and_pnl():
    prices, account, _ = make()
    prices.set_price("BTCUSDT", "100")
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    prices.set_price("BTCUSDT", "110")
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    pos = account.position("BTCUSDT")
    assert (pos.side, pos.size, pos.entry) == ("Buy", D("2"), D("105"))
    prices.set_price("BTCUSDT", "120")
    assert pos.unrealised(prices.mark("BTCUSDT")) == D("30")
    row = pos.ws_row(prices.mark("BTCUSDT"))
    assert row["entryPrice"] == "105" and row["unrealisedPnl"] == "30"
    assert pos.rest_row(prices.mark("BTCUSDT"))["avgPrice"] == "105"


def test_short_pnl_reduce_close_and_realised():
    prices, account, events = make()
    prices.set_price("ETHUSDT", "2000")
    account.place_market_order("ETHUSDT", "Sell", D("3"))
    prices.set_price("ETHUSDT", "1900")
    pos = account.position("ETHUSDT")
    assert pos.unrealised(prices.mark("ETHUSDT")) == D("300")
    account.place_market_order("ETHUSDT", "Buy", D("1"), reduce_only=True)
    assert (pos.side, pos.size) == ("Sell", D("2"))
    assert pos.cum_realised == D("100") and account.balance == D("100100")
    account.place_market_order("ETHUSDT", "Buy", D("5"), reduce_only=True)  # capped at size
    assert (pos.side, pos.size, pos.entry) == ("", D("0"), D("0"))
    last = positions(events)[-1]
    assert (last["size"], last["side"], last["entryPrice"]) == ("0", "", "0")
    assert last["markPrice"] == "1900"
    assert account.balance == D("100300")
    with pytest.raises(SimError) as err:
        account.place_market_order("ETHUSDT", "Buy", D("1"), reduce_only=True)
    assert err.value.code == 110017


def test_flip_logs_close_then_open_with_one_seq():
    prices, account, events = make()
    prices.set_price("BTCUSDT", "100")
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    prices.set_price("BTCUSDT", "90")
    account.place_market_order("BTCUSDT", "Sell", D("3"))
    pos = account.position("BTCUSDT")
    assert (pos.side, pos.size, pos.entry) == ("Sell", D("2"), D("90"))
    assert account.balance == D("99990")
    kinds = [(t["kind"], t["reason"], t["seq"]) for t in account.transitions]
    assert kinds[-2][:2] == ("closed", "flip") and kinds[-1][:2] == ("opened", "order")
    assert kinds[-2][2] == kinds[-1][2] == pos.seq == positions(events)[-1]["seq"]


def test_fills_move_seq_settings_keep_it_and_push_only_on_change():
    prices, account, events = make()
    prices.set_price("BTCUSDT", "100")
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    pushes = positions(events)
    # Bybit pushes once on order create (unchanged state), then the filled state
    assert [p["seq"] for p in pushes] == [-1, pushes[1]["seq"]] and pushes[1]["size"] == "1"
    n = len(events)
    for i in range(30):  # mark moves: no push at all
        prices.release("BTCUSDT")
        prices.step(10_000 + i)
        account.on_tick()
    assert len(events) == n
    fill_seq = pushes[1]["seq"]
    account.set_leverage("BTCUSDT", "20", "20")
    account.set_trading_stop("BTCUSDT", stop_loss="1")
    # Bybit: settings changes return "the seq updated by the last transaction"
    assert [p["seq"] for p in positions(events)[1:]] == [fill_seq] * 3
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    assert positions(events)[-1]["seq"] == fill_seq + 1
    times = [int(p["updatedTime"]) for p in positions(events)[1:]]
    assert times == sorted(times)
    with pytest.raises(SimError) as err:
        account.set_leverage("BTCUSDT", "20", "20")
    assert err.value.code == 110043
    with pytest.raises(SimError) as err:
        account.set_trading_stop("BTCUSDT", stop_loss="1")
    assert err.value.code == 34040


def test_order_validation():
    _, account, _ = make()
    for qty, code in ((D("0.0005"), 10001), (D("0.0015"), 10001), (D("500"), 10001)):
        with pytest.raises(SimError) as err:
            account.place_market_order("BTCUSDT", "Buy", qty)
        assert err.value.code == code
    with pytest.raises(SimError) as err:
        account.place_market_order("NOPEUSDT", "Buy", D("1"))
    assert err.value.code == 10001
    _, poor, _ = make(balance="10")
    with pytest.raises(SimError) as err:
        poor.place_market_order("BTCUSDT", "Buy", D("1"))
    assert err.value.code == 110007


def test_liquidation_when_mark_crosses_liq_price():
    prices, account, events = make(fee="0.00055")
    prices.set_price("BTCUSDT", "60000")
    account.set_leverage("BTCUSDT", "50", "50")
    account.place_market_order("BTCUSDT", "Buy", D("0.1"))
    pos = account.position("BTCUSDT")
    liq = pos.liq_price()
    assert liq is not None and D("58000") < liq < D("60000")
    prices.set_price("BTCUSDT", str(liq + 1))
    account.on_tick()
    assert pos.is_open
    prices.set_price("BTCUSDT", str(liq - 1))
    account.on_tick()
    assert not pos.is_open
    last = account.transitions[-1]
    assert (last["kind"], last["reason"]) == ("closed", "liquidation")
    assert any(t == "execution" and r[0]["execType"] == "BustTrade" for t, r in events)
    assert pos.cum_realised < D("-100")


def test_take_profit_and_trailing_stop_trigger():
    prices, account, _ = make()
    prices.set_price("ETHUSDT", "2000")
    account.place_market_order("ETHUSDT", "Buy", D("1"))
    account.set_trading_stop("ETHUSDT", take_profit="2100")
    prices.set_price("ETHUSDT", "2100")
    account.on_tick()
    assert not account.position("ETHUSDT").is_open
    assert account.transitions[-1]["reason"] == "take_profit"
    account.place_market_order("ETHUSDT", "Sell", D("1"))
    account.set_trading_stop("ETHUSDT", trailing_stop="50", active_price="2050")
    for px in ("2080", "2040", "2000", "2030"):
        prices.set_price("ETHUSDT", px)
        account.on_tick()
        assert account.position("ETHUSDT").is_open
    prices.set_price("ETHUSDT", "2050")
    account.on_tick()
    assert not account.position("ETHUSDT").is_open
    assert account.transitions[-1]["reason"] == "trailing_stop"


def test_set_position_directly_and_transition_log_bounds():
    inst = make_instruments(["BTCUSDT"])
    prices = PriceEngine(inst, seed=1)
    account = AccountEngine(inst, prices, Clock(), log_size=5)
    account.set_position("BTCUSDT", "Buy", "0.5", entry_price="50000", leverage="5")
    pos = account.position("BTCUSDT")
    assert (pos.size, pos.entry, pos.leverage) == (D("0.5"), D("50000"), D("5"))
    for i in range(10):
        account.set_position("BTCUSDT", "Buy", str(D("0.5") + D(i + 1) / 1000))
    assert len(account.transitions) == 5
    assert account.transitions_after(account.last_transition_id - 2) == list(
        account.transitions)[-2:]
    account.set_position("BTCUSDT", "", "0")
    assert account.transitions[-1]["kind"] == "closed"


def test_seq_is_per_symbol():
    prices, account, _ = make()
    prices.set_price("BTCUSDT", "100")
    prices.set_price("ETHUSDT", "100")
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    btc = account.position("BTCUSDT").seq
    account.place_market_order("ETHUSDT", "Buy", D("1"))
    account.place_market_order("ETHUSDT", "Buy", D("1"))
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    assert account.position("BTCUSDT").seq == btc + 1  # ETH's fills did not move it


def test_hedge_mode_holds_both_sides_with_idx_1_and_2():
    prices, account, events = make()
    prices.set_price("BTCUSDT", "100")
    account.switch_mode("BTCUSDT", 3)
    account.place_market_order("BTCUSDT", "Buy", D("2"), position_idx=1)
    account.place_market_order("BTCUSDT", "Sell", D("1"), position_idx=2)
    rows = account.rest_rows("BTCUSDT")
    assert [(r["positionIdx"], r["side"], r["size"]) for r in rows] == [
        (1, "Buy", "2"), (2, "Sell", "1")]
    pushed = {(p["positionIdx"], p["side"]) for p in positions(events) if p["size"] != "0"}
    assert pushed == {(1, "Buy"), (2, "Sell")}
    # the other side's order on a hedge position reduces it and never flips it
    account.place_market_order("BTCUSDT", "Buy", D("5"), position_idx=2)
    assert not account.position("BTCUSDT", 2).is_open
    assert account.position("BTCUSDT", 1).size == D("2")
    with pytest.raises(SimError) as err:
        account.place_market_order("BTCUSDT", "Buy", D("1"))  # idx 0 in hedge mode
    assert err.value.code == 10001 and "position idx" in err.value.msg


def test_switch_mode_refused_with_a_position_or_unchanged_or_inverse():
    prices, account, _ = make(("BTCUSDT",))
    inverse = AccountEngine(make_instruments([], ["BTCUSD"]), PriceEngine(
        make_instruments([], ["BTCUSD"])), Clock())
    prices.set_price("BTCUSDT", "100")
    with pytest.raises(SimError) as err:
        account.switch_mode("BTCUSDT", 0)
    assert err.value.code == 110025
    account.place_market_order("BTCUSDT", "Buy", D("1"))
    with pytest.raises(SimError) as err:
        account.switch_mode("BTCUSDT", 3)
    assert err.value.code == 110024
    with pytest.raises(SimError) as err:  # Bybit: inverse perpetuals are one-way only
        inverse.switch_mode("BTCUSD", 3)
    assert err.value.code == 10001


def test_inverse_pnl_value_and_fees_are_in_the_coin():
    inst = make_instruments([], ["BTCUSD"])
    prices = PriceEngine(inst, seed=3)
    account = AccountEngine(inst, prices, Clock(), spread_bps=D(0), fee_rate=D("0.001"),
                            coin_balance=D("1"))
    prices.set_price("BTCUSD", "20000")
    account.place_market_order("BTCUSD", "Sell", D("1000"))
    prices.set_price("BTCUSD", "25000")
    pos = account.position("BTCUSD")
    row = pos.ws_row(prices.mark("BTCUSD"))
    assert row["category"] == "inverse" and row["positionValue"] == "0.05"
    # short 1000 USD at 20000, mark 25000: 1000 * (1/25000 - 1/20000) = -0.01 BTC
    assert D(row["unrealisedPnl"]) == D("-0.01")
    assert account.coin_balances["BTC"] == D("1") - D("0.00005")  # fee 1000/20000*0.001
    account.place_market_order("BTCUSD", "Buy", D("1000"), reduce_only=True)
    assert account.coin_balances["BTC"] == D("1") - D("0.00005") - D("0.01") - D("0.00004")
    assert account.balance == D("100000")  # the USDT wallet is untouched
