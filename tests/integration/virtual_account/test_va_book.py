"""The book on real PostgreSQL: idempotency under concurrency, races, gaps, funding, liquidation, exact balances."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D

import asyncpg
import pytest

from aegis.errors import AegisError, AlreadyExistsError, NotFoundError, ValidationError
from aegis.replay.report import account_summary
from aegis.risk.sizing import PositionSide
from aegis.storage.postgres import Database
from aegis.virtual_account import book as book_module
from aegis.virtual_account.batcher import Batcher
from aegis.virtual_account.book import AccountBook, AccountRefusal, CloseRequest, OpenRequest
from aegis.virtual_account.domain import CloseReason, Tick
from aegis.virtual_account.settings import AccountSettings

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@dataclass
class Env:
    db: Database
    book: AccountBook
    learning: str
    paper: str
    events: list

    def symbol(self) -> str:
        return "T" + secrets.token_hex(4).upper() + "USDT"

    def second_book(self, **settings) -> AccountBook:  # type: ignore[no-untyped-def]
        """Another replica: its own pool, the same database."""
        return AccountBook(Database(self.book._db._dsn), AccountSettings(**settings), accounts=self.book.accounts)


@pytest.fixture
async def env(migrated_database_url: str) -> AsyncIterator[Env]:
    tag = secrets.token_hex(3)
    learning, paper = f"learning-{tag}", f"paper-{tag}"
    db = Database(migrated_database_url, max_size=20)
    events: list = []
    book = AccountBook(db, AccountSettings(), accounts={learning: "learning", paper: "paper"}, publish=events.extend)
    yield Env(db, book, learning, paper, events)
    await db.close()


def opening(env: Env, symbol: str, key: str | None = None, **changes) -> OpenRequest:  # type: ignore[no-untyped-def]
    fields = dict(idempotency_key=key or secrets.token_hex(8), account=env.learning, symbol=symbol, side=LONG,
                  quantity=D("0.5"), leverage=10, entry_price=D("60000"), stop_loss_price=D("59000"),
                  take_profit_price=D("61000"))  # fmt: skip
    fields.update(changes)
    return OpenRequest(**fields)


def tick(symbol: str, seconds: float, last: str, mark: str | None = None, high: str | None = None,
         low: str | None = None, rate: str | None = None, next_funding: dt.datetime | None = None) -> Tick:  # fmt: skip
    return Tick(symbol, D(last), D(mark or last), D(high or last), D(low or last),
                T0 + dt.timedelta(seconds=seconds), D(rate) if rate else None, next_funding)  # fmt: skip


async def one(coro):  # type: ignore[no-untyped-def]
    (result,) = await coro
    if isinstance(result, Exception):
        raise result
    return result


async def assert_balances_reconcile(env: Env, name: str) -> dict:
    parts = await env.book.ledger_identity(name)
    assert (
        parts["wallet_balance"] == parts["starting_balance"] + parts["realised_pnl"] - parts["fees"] + parts["funding"]
    )
    assert parts["wallet_balance"] == parts["ledger"] == parts["last_balance"]
    # The ledger's rows alone explain each part (a close's one row carries its price PnL and its exit fee) ...
    assert (parts["ledger_realised"], parts["ledger_fees"], parts["ledger_funding"]) == (
        parts["realised_pnl"],
        parts["fees"],
        parts["funding"],
    )
    # ... and each closed position: its rows (entry fee, funding, close) add up to its trade's net PnL and fees.
    async with env.db.connection() as conn:
        mismatched = await conn.fetch(
            "SELECT t.position_id, t.realised_pnl, t.fees, l.net, l.fees AS ledger_fees FROM trades t JOIN ("
            "  SELECT position_id, sum(amount) AS net, -sum(CASE WHEN kind = 'fee' THEN amount ELSE fee END) AS fees"
            "  FROM balance_ledger WHERE account_id = $1 AND position_id IS NOT NULL GROUP BY position_id"
            ") l ON l.position_id = t.position_id "
            "WHERE t.account_id = $1 AND (l.net <> t.realised_pnl OR l.fees <> t.fees)",
            name,
        )
        unexplained = await conn.fetchval(
            "SELECT count(*) FROM trades t WHERE t.account_id = $1 AND t.realised_pnl <> 0 AND NOT EXISTS "
            "(SELECT 1 FROM balance_ledger l WHERE l.position_id = t.position_id)",
            name,
        )
        # The replay report's cross-check reads the same tables (it raises BooksDoNotBalance on a difference).
        account_summary(
            await conn.fetchrow("SELECT * FROM accounts WHERE account_id = $1", name),
            await conn.fetch("SELECT * FROM trades WHERE account_id = $1", name),
            await conn.fetch("SELECT * FROM positions WHERE account_id = $1 AND status = 'OPEN'", name),
            await conn.fetch("SELECT * FROM balance_ledger WHERE account_id = $1 ORDER BY entry_id", name),
        )
    assert not mismatched, [dict(r) for r in mismatched]
    assert unexplained == 0
    return parts


# --------------------------------------------------------------------------------------------- idempotency


async def test_fifty_concurrent_identical_opens_make_one_position(env: Env) -> None:
    symbol = env.symbol()
    request = opening(env, symbol, key="signal-42")
    # Half through one replica's batcher, half straight at a second replica (its own transactions).
    other = env.second_book()
    batcher = Batcher(env.book.open_positions, max_delay_s=0.002, max_size=1000)
    calls = [batcher.submit(request) if i % 2 else one(other.open_positions([request])) for i in range(50)]
    outcomes = await asyncio.gather(*calls)
    assert len({o.position.position_id for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    positions, _ = await env.book.list_positions(env.learning, symbol, None, 100, "")
    assert len(positions) == 1
    account = await env.book.get_account(env.learning)
    assert account.fees == D("6")  # one maker entry fee: 0.5 * 60,000 * 0.0002
    await batcher.close()
    await other._db.close()


async def test_the_same_key_with_other_fields_is_already_exists(env: Env) -> None:
    symbol = env.symbol()
    first = await one(env.book.open_positions([opening(env, symbol, key="k")]))
    with pytest.raises(AlreadyExistsError, match="idempotency_key 'k'"):
        await one(env.book.open_positions([opening(env, symbol, key="k", quantity=D("0.6"))]))
    again = await one(env.book.open_positions([opening(env, symbol, key="k")]))
    assert again.replayed and again.position.position_id == first.position.position_id
    # The same key in another account is another position.
    other = await one(env.book.open_positions([opening(env, symbol, key="k", account=env.paper)]))
    assert other.position.position_id != first.position.position_id


async def test_unknown_account_and_bad_levels_are_invalid_arguments(env: Env) -> None:
    symbol = env.symbol()
    with pytest.raises(ValidationError) as info:
        await one(env.book.open_positions([opening(env, symbol, account="nobody")]))
    assert info.value.field == "account"
    with pytest.raises(ValidationError) as info:
        await one(env.book.open_positions([opening(env, symbol, stop_loss_price=D("60500"))]))
    assert info.value.field == "stop_loss_price"
    with pytest.raises(AccountRefusal, match="no price known"):
        await one(env.book.open_positions([opening(env, symbol, entry_price=None)]))


# --------------------------------------------------------------------------------------------- races


async def test_a_take_profit_and_a_manual_close_racing_close_the_position_once(env: Env) -> None:
    for round_ in range(10):
        symbol = env.symbol()
        opened = await one(env.book.open_positions([opening(env, symbol)]))
        pid = str(opened.position.position_id)
        other = env.second_book()
        manual = other.close_positions([CloseRequest(f"close-{round_}", env.learning, pid, price=D("60500"))])
        tp = env.book.apply_price_updates([tick(symbol, round_, "61000", high="61000")])
        closed, applied = await asyncio.gather(manual, tp)
        by_manual = not isinstance(closed[0], Exception)
        by_tp = len(applied.closed_trades) == 1
        assert by_manual != by_tp, (closed, applied)
        if not by_manual:
            assert isinstance(closed[0], AccountRefusal) and "TP_HIT" in str(closed[0])
        trades, _ = await env.book.list_trades(env.learning, symbol, None, None, None, 10, "", False)
        assert len(trades) == 1
        await other._db.close()
    await assert_balances_reconcile(env, env.learning)


async def test_close_is_idempotent_and_checks_ownership(env: Env) -> None:
    symbol = env.symbol()
    opened = await one(env.book.open_positions([opening(env, symbol)]))
    pid = str(opened.position.position_id)
    with pytest.raises(NotFoundError):
        await one(env.book.close_positions([CloseRequest("c", env.paper, pid, price=D("60100"))]))
    outcomes = await env.book.close_positions([CloseRequest("c", env.learning, pid, price=D("60100"))] * 3)
    assert [o.replayed for o in outcomes] == [False, True, True]
    again = await one(env.book.close_positions([CloseRequest("c", env.learning, pid, price=D("60100"))]))
    assert again.replayed and again.trade.trade_id == outcomes[0].trade.trade_id
    # The answer's closed position (built positionally by the book) is the open one with the close's fields, and
    # the row a later replay reads back from PostgreSQL.
    closed, trade = outcomes[0].position, outcomes[0].trade
    assert closed == dataclasses.replace(
        opened.position, status="CLOSED", closed_at=trade.closed_at, exit_price=D("60100"),
        close_reason=CloseReason.MANUAL, exit_fee=trade.fees - opened.position.entry_fee, gross_pnl=trade.gross_pnl,
        realised_pnl=trade.realised_pnl, funding=trade.funding, close_idempotency_key="c",
        close_request_hash=closed.close_request_hash, updated_at=trade.closed_at,
    )  # fmt: skip
    assert closed.close_request_hash
    assert dataclasses.replace(again.position, updated_at=None) == dataclasses.replace(closed, updated_at=None)
    with pytest.raises(AlreadyExistsError):
        await one(env.book.close_positions([CloseRequest("c", env.learning, pid, price=D("60200"))]))
    with pytest.raises(AccountRefusal, match="already closed"):
        await one(env.book.close_positions([CloseRequest("c2", env.learning, pid)]))


# --------------------------------------------------------------------------------------------- prices


async def test_a_jump_past_the_stop_fills_at_the_gap_price(env: Env) -> None:
    symbol = env.symbol()
    book = AccountBook(env.db, AccountSettings(slippage_rate=D("0"), working_type="contract_price"),
                       accounts=env.book.accounts)  # fmt: skip
    await one(book.open_positions([opening(env, symbol)]))
    await book.apply_price_updates([tick(symbol, 1, "59600", high="59700", low="59500")])
    result = await book.apply_price_updates([tick(symbol, 2, "58400", high="58500", low="58300")])
    (trade,) = result.closed_trades
    assert trade.close_reason is CloseReason.SL_HIT
    assert trade.exit_price == D("58500")  # not the 59,000 stop
    assert trade.gross_pnl == D("-750")  # 0.5 * (58,500 - 60,000)
    # Maker entry 6, taker exit 0.5 * 58,500 * 0.0005 = 14.625
    assert trade.fees == D("20.625") and trade.realised_pnl == D("-770.625")
    assert trade.roi_margin_pct == D("-25.687500") and trade.reward_score == -10


async def test_updates_apply_in_time_order_and_stale_ones_are_ignored(env: Env) -> None:
    symbol = env.symbol()
    await one(env.book.open_positions([opening(env, symbol)]))
    # Conflated batch, out of order: the dip to the stop comes first in time, then the recovery.
    result = await env.book.apply_price_updates(
        [tick(symbol, 3, "60500"), tick(symbol, 2, "58900", mark="58950"), tick(symbol, 1, "60000")]
    )
    assert [t.close_reason for t in result.closed_trades] == [CloseReason.SL_HIT]
    retried = await env.book.apply_price_updates([tick(symbol, 3, "60500"), tick(symbol, 2, "58900")])
    assert retried.stale_updates == 2 and retried.closed_trades == ()


async def test_funding_is_paid_at_each_funding_time_crossed(env: Env) -> None:
    symbol = env.symbol()
    long = await one(env.book.open_positions([opening(env, symbol)]))
    short = await one(env.book.open_positions([opening(env, symbol, side=SHORT, stop_loss_price=D("61000"),
                                                       take_profit_price=D("59000"))]))  # fmt: skip
    t8 = T0 + dt.timedelta(hours=8)
    await env.book.apply_price_updates([tick(symbol, 10, "60000", rate="0.0001", next_funding=t8)])
    quiet = await env.book.apply_price_updates([tick(symbol, 20, "60010", rate="0.0001", next_funding=t8)])
    assert quiet.funding_payments == 0 and quiet.positions_updated == 2
    crossing = await env.book.apply_price_updates(
        [tick(symbol, 8 * 3600 + 1, "60020", rate="0.0002", next_funding=t8 + dt.timedelta(hours=8))]
    )
    assert crossing.funding_payments == 2
    positions, _ = await env.book.list_positions(env.learning, symbol, "OPEN", 10, "")
    funding = {p.position_id: p.funding for p in positions}
    # 0.5 BTC at the mark before the funding time (60,010) * 0.01 % = 3.0005: the long pays, the short receives.
    assert funding[long.position.position_id] == D("-3.0005")
    assert funding[short.position.position_id] == D("3.0005")
    again = await env.book.apply_price_updates([tick(symbol, 8 * 3600 + 2, "60020")])
    assert again.funding_payments == 0
    await assert_balances_reconcile(env, env.learning)


async def test_liquidation_when_the_mark_crosses_the_liquidation_price_loses_the_margin(env: Env) -> None:
    symbol = env.symbol()
    opened = await one(env.book.open_positions([opening(env, symbol, leverage=20, stop_loss_price=None,
                                                        take_profit_price=None, quantity=D("2"))]))  # fmt: skip
    p = opened.position
    # No brackets stored for this symbol: the configured default MMR 1 %, cum 0.
    assert p.margin == D("6000") and p.maint_margin_ratio == D("0.01")
    assert p.liquidation_price == D("57575.75757576")  # (120,000 - 6,000) / (2 * 0.99)
    wick = await env.book.apply_price_updates([tick(symbol, 1, "57000", mark="57600")])
    assert wick.closed_trades == ()  # the last price went through, the mark did not
    before = (await env.book.get_account(env.learning)).wallet_balance
    result = await env.book.apply_price_updates([tick(symbol, 2, "57500", mark="57570")])
    (trade,) = result.closed_trades
    assert trade.close_reason is CloseReason.LIQUIDATED and trade.exit_price == p.liquidation_price
    assert trade.gross_pnl == D("-6000") and trade.realised_pnl == D("-6024")  # margin + maker entry fee 24
    after = (await env.book.get_account(env.learning)).wallet_balance
    assert before - after == D("6000")
    assert any(e.type == "LIQUIDATION" for e in env.events)


async def test_leverage_above_the_bracket_is_refused(env: Env) -> None:
    symbol = env.symbol()
    async with env.db.connection() as conn:
        await conn.execute(
            "INSERT INTO leverage_brackets (symbol, bracket, initial_leverage, notional_floor, notional_cap, "
            "maint_margin_ratio, cum) VALUES ($1, 1, 50, 0, 50000, 0.004, 0), ($1, 2, 20, 50000, 600000, 0.005, 50)",
            symbol,
        )
    with pytest.raises(ValidationError) as info:
        await one(env.book.open_positions([opening(env, symbol, quantity=D("2"), leverage=25)]))
    assert info.value.field == "leverage" and "20x" in str(info.value)
    ok = await one(env.book.open_positions([opening(env, symbol, quantity=D("2"), leverage=20)]))
    assert (ok.position.maint_margin_ratio, ok.position.maint_cum) == (D("0.005"), D("50"))


async def test_the_paper_account_keeps_its_cap_and_margin(env: Env) -> None:
    symbol = env.symbol()
    with pytest.raises(AccountRefusal, match="available"):  # 100 BTC at 10x needs 600,000 USDT of margin
        await one(env.book.open_positions([opening(env, env.symbol(), account=env.paper, quantity=D("100"))]))
    results = await env.book.open_positions([opening(env, symbol, account=env.paper) for _ in range(4)])
    assert [type(r).__name__ for r in results] == ["OpenOutcome"] * 3 + ["AccountRefusal"]
    learning = await env.book.open_positions([opening(env, symbol) for _ in range(5)])
    assert all(type(r).__name__ == "OpenOutcome" for r in learning)  # learning: no cap


# --------------------------------------------------------------------------------------------- balances


async def test_balance_identity_is_exact_over_hundreds_of_random_trades(env: Env) -> None:
    rng = random.Random(7)
    symbols = [env.symbol() for _ in range(4)]
    price = {s: D("100") for s in symbols}
    clock = 0
    trades = 0
    for _ in range(40):
        requests = []
        for _ in range(rng.randint(3, 12)):
            s = rng.choice(symbols)
            side = rng.choice([LONG, SHORT])
            entry = price[s] if rng.random() < 0.5 else None
            ref = price[s]
            sl_pct, tp_pct = D(rng.randint(5, 40)) / 1000, D(rng.randint(5, 40)) / 1000
            sign = 1 if side is LONG else -1
            requests.append(opening(env, s, side=side, entry_price=entry,
                                    quantity=D(rng.randint(1, 5000)) / 1000, leverage=rng.randint(1, 50),
                                    stop_loss_price=(ref * (1 - sign * sl_pct)).quantize(D("0.001")),
                                    take_profit_price=(ref * (1 + sign * tp_pct)).quantize(D("0.001"))))  # fmt: skip
        if clock > 0:
            await env.book.open_positions(requests)
        updates = []
        for s in symbols:
            clock += 1
            step = D(rng.randint(-300, 300)) / 10000
            last = (price[s] * (1 + step)).quantize(D("0.001"))
            high = (max(last, price[s]) * (1 + D(rng.randint(0, 50)) / 10000)).quantize(D("0.001"))
            low = (min(last, price[s]) * (1 - D(rng.randint(0, 50)) / 10000)).quantize(D("0.001"))
            mark = (last * (1 + D(rng.randint(-20, 20)) / 10000)).quantize(D("0.001"))
            rate = str(D(rng.randint(-10, 10)) / 100000)
            next_funding = T0 + dt.timedelta(hours=8 * (clock // 20 + 1))
            updates.append(tick(s, clock * 3600 / 10, str(last), str(mark), str(high), str(low), rate, next_funding))
            price[s] = last
        result = await env.book.apply_price_updates(updates)
        trades += len(result.closed_trades)
        open_now, _ = await env.book.list_positions(env.learning, None, "OPEN", 1000, "")
        manual = [CloseRequest(secrets.token_hex(6), env.learning, str(p.position_id)) for p in open_now
                  if rng.random() < 0.15]  # fmt: skip
        trades += sum(1 for r in await env.book.close_positions(manual) if not isinstance(r, Exception))
    assert trades > 200
    parts = await assert_balances_reconcile(env, env.learning)
    # The trades' net PnL plus the entry fees and funding of the positions still open is everything realised.
    async with env.db.connection() as conn:
        closed = await conn.fetchval("SELECT coalesce(sum(realised_pnl), 0) FROM trades WHERE account_id = $1",
                                     env.learning)  # fmt: skip
        still = await conn.fetchval("SELECT coalesce(sum(funding - entry_fee), 0) FROM positions "
                                    "WHERE account_id = $1 AND status = 'OPEN'", env.learning)  # fmt: skip
        count = await conn.fetchval("SELECT count(*) FROM trades WHERE account_id = $1", env.learning)
    assert parts["wallet_balance"] - parts["starting_balance"] == closed + still
    account = await env.book.get_account(env.learning)
    assert account.trade_count == count == trades
    assert account.equity == account.wallet_balance + account.unrealised_pnl
    assert account.realised_pnl == closed + still


async def test_lists_page_newest_first_and_filter(env: Env) -> None:
    symbol = env.symbol()
    opened = await env.book.open_positions([opening(env, symbol) for _ in range(7)])
    await env.book.close_positions(
        [
            CloseRequest(f"c{i}", env.learning, str(o.position.position_id), price=D("60000") + i)
            for i, o in enumerate(opened)
        ]
    )
    seen, token = [], ""
    while True:
        page, token = await env.book.list_trades(env.learning, symbol, None, None, None, 3, token, True)
        seen += page
        if not token:
            break
    assert len(seen) == 7 and len({t.trade_id for t in seen}) == 7
    assert [t.closed_at for t in seen] == sorted((t.closed_at for t in seen), reverse=True)
    none, _ = await env.book.list_trades(env.learning, symbol, None, None, CloseReason.TP_HIT, 10, "", False)
    assert none == []
    with pytest.raises(ValidationError) as info:
        await env.book.list_trades(env.learning, symbol, None, None, None, 3, "garbage", False)
    assert info.value.field == "page_token"
    ids = {uuid.UUID(str(t.position_id)) for t in seen}
    assert ids == {o.position.position_id for o in opened}


# --------------------------------------------------------------------------------------------- exact values


async def test_keys_features_and_money_survive_the_array_literals_exactly(env: Env) -> None:
    """The hot statements send columns as PostgreSQL array literals: nothing may be bent on the way."""
    symbol = env.symbol()
    keys = ['q"uote', "back\\slash", "a,b", "{braces}", " padded ", "NULL", "ünï 😀", "tab\there", "x" * 300]
    features = (0.1, -0.0, 5e-324, 1e300, 1 / 3, float("nan"), float("inf"), -float("inf"))
    requests = [
        opening(env, symbol, key=k, quantity=D("0.123456789012345678"), entry_price=D("60000.000000001"),
                features=(features[: 1 + i % len(features)] if i != 4 else ()) if i % 3 else None,
                feature_schema_version=7,
                confidence=0.1 + i, predicted_return_pct=-2.5e-7, model_version=f"m-{k}", decision_id=k)
        for i, k in enumerate(keys)
    ]  # fmt: skip
    opened = await env.book.open_positions(requests)
    assert not [o for o in opened if isinstance(o, Exception)], opened
    for request, outcome in zip(requests, opened, strict=True):
        assert outcome.position.idempotency_key == request.idempotency_key
        assert outcome.position.quantity == D("0.123456789012345678")
        assert outcome.position.entry_price == D("60000.000000001")
    # A retry of each is the same position (the stored key and fingerprint read back byte for byte).
    again = await env.book.open_positions(requests)
    assert [a.replayed for a in again] == [True] * len(keys)
    assert [a.position.position_id for a in again] == [o.position.position_id for o in opened]
    closes = [CloseRequest(f"close {k}", env.learning, str(o.position.position_id), price=D("60000.5"))
              for k, o in zip(keys, opened, strict=True)]  # fmt: skip
    closed = await env.book.close_positions(closes)
    assert not [c for c in closed if isinstance(c, Exception)], closed
    assert [c.replayed for c in await env.book.close_positions(closes)] == [True] * len(keys)
    trades, _ = await env.book.list_trades(env.learning, symbol, None, None, None, 100, "", True)
    by_position = {t.position_id: t for t in trades}
    for request, outcome, close in zip(requests, opened, closed, strict=True):
        trade = by_position[outcome.position.position_id]
        assert trade == close.trade.__class__(**{**_fields(close.trade), "features": trade.features})
        assert trade.model_version == request.model_version and trade.confidence == request.confidence
        assert trade.predicted_return_pct == -2.5e-7
        if request.features is None:
            assert trade.features is None
        else:
            assert len(trade.features) == len(request.features)
            for got, sent in zip(trade.features, request.features, strict=True):
                assert got == sent or (got != got and sent != sent), (got, sent)
                assert str(got) == str(sent)  # -0.0 stays -0.0
    async with env.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT idempotency_key, close_idempotency_key, decision_id FROM positions WHERE symbol = $1", symbol
        )
    assert sorted((r["idempotency_key"], r["close_idempotency_key"], r["decision_id"]) for r in rows) == sorted(
        (k, f"close {k}", k) for k in keys
    )
    await assert_balances_reconcile(env, env.learning)


def _fields(trade) -> dict:  # type: ignore[no-untyped-def]
    return {name: getattr(trade, name) for name in trade.__slots__}


# --------------------------------------------------------------------------------------------- pipelined writes


async def test_batches_larger_than_a_chunk_write_every_row_once(env: Env) -> None:
    """Opens, request closes and price closes of several write chunks each (docs/accounts.md, "Batching")."""
    n = 3 * book_module._CHUNK + 17  # chunks of _chunk_size(n): four statements per batch here
    assert book_module._chunk_size(n) < n
    symbol = env.symbol()
    # every row its own feature vector (none, empty, lengths 1 to 40): each chunk's flat vector literal is sliced right
    vectors = [None if i % 7 == 0 else tuple(i + j / 64 for j in range(i % 41)) for i in range(n)]
    requests = [opening(env, symbol, features=v) for v in vectors]
    opened = [await_ok(o) for o in await env.book.open_positions(requests)]
    async with env.db.connection() as conn:
        stored = {
            r["idempotency_key"]: r["features"]
            for r in await conn.fetch("SELECT idempotency_key, features FROM positions WHERE symbol = $1", symbol)
        }
    assert [stored[r.idempotency_key] for r in requests] == [None if v is None else list(v) for v in vectors]
    by_request = [CloseRequest(f"close-{i}", env.learning, str(o.position.position_id), price=D("60100"))
                  for i, o in enumerate(opened[: n // 2])]  # fmt: skip
    closed = [await_ok(c) for c in await env.book.close_positions(by_request)]
    assert [c.position.position_id for c in closed] == [o.position.position_id for o in opened[: n // 2]]
    applied = await env.book.apply_price_updates([tick(symbol, 1, "61500")])
    assert len(applied.closed_trades) == n - n // 2
    assert {t.position_id for t in applied.closed_trades} == {o.position.position_id for o in opened[n // 2 :]}
    async with env.db.connection() as conn:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM positions WHERE symbol = $1 AND status = 'CLOSED') AS closed, "
            "(SELECT count(*) FROM positions WHERE symbol = $1) AS positions, "
            "(SELECT count(DISTINCT position_id) FROM trades WHERE symbol = $1) AS trades, "
            "(SELECT count(*) FROM balance_ledger l JOIN positions p USING (position_id) WHERE p.symbol = $1) "
            "AS ledger",
            symbol,
        )
    assert dict(counts) == {"closed": n, "positions": n, "trades": n, "ledger": 2 * n}  # entry fee + close each
    await assert_balances_reconcile(env, env.learning)


async def test_the_pipeline_surfaces_a_failed_statement_and_the_transaction_rolls_back(env: Env) -> None:
    async with env.db.connection() as conn:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS pipe_probe (x int PRIMARY KEY)")
        # A failing statement in flight: its error comes out of the next send, inside the transaction.
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                pipe = book_module._Pipeline(conn)
                try:
                    await pipe.send("INSERT INTO pipe_probe SELECT unnest($1::int[])", [1, 1])
                    await pipe.send("INSERT INTO pipe_probe VALUES ($1)", 2)
                    await pipe.drain()
                finally:
                    await pipe.settle()
        # A statement that wrote another number of rows than expected fails the transaction too.
        with pytest.raises(AegisError, match="wrote 1 of 2 rows"):
            async with conn.transaction():
                pipe = book_module._Pipeline(conn)
                try:
                    await pipe.send("INSERT INTO pipe_probe VALUES ($1)", 3, expect=2)
                    await pipe.drain()
                finally:
                    await pipe.settle()
        # An error in Python while a statement is in flight: settle lets it finish, the rollback works.
        with pytest.raises(RuntimeError, match="python failed"):
            async with conn.transaction():
                pipe = book_module._Pipeline(conn)
                try:
                    await pipe.send("INSERT INTO pipe_probe SELECT $1::int FROM pg_sleep(0.05)", 4)
                    raise RuntimeError("python failed")
                finally:
                    await pipe.settle()
        assert await conn.fetchval("SELECT count(*) FROM pipe_probe") == 0  # every transaction rolled back
        await conn.execute("DROP TABLE pipe_probe")


def await_ok(outcome):  # type: ignore[no-untyped-def]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def test_positions_unpacked_from_the_hot_reads_equal_those_read_by_name(env: Env) -> None:
    """``_position_row`` (the close and price-update reads) builds what ``_position`` builds, open and closed."""
    symbol = env.symbol()
    await env.book.apply_price_updates([tick(symbol, 1, "60000", mark="60001")])  # a mark price to read
    opened = [
        await_ok(o)
        for o in await env.book.open_positions(
            [
                opening(
                    env,
                    symbol,
                    side=side,
                    signal_id=str(uuid.uuid4()),
                    model_version="m",
                    features=(0.5,),
                    stop_loss_price=None,
                    take_profit_price=None,
                )
                for side in (LONG, SHORT)
            ]
        )
    ]
    await one(
        env.book.close_positions(
            [CloseRequest("c-row", env.learning, str(opened[0].position.position_id), price=D("60100"))]
        )
    )
    async with env.db.connection() as conn:
        rows = await conn.fetch(
            f"SELECT {book_module._P_COLUMNS}, ap.last_price, ap.mark_price FROM positions p "
            "LEFT JOIN account_prices ap ON ap.symbol = p.symbol WHERE p.symbol = $1",
            symbol,
        )
    assert len(rows) == 2 and {r["status"] for r in rows} == {"OPEN", "CLOSED"}
    assert {r["mark_price"] for r in rows} == {D("60001")}
    for r in rows:
        assert book_module._position_row(r, r["mark_price"]) == book_module._position(r)
        assert book_module._position_row(r) == dataclasses.replace(book_module._position(r), mark_price=None)
