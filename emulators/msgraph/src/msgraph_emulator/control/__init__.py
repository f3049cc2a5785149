"""Emulator-only control API under ``/_emulator``: what users and Microsoft do behind the scenes."""
