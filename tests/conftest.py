"""Shared fakes for unit tests."""
