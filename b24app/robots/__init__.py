"""robots surface."""
