"""Balancing across every worker of the host: least_conn and random_two read
the targets' in-flight counts in shared memory, so requests arriving on
different workers still spread by what is in flight host-wide."""

import threading
import time

import pytest

from conftest import make_config
from test_proxy import get


def config(targets, balance, workers=2):
    up = {"targets": [{"address": a} for a in targets], "balance": balance, "retries": 0}
    routes = [{"path": "/health/live", "builtin": "live"},
              {"prefix": "/", "upstream": "api"}]
    return make_config(workers=workers, routes=routes, extra={"upstreams": {"api": up}})


@pytest.mark.parametrize("balance", ["least_conn", "random_two"])
def test_in_flight_counts_are_shared_by_the_workers(phalanx_factory, upstream_factory, balance):
    a, b = upstream_factory("a"), upstream_factory("b")
    ph = phalanx_factory(config([a.address, b.address], balance))
    threads = []
    for _ in range(8):  # each on its own connection: both workers take part
        t = threading.Thread(target=get, args=(ph.port, "/delay?ms=1500"),
                             kwargs={"headers": {"Connection": "close"}})
        t.start()
        threads.append(t)
        time.sleep(0.05)  # each lands once the previous one is in flight
    for t in threads:
        t.join(10)
    counts = (a.stats()["by_path"].get("/delay", 0), b.stats()["by_path"].get("/delay", 0))
    assert sum(counts) == 8
    assert counts == (4, 4), counts


def test_backup_only_when_the_others_are_down(phalanx_factory, upstream_factory):
    a, backup = upstream_factory("a"), upstream_factory("backup")
    cfg = config([a.address, backup.address], "round_robin")
    cfg["upstreams"]["api"]["targets"][1]["backup"] = True
    ph = phalanx_factory(cfg)
    for _ in range(10):
        assert get(ph.port, "/echo")[0] == 200
    assert backup.stats()["requests"] == 0
    a.kill()
    statuses = [get(ph.port, "/echo")[0] for _ in range(20)]
    assert statuses[-5:] == [200] * 5  # once a's breaker opened, the backup serves
    assert backup.stats()["requests"] > 0
