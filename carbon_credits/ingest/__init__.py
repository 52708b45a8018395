"""One flow for a client post, a batch and (later) an operator record or file."""
