"""placements surface."""
