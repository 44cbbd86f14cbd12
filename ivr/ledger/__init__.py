"""The ledger: the one place that deducts incidents, exactly once per ticket (R7)."""
