"""What a Ray's processes listen on: the proof that a loopback Ray stays on loopback.

Ray has many listening ports, and a new one or a changed default would open the machine
without a word: ``raymesh up`` lists the TCP ports its head's processes (and their
descendants: workers, agents) listen on, and warns about any beyond loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

__all__ = ["Listener", "exposed_listeners", "listeners"]


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket of a process."""

    pid: int
    process: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        """True if only this machine can reach it (127.0.0.0/8, ::1, ::ffff:127.x.x.x)."""
        ip = ipaddress.ip_address(self.address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback

    def __str__(self) -> str:
        return f"{self.process} (pid {self.pid}) listens on {self.address} port {self.port}"


def _tree(pids: Iterable[int]) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                found.setdefault(proc.pid, proc)
        except psutil.Error:  # gone since it was listed
            continue
    return list(found.values())


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Return the listening TCP sockets of `pids` and all their descendants."""
    found: list[Listener] = []
    for proc in _tree(pids):
        try:
            name = proc.name()
            sockets = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        found += [
            Listener(pid=proc.pid, process=name, address=s.laddr.ip, port=s.laddr.port)
            for s in sockets
            if s.status == psutil.CONN_LISTEN
        ]
    return sorted(found, key=lambda s: (s.pid, s.port, s.address))


def exposed_listeners(pids: Iterable[int]) -> list[Listener]:
    """Return the sockets of `listeners` that another machine could reach."""
    return [s for s in listeners(pids) if not s.loopback]
