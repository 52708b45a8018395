"""Use cases. Each public function is one unit of work: it owns its transaction."""
