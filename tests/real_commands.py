"""The real programs some tests start (redis-server, openssl, valgrind): found, or skipped.

One rule for all of them: without the program a test skips on a developer's machine, but under
CI (``CI`` set, as ``.ci/run`` sets it after installing every one of them) a missing program is
a failure, so a test that must run can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_command(name: str, needed_for: str, install: str) -> str:
    """The path of ``name``; skip (or, under CI, fail) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI is set: {needed_for} must run "
                        f"(.ci/run installs it: {install})")
        pytest.skip(f"{name} is not installed ({install})")
    return path
