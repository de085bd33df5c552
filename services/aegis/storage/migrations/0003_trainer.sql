-- Trainer: what training runs and model versions need beyond 0001 (the statuses TrainerService reports, the
-- figures of a run's report, a model's lineage and artifact digest), and the lists' orderings.
-- Written without schema names (see 0001).

-- Runs: skipped (too few valid trades) and queued join the statuses; why a run was started is free text.
ALTER TABLE training_runs DROP CONSTRAINT IF EXISTS training_runs_status_check;
ALTER TABLE training_runs ADD CONSTRAINT training_runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped'));
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS request_reason text;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS trades_invalid integer NOT NULL DEFAULT 0;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS baseline_name text;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS previous_model_version text;
-- Newest closed_at the run read: a scheduled run with nothing newer to learn from is not started.
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS data_until timestamptz;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS host text;
CREATE INDEX IF NOT EXISTS training_runs_started_idx ON training_runs (started_at DESC, run_id DESC);

-- Models: how each version was made and what it was trained on.
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS hyperparameters jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS feature_names jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS training_trades integer NOT NULL DEFAULT 0;
-- Newest closed_at among its training trades: trades closed later are out of its sample.
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS trained_until timestamptz;
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS seed bigint;
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS artifact_sha256 text;
ALTER TABLE ml_models ADD COLUMN IF NOT EXISTS retired_at timestamptz;
CREATE INDEX IF NOT EXISTS ml_models_created_idx ON ml_models (created_at DESC, version DESC);
