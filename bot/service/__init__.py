"""The service: webhook intake, the delivery worker, settings, metrics and the wiring of handlers."""
