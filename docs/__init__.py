"""Documentation, and the code it shows (docs/tutorial), importable so that tests can run it."""
