"""``tcp_proxy --chaos-reset 1`` resets every connection, the short ones too.

A reset strikes once a random 0 to 16 KiB has been forwarded; a tunnel that ends sooner is
reset at its first FIN instead, so that fraction 1 means what a user reads: every connection.
"""

from __future__ import annotations

import pytest

from tests.processes import Launcher


@pytest.mark.parametrize("payload", [b"", b"hi\n"], ids=["no bytes", "three bytes"])
def test_chaos_reset_1_resets_a_connection_that_ends_before_any_budget(
        launch: Launcher, payload: bytes) -> None:
    echo = launch.server("echo_server")
    proxy = launch.proxy(echo.port, "--chaos-reset", "1", "--seed", "7")
    for _ in range(5):
        client = proxy.connect()
        # A budget under 3 bytes resets at "hi\n" itself, so the RST may meet the send or the
        # shutdown rather than the read: the test is that one of them meets it.
        with pytest.raises(ConnectionResetError):
            client.send(payload)
            client.shutdown_write()
            client.read_until_eof()
        client.close()
    proxy.stop_cleanly()
    echo.stop_cleanly()
