"""The carbon account (碳账户): per-user aggregates of credited events, the first screen."""
