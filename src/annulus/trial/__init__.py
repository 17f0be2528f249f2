"""The trial itself: protocol versions in force and the trial's state."""
