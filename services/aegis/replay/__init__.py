"""Whole-system replay: every service as a process over recorded frames, then a report (see docs/replay.md)."""
