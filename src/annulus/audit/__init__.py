"""The audit trail: every create, change and void of trial data, hash-chained (X-7.3)."""
