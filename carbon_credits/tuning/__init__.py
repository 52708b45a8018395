"""Admin tuning of the methodology: immutable factor versions, previewed on past events."""
