"""Run an agent command in a network namespace of its own with only loopback (test support).

    python tests/netns_agent.py --log FILE --forward PORT=SOCKET ... -- agent argv...

re-executes itself under `unshare -n` (plus `-r` when not root), brings `lo` up, and then:

* forwards each TCP port 127.0.0.1:PORT inside the namespace to a Unix socket SOCKET,
  which the test serves outside (`UnixRelay`): the namespaces share the file system, not
  the network, so the sandbox GitHub and the scripted model are reachable, nothing else;
* makes every other IPv4 address local (`ip route add local default dev lo`) and listens
  on port 53 (UDP and TCP), 80 and 443: any DNS lookup (the resolver in /etc/resolv.conf
  is now local too) or web connection the agent attempts lands there and is written to
  the log as one JSON line, then refused;
* runs the agent command (same process group, so the conductor's timeouts stop it), and
  exits with its status.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

UNSHARED = "CONDUCTOR_TEST_NETNS_INSIDE"


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _splice(client: socket.socket, upstream: socket.socket) -> None:
    threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()


class UnixRelay:
    """Outside the namespace: a Unix socket that forwards to 127.0.0.1:`port`."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = Path(path), port
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self._sock.listen(64)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"relay-{port}")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            _splice(client, upstream)

    def close(self) -> None:
        self._stop = True
        self._sock.close()
        self.path.unlink(missing_ok=True)


# ── inside the namespace ─────────────────────────────────────────────────────


class _Log:
    def __init__(self, path: Path) -> None:
        self._path, self._lock = path, threading.Lock()

    def write(self, **event: object) -> None:
        with self._lock, self._path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"t": round(time.time(), 3), **event}) + "\n")


def _dns_name(packet: bytes) -> str:
    labels, i = [], 12
    while i < len(packet) and packet[i]:
        n = packet[i]
        labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += n + 1
    return ".".join(labels)


def _watch_udp_dns(log: _Log) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    while True:
        packet, peer = sock.recvfrom(4096)
        log.write(kind="dns", name=_dns_name(packet), via="udp")
        if len(packet) >= 12:  # answer "refused" so the resolver gives up at once
            sock.sendto(packet[:2] + b"\x81\x85" + packet[4:6] + b"\x00\x00" * 3 + packet[12:], peer)


def _watch_tcp(port: int, log: _Log) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(64)
    while True:
        conn, _ = sock.accept()
        host, dport = conn.getsockname()[:2]
        if port == 53:
            data = conn.recv(4096)
            log.write(kind="dns", name=_dns_name(data[2:]), via="tcp")
        else:
            log.write(kind="connect", address=f"{host}:{dport}")
        conn.close()


def _forward(port: int, target: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)

    def serve() -> None:
        while True:
            client, _ = sock.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(target)
            except OSError:
                client.close()
                continue
            _splice(client, upstream)

    threading.Thread(target=serve, daemon=True, name=f"forward-{port}").start()


def _inside(args: argparse.Namespace) -> int:
    log = _Log(Path(args.log))
    for command in (["ip", "link", "set", "lo", "up"],
                    ["ip", "route", "add", "local", "default", "dev", "lo", "table", "local"]):
        subprocess.run(command, check=True)
    forwarded = set()
    for spec in args.forward:
        port, target = spec.split("=", 1)
        _forward(int(port), target)
        forwarded.add(int(port))
    threading.Thread(target=_watch_udp_dns, args=(log,), daemon=True).start()
    for port in {53, 80, 443} - forwarded:  # a forwarded 443 is the sandbox on https
        threading.Thread(target=_watch_tcp, args=(port, log), daemon=True).start()
    log.write(kind="ready", interfaces=sorted(name for _, name in socket.if_nameindex()))
    env = {k: v for k, v in os.environ.items() if k != UNSHARED}
    proc = subprocess.Popen(args.argv, env=env)
    try:
        return proc.wait()
    finally:
        log.write(kind="exit", status=proc.returncode)


def command_prefix(log: Path, forwards: dict[int, Path]) -> list[str]:
    """The argv to put before an agent command to run it in its own namespace."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--log", str(log)]
    for port, path in forwards.items():
        argv += ["--forward", f"{port}={path}"]
    return [*argv, "--"]


def available() -> str | None:
    """None when a loopback-only namespace can be made here, else why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) is not installed"
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    probe = subprocess.run(["unshare", *flags, "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()[:200]}"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--forward", action="append", default=[])
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.argv and args.argv[0] == "--":
        args.argv = args.argv[1:]
    if os.environ.get(UNSHARED) == "1":
        return _inside(args)
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    os.environ[UNSHARED] = "1"
    os.execvp("unshare", ["unshare", *flags, "--", sys.executable, str(Path(__file__).resolve()), *argv])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
