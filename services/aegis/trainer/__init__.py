"""Trainer: validation, bias checks, training, champion/challenger."""
