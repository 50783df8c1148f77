"""``--workers N``: several processes on one port with SO_REUSEPORT, run as a user runs them.

Which worker accepted a connection is read from the kernel: the server side of each connection
is a socket inode in ``/proc/net/tcp``, and ``/proc/PID/fd`` says which process holds it.
"""

from __future__ import annotations

import os
import signal
import socket
import time


from tests.processes import Client, Launcher, ServerProcess

#: Connections to open at most while waiting to see a second worker: with the kernel's hash
#: spreading them, the chance that 200 all land on one of two workers is about 2**-199.
MAX_PROBES = 200




def worker_pids(server: ServerProcess) -> set[int]:
    children = f"/proc/{server.pid}/task/{server.pid}/children"
    with open(children) as listing:
        return {int(pid) for pid in listing.read().split()}


def wait_for_workers(server: ServerProcess, count: int, timeout: float = 5.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        if len(pids) == count:
            return pids
        time.sleep(0.02)
    raise AssertionError(f"expected {count} workers, have {worker_pids(server)}")


def server_side_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the accepted socket whose peer is our client's port (IPv4 loopback)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for row in table:
            fields = row.split()
            local_port = int(fields[1].split(":")[1], 16)
            remote_port = int(fields[2].split(":")[1], 16)
            if local_port == server_port and remote_port == client_port:
                return int(fields[9])
    return None


def owner_of(inode: int, pids: set[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except FileNotFoundError:
                continue
    return None


def echo_once(client: Client, payload: bytes) -> None:
    client.send(payload + b"\n")
    assert client.read_line() == payload + b"\n"


def test_connections_land_on_more_than_one_worker_and_all_are_served(launch: Launcher) -> None:
    server = launch.server("echo_server", "--workers", "2")
    pids = wait_for_workers(server, 2)
    owners: set[int] = set()
    clients = []
    for probe in range(MAX_PROBES):
        client = server.connect()
        clients.append(client)
        echo_once(client, b"probe %d" % probe)  # accepted and served: the inode exists
        inode = server_side_inode(server.port, client.sock.getsockname()[1])
        assert inode is not None
        owner = owner_of(inode, pids)
        assert owner in pids
        owners.add(owner)
        if len(owners) == 2 and probe >= 9:
            break
    assert owners == pids
    for client in clients:
        echo_once(client, b"still served")
        client.close()
    server.stop_cleanly()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids), "a worker outlived us"


def test_sigint_stops_every_worker_and_the_parent_exits_0(launch: Launcher) -> None:
    server = launch.server("uppercase_server", "--workers", "3")
    pids = wait_for_workers(server, 3)
    client = server.connect()
    client.send(b"hello\n")
    assert client.read_line() == b"HELLO\n"
    server.send_signal(signal.SIGINT)
    client.expect_eof()
    assert server.wait() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived the parent"
    server.assert_no_traceback()
    client.close()


def test_a_killed_worker_is_logged_and_replaced(launch: Launcher) -> None:
    server = launch.server("echo_server", "--workers", "2", "--log-level", "info")
    pids = wait_for_workers(server, 2)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = worker_pids(server)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.02)
    replacement = worker_pids(server) - pids
    assert len(replacement) == 1, worker_pids(server)
    client = server.connect()
    echo_once(client, b"after the crash")
    client.close()
    server.stop_cleanly()
    assert f"(pid {victim}) exited with status killed by SIGKILL; restarting it" in server.stderr()


def test_workers_share_one_announced_port_even_with_port_0(launch: Launcher) -> None:
    server = launch.server("echo_server", "--workers", "2", "--port", "0")
    assert server.first_line == f"listening on 127.0.0.1:{server.port}"
    assert server.port != 0
    wait_for_workers(server, 2)
    probe = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    probe.close()
    server.stop_cleanly()


def test_port_in_use_with_workers_is_one_line_and_status_2(launch: Launcher) -> None:
    holder = launch.server("echo_server")  # no SO_REUSEPORT: the port is truly taken
    taken = launch.start_server("echo_server", "--workers", "2", "--port", str(holder.port))
    assert taken.wait() == 2
    lines = taken.stderr().strip().splitlines()
    assert len(lines) == 1 and str(holder.port) in lines[0] and "in use" in lines[0]
    holder.stop_cleanly()


def test_chat_server_refuses_workers_without_redis_to_share_its_room(launch: Launcher) -> None:
    result = launch.run("chat_server", "--workers", "2")
    assert result.returncode == 2
    assert b"--workers needs --redis" in result.stderr
