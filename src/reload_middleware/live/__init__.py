"""Live browser reload: open pages reload themselves after a change."""
