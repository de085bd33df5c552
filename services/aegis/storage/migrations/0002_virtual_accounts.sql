-- Virtual accounts: what positions and accounts need beyond 0001 (idempotency fingerprints, the signal's
-- training data, funding and liquidation inputs, close results), and the latest prices per symbol that
-- ApplyPriceUpdates keeps (market fills, unrealised PnL, stale updates, funding times).
-- Written without schema names (see 0001).

ALTER TABLE accounts ADD COLUMN IF NOT EXISTS trade_count bigint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS win_count bigint NOT NULL DEFAULT 0;

-- What the open request looked like (a retry with the same key must carry the same fingerprint).
ALTER TABLE positions ADD COLUMN IF NOT EXISTS request_hash text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS margin_type text NOT NULL DEFAULT 'ISOLATED';
ALTER TABLE positions ADD COLUMN IF NOT EXISTS maint_margin_ratio numeric;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS maint_cum numeric;
-- First funding time the position is liable for (the symbol's pending funding time when it opened; NULL =
-- none known then, so liable for the next one seen).
ALTER TABLE positions ADD COLUMN IF NOT EXISTS funding_from timestamptz;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS model_version text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS predicted_return_pct double precision;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS feature_schema_version integer;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS features double precision[];
ALTER TABLE positions ADD COLUMN IF NOT EXISTS decision_id text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS exit_fee numeric;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS gross_pnl numeric;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS realised_pnl numeric;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS close_idempotency_key text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS close_request_hash text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS updated_at timestamptz;

CREATE UNIQUE INDEX IF NOT EXISTS positions_close_key_idx
    ON positions (account_id, close_idempotency_key) WHERE close_idempotency_key IS NOT NULL;
-- Price updates look up the open positions of a symbol across accounts.
CREATE INDEX IF NOT EXISTS positions_open_symbol_idx ON positions (symbol) WHERE status = 'OPEN';
CREATE INDEX IF NOT EXISTS positions_account_opened_idx ON positions (account_id, opened_at DESC, position_id DESC);
CREATE INDEX IF NOT EXISTS trades_closed_idx ON trades (closed_at DESC, trade_id DESC);

-- Latest applied price update per symbol.
CREATE TABLE IF NOT EXISTS account_prices (
    symbol             text PRIMARY KEY,
    last_price         numeric NOT NULL CHECK (last_price > 0),
    mark_price         numeric NOT NULL CHECK (mark_price > 0),
    funding_rate       numeric,
    next_funding_time  timestamptz,
    event_time         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
