"""Test-only helpers that are neither fakes nor fixtures: kept out of the shipped packages."""
