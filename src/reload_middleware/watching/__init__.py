"""What changed? File events, the files tracked, and when they were read."""
