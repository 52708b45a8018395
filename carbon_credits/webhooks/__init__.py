"""Notifications out: webhooks to client platforms, signed (RFC 9421), from an outbox."""
