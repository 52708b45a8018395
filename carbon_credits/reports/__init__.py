"""Report rollups, the participant sketch, partner reports and the MRV export."""
