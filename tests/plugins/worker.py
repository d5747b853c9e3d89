"""Real RQ worker fixtures (being written)."""
