"""Thin boto3 adapters (AWS calls live here, never in :mod:`bot.domain`)."""
