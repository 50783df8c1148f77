"""Runnable servers and clients: ``python -m examples.NAME --help`` from the repo root."""
