-- The live account's mirror (live mode: virtual-account follows the Binance user data stream and reconciles it
-- with the exchange, docs/live-trading.md). Written without schema names (see 0001).

-- A live position closes over one or more reducing fills: what they closed so far, until the position is flat.
ALTER TABLE positions ADD COLUMN IF NOT EXISTS closed_quantity numeric NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS exit_notional numeric NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS exit_fees numeric NOT NULL DEFAULT 0;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS exit_gross_pnl numeric NOT NULL DEFAULT 0;
-- Where a live position's row came from: 'stream' (a fill) or 'reconcile' (found on the exchange).
ALTER TABLE positions ADD COLUMN IF NOT EXISTS source text;

-- Every fill of the live account, once (Binance's trade id per symbol): the mirror's idempotency, and an audit.
CREATE TABLE IF NOT EXISTS exchange_fills (
    account_id        text NOT NULL REFERENCES accounts (account_id),
    symbol            text NOT NULL,
    trade_id          bigint NOT NULL,
    order_id          bigint NOT NULL,
    client_order_id   text NOT NULL,
    side              text NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price             numeric NOT NULL,
    quantity          numeric NOT NULL,
    commission        numeric NOT NULL,
    commission_asset  text NOT NULL,
    realised_pnl      numeric NOT NULL,
    maker             boolean NOT NULL,
    position_id       uuid,
    applied           boolean NOT NULL,
    fill_time         timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, symbol, trade_id)
);

-- The live account's orders and algo orders as the exchange last reported them (stream or reconciliation).
CREATE TABLE IF NOT EXISTS exchange_orders (
    account_id        text NOT NULL REFERENCES accounts (account_id),
    client_id         text NOT NULL,
    algo              boolean NOT NULL,
    exchange_id       bigint NOT NULL,
    symbol            text NOT NULL,
    side              text NOT NULL,
    order_type        text NOT NULL,
    status            text NOT NULL,
    is_open           boolean NOT NULL,
    quantity          numeric NOT NULL DEFAULT 0,
    price             numeric NOT NULL DEFAULT 0,
    trigger_price     numeric NOT NULL DEFAULT 0,
    filled_quantity   numeric NOT NULL DEFAULT 0,
    average_price     numeric NOT NULL DEFAULT 0,
    reduce_only       boolean NOT NULL DEFAULT false,
    close_position    boolean NOT NULL DEFAULT false,
    working_type      text NOT NULL DEFAULT '',
    source            text NOT NULL,
    note              text NOT NULL DEFAULT '',
    update_time       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, algo, exchange_id)
);
CREATE INDEX IF NOT EXISTS exchange_orders_open_idx ON exchange_orders (account_id, symbol) WHERE is_open;
CREATE INDEX IF NOT EXISTS exchange_orders_client_idx ON exchange_orders (account_id, client_id);

-- Exchange times up to which reconciliation has already put a symbol's position ('position:<symbol>') or the
-- wallet ('wallet') into the database: a fill of the stream at or before it is recorded but not applied again.
CREATE TABLE IF NOT EXISTS exchange_sync_marks (
    account_id  text NOT NULL REFERENCES accounts (account_id),
    scope       text NOT NULL,
    synced_ms   bigint NOT NULL,
    PRIMARY KEY (account_id, scope)
);
