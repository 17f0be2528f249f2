"""Data out: the trial read as of a time, blinded and pseudonymised, into every export format."""
