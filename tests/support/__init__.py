"""Helpers shared by the test suites (real services only: DESIGN section 8)."""
