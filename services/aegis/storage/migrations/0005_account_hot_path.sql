-- Fewer rows and index entries per virtual-account round trip (docs/accounts.md, "Performance").
-- Written without schema names (see 0001).

-- One index for the open positions instead of two. positions_open_idx (account_id, symbol) WHERE status = 'OPEN'
-- (0001) serves every reader of open positions: price updates look them up by account = ANY(...) AND
-- symbol = ANY(...) (both keys of the index), the account and paper-cap queries by account, the live mirror by
-- account and symbol. positions_open_symbol_idx (symbol) WHERE status = 'OPEN' (0002) duplicated it, and every
-- open paid one more index insert for it.
DROP INDEX IF EXISTS positions_open_symbol_idx;

-- The part of a ledger row's amount that is a fee. A close writes one row (kind realised_pnl: amount = price PnL
-- minus the exit fee, fee = minus the exit fee) instead of a realised_pnl row and a fee row; a row of kind 'fee'
-- is wholly a fee (its amount; this column stays 0). So, exactly, per account and per position:
--   price PnL = sum(amount - fee) over realised_pnl and liquidation rows
--   fees      = -(sum(amount) over fee rows + sum(fee) over the other rows)
--   funding   = sum(amount) over funding rows
ALTER TABLE balance_ledger ADD COLUMN IF NOT EXISTS fee numeric NOT NULL DEFAULT 0;
