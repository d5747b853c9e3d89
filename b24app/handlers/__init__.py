"""handlers surface."""
