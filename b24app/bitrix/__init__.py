"""Bitrix24 wire formats and the REST client; nothing in here imports Flask."""
