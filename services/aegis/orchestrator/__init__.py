"""Orchestrator: migrations, exchange rules and universe refresh, reconciliation, maintenance, system status."""
