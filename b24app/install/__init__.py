"""install surface."""
