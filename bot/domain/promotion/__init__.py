"""Promotion across environment branches: the chain, the plan, the gates and the queue (pure)."""
