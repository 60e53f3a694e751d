"""The embedded Ray (`robust-edit sweep run` without RAY_ADDRESS) listens on loopback only:
no socket of any of its processes (GCS, raylet + object manager, dashboard and runtime-env
agents, metrics export, task/actor/Tune/Data workers, the driver) is bound to 0.0.0.0, ::
or the host's address."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from robust_edit.config import load_sweep
from robust_edit.pipeline.run import init_ray

REPO = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])  # drop an IPv6 zone
    return (getattr(addr, "ipv4_mapped", None) or addr).is_loopback  # ::ffff:127.0.0.1 too


def ray_sockets(root: int, tmpdir: str) -> set[tuple[str, str, int]]:
    """(process, ip, port) of every listening TCP and bound UDP socket of `root`'s process
    tree and of any process carrying its RAY_TMPDIR (a Ray process that left the tree)."""
    procs = {}
    try:
        top = psutil.Process(root)
        procs = {p.pid: p for p in (top, *top.children(recursive=True))}
    except psutil.NoSuchProcess:
        pass
    for p in psutil.process_iter():
        try:
            if p.pid not in procs and p.environ().get("RAY_TMPDIR") == tmpdir:
                procs[p.pid] = p
        except psutil.Error:  # gone, or not ours to read
            continue
    found = set()
    for p in procs.values():
        try:
            name = " ".join(p.cmdline())[:120] or p.name()
            for c in p.net_connections("inet"):
                if c.laddr and (c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM):
                    found.add((name, c.laddr.ip, c.laddr.port))
        except psutil.Error:
            continue
    return found


def exposed(found) -> list:
    return sorted(s for s in found if not _loopback(s[1]))


@pytest.fixture()
def ray_tmpdir(monkeypatch):
    # Short (Ray's socket paths have a length limit) and unique: it marks this test's Ray
    # processes apart from any other Ray on the machine.
    path = f"/tmp/rl-{os.getpid()}"
    monkeypatch.setenv("RAY_TMPDIR", path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_ray_binds_only_loopback(ray_tmpdir):
    import ray

    ray.shutdown()
    init_ray(load_sweep(TINY))
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1"

        @ray.remote(num_cpus=0)
        class Probe:
            def ip(self):
                return ray.util.get_node_ip_address()

        @ray.remote(num_cpus=0)
        def pid():
            return os.getpid()

        probe = Probe.remote()  # held: an actor process lives as long as its handle
        assert ray.get(probe.ip.remote()) == "127.0.0.1"
        ray.get([pid.remote() for _ in range(2)])
        found = ray_sockets(os.getpid(), ray_tmpdir)
        names = " ".join(s[0] for s in found)
        # The scan saw the processes it vouches for.
        for process in ("gcs_server", "raylet", "DashboardAgent", "RuntimeEnvAgent", "ray::Probe"):
            assert process in names, (process, sorted(found))
        node = ray._private.worker._global_node.address_info
        assert node["node_ip_address"] == "127.0.0.1" and node["gcs_address"].startswith("127.0.0.1:")
        ports = {s[2] for s in found}
        for key in ("metrics_export_port", "dashboard_agent_listen_port"):  # -1: not started
            assert node[key] in ports or node[key] < 0, (key, node[key], sorted(found))
        assert node["metrics_export_port"] > 0
        assert exposed(found) == [], "Ray sockets on a non-loopback address"
    finally:
        ray.shutdown()


# Slow (2 minutes: a whole sweep, sampled): the default suite checks the embedded Ray's
# listeners (test_embedded_ray_binds_only_loopback).
@pytest.mark.slow
def test_a_sweep_never_listens_beyond_loopback(ray_tmpdir, tmp_path):
    """Sampled through a whole tiny sweep: its edit tasks, Tune trials and Ray Data scorers."""
    raw = yaml.safe_load(TINY.read_text()) | {"storage": str(tmp_path / "out")}
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(raw))
    log = tmp_path / "sweep.log"
    with log.open("w") as out:  # a file, not a pipe: nobody reads while the sweep runs
        proc = subprocess.Popen([str(Path(sys.executable).parent / "robust-edit"), "sweep", "run",
                                 str(spec)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        found, deadline = set(), time.time() + 900
        while proc.poll() is None and time.time() < deadline:
            found |= ray_sockets(proc.pid, ray_tmpdir)
            time.sleep(0.5)
        if proc.poll() is None:  # past the deadline: the driver and its Ray with it
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == 0, log.read_text()[-3000:]
    names = " ".join(s[0] for s in found)
    # The scan saw the core, a task, a Tune trial and a Ray Data scorer.
    for process in ("gcs_server", "raylet", "ray::_task", "ray::ImplicitFunc", "ray::MapWorker"):
        assert process in names, (process, sorted(found))
    assert exposed(found) == [], "Ray sockets on a non-loopback address"
    assert Path(load_sweep(spec).storage, "results.duckdb").is_file()
