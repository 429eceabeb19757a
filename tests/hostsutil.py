"""Simulated hosts on one machine, for the cluster tests (needs root, as CI runs).

- :class:`Host`: processes started through ``unshare --uts`` with their own host name (so jug's file
  locks and jugnb's leases name that host), sharing this machine's filesystem, each in its own process
  group, so that :meth:`Host.kill` ends all of them at once with ``SIGKILL`` like a host that dies.
- :func:`private_network`: network namespaces joined by a bridge in a private /24 that nothing else uses; a
  password-protected ``redis-server`` runs inside the server namespace, bound to its namespace address,
  with its configuration (and password) on stdin. Hosts started with ``netns=`` reach it only there.

Everything is named with a ``l12`` prefix plus a random suffix, torn down by pid and by name, and every
wait has a timeout. No traffic ever leaves loopback or these namespaces (the bridge has no address in the
machine's own namespace).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TIMEOUT = 60.0
SUBNET = "10.212.12"  # private, chosen for these tests only
PASSWORD = "pw-l12-Hq8vN2"


def require_root() -> None:
    """Skip unless root with ``unshare`` and ``ip`` (CI runs as root and must have them)."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        if os.environ.get("CI"):
            pytest.fail(f"the cluster tests need root and {missing or 'unshare, ip'}")
        pytest.skip("simulated hosts need root, unshare and ip")


@dataclass
class Host:
    """One simulated host: a host name, optionally a network namespace, and the processes started on it."""

    name: str
    netns: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, args: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``args`` on this host (own process group), output appended to ``log``."""
        command = ["unshare", "--uts", "sh", "-c", f'hostname {self.name} && exec "$@"', "sh", *args]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def kill(self) -> None:
        """``SIGKILL`` every process group started on this host (the host dies)."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=TIMEOUT)

    def wait(self, timeout: float = TIMEOUT) -> list[int]:
        """Wait for every process started here; return their exit codes.

        Raises
        ------
        subprocess.TimeoutExpired
            After ``timeout`` seconds in all.
        """
        deadline = time.monotonic() + timeout
        return [proc.wait(timeout=max(0.1, deadline - time.monotonic())) for proc in self.procs]

    def alive(self) -> bool:
        """Whether a process group started here still has a member."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                continue
            if proc.poll() is None:
                return True
        return False


@contextlib.contextmanager
def hosts(*names: str, netns: dict[str, str] | None = None) -> Iterator[dict[str, Host]]:
    """Yield simulated hosts by name; every process group still alive at the end is killed."""
    made = {name: Host(name, (netns or {}).get(name)) for name in names}
    try:
        yield made
    finally:
        for host in made.values():
            host.kill()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=TIMEOUT, capture_output=True)


@dataclass
class Network:
    """Namespaces on a private bridge, with a redis server in ``server``."""

    tag: str
    server: str
    clients: list[str]
    address: str
    redis: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The jugdir for the namespace redis, password included (tests only: put it in a 0600 jugrc)."""
        return f"redis://:{PASSWORD}@{self.address}:6379/0"


@contextlib.contextmanager
def private_network(folder: Path, n_clients: int = 2) -> Iterator[Network]:
    """Create ``l12<tag>s`` (redis) and ``l12<tag>c<i>`` namespaces on bridge ``l12<tag>br``; yield them.

    Torn down in any case: redis by pid, then the namespaces and the bridge by name (veth pairs go with
    their namespace).
    """
    tag = secrets.token_hex(2)
    bridge = f"l12{tag}br"
    names = [f"l12{tag}s"] + [f"l12{tag}c{i}" for i in range(n_clients)]
    net = Network(tag, names[0], names[1:], f"{SUBNET}.1")
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for index, ns in enumerate(names, start=1):
            _ip("netns", "add", ns)
            outside, inside = f"l12{tag}v{index}", f"l12{tag}p{index}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET}.{index}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        net.redis = _start_redis(net, folder)
        yield net
    finally:
        if net.redis is not None:
            net.redis.terminate()
            try:
                net.redis.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                net.redis.kill()
                net.redis.wait(timeout=TIMEOUT)
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], timeout=TIMEOUT, capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], timeout=TIMEOUT, capture_output=True, check=False)


def _start_redis(net: Network, folder: Path) -> subprocess.Popen[bytes]:
    """Start redis-server inside the server namespace (config on stdin); wait until clients reach it."""
    config = (
        f'bind {net.address}\nport 6379\nrequirepass {PASSWORD}\nsave ""\nappendonly no\n'
        f"dir {folder}\nprotected-mode no\n"
    )
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = subprocess.Popen(
        ["ip", "netns", "exec", net.server, binary, "-"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert server.stdin is not None
    server.stdin.write(config.encode())
    server.stdin.close()
    deadline = time.monotonic() + TIMEOUT
    probe = ["ip", "netns", "exec", net.clients[0], "redis-cli", "-h", net.address]
    while True:
        answer = subprocess.run(
            [*probe, "ping"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            env={**os.environ, "REDISCLI_AUTH": PASSWORD},
        )
        if answer.stdout.strip() == "PONG":
            return server
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server in {net.server} did not start: {answer.stderr}")
        time.sleep(0.1)


def leftover_namespaces(tag: str) -> list[str]:
    """Namespaces with this network's prefix that still exist (none after teardown)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=TIMEOUT)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.startswith(f"l12{tag}")]
