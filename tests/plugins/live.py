"""Emulator and live-app fixtures (being written)."""
