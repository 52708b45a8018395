"""The database: engine and transactions, typed models, dialect-specific SQL."""
