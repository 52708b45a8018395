"""Scenario providers (场景方): operators that send trip records for their bound users."""
