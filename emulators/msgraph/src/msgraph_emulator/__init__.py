"""msgraph_emulator."""
