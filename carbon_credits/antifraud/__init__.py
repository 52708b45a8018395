"""Rate limits, plausibility rules and the review queue."""
