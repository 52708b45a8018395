"""The rewards catalogue: merchants' rewards, admin review, redemption against points,
voucher codes, fulfilment and donation certificates.

The points side of a redemption goes through the ledger (``ledger.redemptions.spend``: a
'redeem' entry on the hash chain; a cancellation is an 'adjustment' entry naming the same
redemption). Expiry, pending points and annual caps are not part of this package.
"""
