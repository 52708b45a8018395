"""Badges (勋章) defined as data: a small rule language, awards on ingest, revocation."""
