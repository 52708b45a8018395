"""The rewards catalogue: merchants' rewards, admin review, redemption against points,
voucher codes, fulfilment and donation certificates.

The points side of a redemption goes through the ledger (``ledger.redemptions``): a
voucher's or a donation's points are spent at once (``spend``: a 'redeem' entry on the hash
chain; a cancellation is an 'adjustment' entry naming the same redemption); a physical
good's are held until it ships (``reserve``: a 'hold' entry; shipping is the 'redeem'
entry, a cancellation before a 'release' entry). Expiry, pending points and annual caps
are not part of this package.
"""
