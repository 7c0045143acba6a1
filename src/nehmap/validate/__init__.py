"""Clinical validation of NEH maps: perfusion (H1, H2) and recurrence (H3)."""
