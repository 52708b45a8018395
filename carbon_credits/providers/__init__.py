"""Scenario providers (场景方): transit, bike-share and health platforms that report their
users' trips. ``registry``: providers and their keys; ``signatures``: who signed a request
(RFC 9421); ``nonces``: the replay store; ``bindings``: users' consent, and ``resolve`` for
the crediting path; ``records``, ``files``, ``jobs``: the records they send, one by
one or in files processed by workers."""
