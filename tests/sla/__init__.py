"""SLA engine tests."""
