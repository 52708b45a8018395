"""Points: append-only entries, hash chain, balances, daily caps, redemption,
reversal and verify-ledger."""
