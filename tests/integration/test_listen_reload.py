"""Listen addresses change by reload: new ones are bound (and checked free)
before anything changes, removed ones close once the old generation drained;
a taken port fails the reload and the old generation keeps serving."""

import copy
import socket

from conftest import (ctl, free_port, http_get, listening_inodes, rewrite_config, wait_until)


def refused(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_reload_adds_a_port_and_serves_on_it(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=2)
    old, new = ph.port, free_port()
    cfg = copy.deepcopy(ph.config)
    cfg["listen"] = [f"127.0.0.1:{old}", f"127.0.0.1:{new}"]
    rewrite_config(ph, cfg)
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 0, res.stderr
    for port in (old, new):
        for _ in range(6):
            assert http_get(port, "/").status == 200
    # One socket per slot on the new port, as on the old.
    assert len(listening_inodes(new)) == 2, listening_inodes(new)


def test_a_reload_removes_a_port_which_closes_after_the_drain(phalanx_factory, phalanxctl_bin):
    first, second = free_port(), free_port()
    ph = phalanx_factory(listen=[f"127.0.0.1:{first}", f"127.0.0.1:{second}"], workers=2)
    assert http_get(second, "/").status == 200
    cfg = copy.deepcopy(ph.config)
    cfg["listen"] = [f"127.0.0.1:{first}"]
    rewrite_config(ph, cfg)
    res = ctl(phalanxctl_bin, ph, "reload")
    assert res.returncode == 0, res.stderr
    wait_until(lambda: not any(w["state"] == "draining" for w in ph.status()["workers"]), 15,
               message="the old generation drained")
    wait_until(lambda: refused(second), 5, message=f"port {second} closed")
    assert not listening_inodes(second)
    assert http_get(first, "/").status == 200


def test_a_reload_that_adds_a_taken_port_fails_and_changes_nothing(phalanx_factory, phalanxctl_bin):
    ph = phalanx_factory(workers=2)
    before = ph.worker_pids()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(4)
    taken = holder.getsockname()[1]
    try:
        cfg = copy.deepcopy(ph.config)
        cfg["listen"] = [f"127.0.0.1:{ph.port}", f"127.0.0.1:{taken}"]
        rewrite_config(ph, cfg, remember=False)
        res = ctl(phalanxctl_bin, ph, "reload")
        assert res.returncode == 1, res.stdout
        assert f"127.0.0.1:{taken}" in res.stderr and "in use" in res.stderr, res.stderr
        st = ph.status()
        assert st["master"]["generation"] == 1 and f"127.0.0.1:{taken}" in \
            st["master"]["last_reload"]["error"], st["master"]
        assert ph.worker_pids() == before
        assert len(listening_inodes(taken)) == 1  # only the holder's
        ph.assert_serving()
    finally:
        holder.close()
