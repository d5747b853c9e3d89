"""devportal."""
