"""The HTTP API over real HTTP and a real Redis: answers, headers, batch, 4xx, readiness, metrics,
a version switch under load, and the warehouse answering when Redis is stopped or restarted."""

import http.client
import importlib.util
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

from data_platform.serving import publish
from data_platform.serving.config import ServingConfig
from data_platform.serving.metrics import MULTIPROC_ENV

_spec = importlib.util.spec_from_file_location("serving_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


@pytest.fixture
def warehouse_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    helpers.write_warehouse(url, helpers.make_recommendations(40, "wh"), helpers.make_popular("wh"), "m-wh")
    return url


@pytest.fixture(scope="module")
def warehouse_service(tmp_path_factory):
    """One service with no Redis for the many bad-input cases."""
    url = f"sqlite:///{tmp_path_factory.mktemp('wh') / 'warehouse.db'}"
    helpers.write_warehouse(url, helpers.make_recommendations(5, "wh"), helpers.make_popular("wh"), "m-wh")
    with helpers.Service(ServingConfig(warehouse_url=url)) as svc:
        yield svc


def config(redis_url, redis_prefix, warehouse_url, **overrides):
    return ServingConfig(redis_url=redis_url, redis_prefix=redis_prefix, warehouse_url=warehouse_url,
                         retry_interval_s=0.2, check_interval_s=0.2, **overrides)


def test_answers_from_the_cache_with_versions_in_headers(redis_url, redis_prefix, warehouse_url):
    client = redis.Redis.from_url(redis_url)
    result = publish.publish(client, helpers.make_recommendations(30, "m1"), helpers.make_popular("m1"),
                             model_version="m1", prefix=redis_prefix)
    with helpers.Service(config(redis_url, redis_prefix, warehouse_url)) as svc:
        status, headers, body = svc.request("GET", "/v1/recommendations/u4?n=3")
        assert status == 200
        assert headers["x-model-version"] == "m1" and headers["x-cache-version"] == result.cache_version
        assert body["source"] == "personalised" and body["personalised"] is True
        assert [(i["item_id"], i["rank"]) for i in body["items"]] == [("m1-i4-0", 1), ("m1-i4-1", 2), ("m1-i4-2", 3)]
        assert body["items"][0]["score"] == 1.0

        status, headers, body = svc.request("GET", "/v1/recommendations/newcomer")
        assert status == 200 and body["source"] == "popular" and not body["personalised"]
        assert [i["item_id"] for i in body["items"]] == [f"m1-p{k}" for k in range(10)]

        status, headers, body = svc.request("POST", "/v1/recommendations",
                                            {"user_ids": ["u1", "ghost", "u2"], "n": 2})
        assert status == 200 and body["model_version"] == "m1"
        assert [r["source"] for r in body["results"]] == ["personalised", "popular", "personalised"]
        assert [len(r["items"]) for r in body["results"]] == [2, 2, 2]
        assert body["results"][2]["items"][1]["item_id"] == "m1-i2-1"

        status, _, ready = svc.request("GET", "/readyz")
        assert status == 200 and ready["ready"] and ready["cache_version"] == result.cache_version
        assert ready["users"] == 30 and ready["model_version"] == "m1"
        assert svc.request("GET", "/healthz")[:2][0] == 200

        status, headers, text = svc.request("GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert 'dp_recommendation_cache_lookups_total{result="hit"} 3.0' in text
        assert 'dp_recommendation_cache_lookups_total{result="miss"} 2.0' in text
        assert 'dp_recommendation_fallbacks_total{reason="cold_user"} 2.0' in text
        assert 'dp_recommendation_request_seconds_count{endpoint="single",source="personalised"} 1.0' in text
        assert "dp_serving_ready 1.0" in text
    client.close()


@pytest.mark.parametrize("method, path, body, status, kind, words", [
    ("GET", "/v1/recommendations/u1?n=0", None, 400, "bad_request", "n must be from 1 to 100"),
    ("GET", "/v1/recommendations/u1?n=101", None, 400, "bad_request", "n must be from 1 to 100"),
    ("GET", "/v1/recommendations/u1?n=ten", None, 400, "bad_request", "n must be an integer"),
    ("GET", "/v1/recommendations/-u1", None, 400, "bad_request", "invalid user id"),
    ("GET", "/v1/recommendations/" + "x" * 65, None, 400, "bad_request", "invalid user id"),
    ("GET", "/v1/recommendations/a%20b", None, 400, "bad_request", "invalid user id"),
    ("GET", "/v1/recommendations", None, 405, "method_not_allowed", "GET is not allowed"),
    ("GET", "/v2/whatever", None, 404, "not_found", "no route /v2/whatever"),
    ("POST", "/v1/recommendations", {"user_ids": []}, 400, "bad_request", "1 to 100 ids"),
    ("POST", "/v1/recommendations", {"user_ids": [f"u{i}" for i in range(101)]}, 400, "bad_request", "got 101"),
    ("POST", "/v1/recommendations", {"user_ids": ["u1", 7]}, 400, "bad_request", "invalid user id 7"),
    ("POST", "/v1/recommendations", {"user_ids": ["u1"], "n": "3"}, 400, "bad_request", "n must be an integer"),
    ("POST", "/v1/recommendations", {"ids": ["u1"]}, 400, "bad_request", "list `user_ids`"),
    ("POST", "/v1/recommendations", b"{not json", 400, "bad_request", "must be JSON"),
])
def test_bad_input_gets_a_clear_4xx_json(warehouse_service, method, path, body, status, kind, words):
    raw = body if isinstance(body, bytes) else None
    got, headers, answer = warehouse_service.request(method, path, None if raw else body, raw=raw)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert answer["error"] == kind and words in answer["detail"]
    assert warehouse_service.request("GET", "/v1/recommendations/u1?n=1")[0] == 200


def test_no_redis_at_all_the_cli_service_answers_from_the_warehouse(warehouse_url, tmp_path):
    port = helpers.free_port()
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
           "DATA_PLATFORM_WAREHOUSE_URL": warehouse_url}
    proc = subprocess.Popen([sys.executable, "-m", "data_platform.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, ready = helpers.request(port, "GET", "/readyz")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.1)
        assert status == 200 and ready["cache"] == "none" and ready["warehouse"]["users"] == 40
        status, headers, body = helpers.request(port, "GET", "/v1/recommendations/u5?n=4")
        assert status == 200 and body["source"] == "database" and body["personalised"]
        assert headers["x-model-version"] == "m-wh" and headers["x-recommendation-source"] == "database"
        assert [i["item_id"] for i in body["items"]] == [f"wh-i5-{k}" for k in range(4)]
        status, _, body = helpers.request(port, "GET", "/v1/recommendations/stranger?n=2")
        assert status == 200 and body["source"] == "database" and not body["personalised"]
        assert [i["item_id"] for i in body["items"]] == ["wh-p0", "wh-p1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _served_count(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dp_recommendation_request_seconds_count{"))


def _served_per_worker(samples: Path) -> dict[str, float]:
    """Requests counted by each worker, from its own sample file alone."""
    import shutil

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    out = {}
    for histogram in samples.glob("histogram_*.db"):
        alone = Path(tempfile.mkdtemp(dir=samples.parent))
        shutil.copy(histogram, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        out[histogram.stem] = sum(s.value for m in registry.collect() for s in m.samples
                                  if s.name == "dp_recommendation_request_seconds_count")
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="counts worker processes through /proc (Linux)")
def test_several_workers_answer_and_metrics_add_up_across_them(warehouse_url, tmp_path):
    port = helpers.free_port()
    samples = tmp_path / "metrics"
    samples.mkdir()
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path),
           "DATA_PLATFORM_WAREHOUSE_URL": warehouse_url, MULTIPROC_ENV: str(samples)}
    proc = subprocess.Popen([sys.executable, "-m", "data_platform.cli", "serve", "--port", str(port),
                             "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if helpers.request(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        # The spawned workers are the serving processes (plus multiprocessing's own helper).
        assert len(_children(proc.pid)) >= 2
        # A new connection each: the kernel spreads them over the workers once both are up
        # (the second may still be starting when the first answers /readyz).
        made, per_worker = 0, {}
        while made < 60 or sum(1 for n in per_worker.values() if n > 0) < 2:
            assert made < 2000, per_worker
            status, _, body = helpers.request(port, "GET", f"/v1/recommendations/u{made % 40}?n=3")
            assert status == 200 and body["source"] == "database"
            made += 1
            if made % 20 == 0:
                per_worker = _served_per_worker(samples)
        # Any worker's /metrics adds up every worker's samples; each worker's own add up too.
        counts = {_served_count(helpers.request(port, "GET", "/metrics")[2]) for _ in range(6)}
        assert counts == {float(made)}, (counts, made)
        assert sum(_served_per_worker(samples).values()) == made
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _hammer(port: int, stop: threading.Event, seen: list, problems: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    k = 0
    while not stop.is_set():
        k += 1
        if k % 4:
            status, headers, body = helpers.request(port, "GET", f"/v1/recommendations/u{k % 60}", conn=conn)
            results = [body] if status == 200 else []
        else:
            ids = [f"u{(k + j) % 60}" for j in range(20)] + ["cold-one"]
            status, headers, body = helpers.request(port, "POST", "/v1/recommendations", {"user_ids": ids}, conn=conn)
            results = body.get("results", []) if status == 200 else []
        if status != 200:
            problems.append((status, body))
            continue
        version = headers["x-model-version"]
        seen.append(version)
        for result in results:
            # Item ids carry the version they were published with: one version per response.
            tags = {item["item_id"].split("-")[0] for item in result["items"]}
            if tags != {version}:
                problems.append((version, tags))
    conn.close()


def test_version_switch_under_load_no_5xx_and_no_mixed_response(redis_url, redis_prefix, warehouse_url):
    client = redis.Redis.from_url(redis_url)
    publish.publish(client, helpers.make_recommendations(60, "m0"), helpers.make_popular("m0"),
                    model_version="m0", prefix=redis_prefix)
    with helpers.Service(config(redis_url, redis_prefix, warehouse_url)) as svc:
        stop, seen, problems = threading.Event(), [], []
        threads = [threading.Thread(target=_hammer, args=(svc.port, stop, seen, problems)) for _ in range(3)]
        for t in threads:
            t.start()
        for version in ("m1", "m2", "m3"):
            time.sleep(0.4)
            publish.publish(client, helpers.make_recommendations(60, version), helpers.make_popular(version),
                            model_version=version, prefix=redis_prefix, rollback_ttl_s=60)
        time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join()
    client.close()
    assert problems == []
    assert {"m0", "m3"} <= set(seen) and len(seen) > 100
    # Once switched, never back: each client's answers follow the publication order.
    assert seen.index("m3") > seen.index("m0")


def test_redis_stopped_mid_load_every_request_answered_then_recovers(own_redis, warehouse_url, tmp_path):
    client = redis.Redis.from_url(own_redis.url)
    publish.publish(client, helpers.make_recommendations(40, "m1"), helpers.make_popular("m1"),
                    model_version="m1", prefix="dp")
    with helpers.Service(config(own_redis.url, "dp", warehouse_url)) as svc:
        assert svc.request("GET", "/readyz")[0] == 200
        spec = tmp_path / "load.json"
        spec.write_text(json.dumps({
            "host": "127.0.0.1", "port": svc.port, "rate": 250, "duration": 3,
            "requests": [["GET", f"/v1/recommendations/u{k % 45}", None] for k in range(500)],
        }))
        loader = subprocess.Popen([sys.executable, "-m", "data_platform.bench.loadgen", str(spec)],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(1.2)
        own_redis.stop()
        out, _ = loader.communicate(timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["answered"] == result["requests"] == 750
        assert result["statuses"] == {"200": 750}
        assert result["sources"].get("personalised", 0) > 100 and result["sources"].get("database", 0) > 100
        # Latency during the outage is a benchmark figure (bench serving), not a timed test.

        status, _, ready = svc.request("GET", "/readyz")
        assert status == 503 and not ready["ready"] and ready["cache_state"] == "unreachable"
        assert ready["warehouse"]["loaded"]

        # Redis comes back empty (nothing is saved): not ready, still the warehouse...
        own_redis.start()
        time.sleep(0.5)
        status, _, ready = svc.request("GET", "/readyz")
        assert status == 503 and ready["cache_state"] == "not_ready"
        status, headers, body = svc.request("GET", "/v1/recommendations/u1")
        assert status == 200 and body["source"] == "database" and headers["x-model-version"] == "m-wh"
        # ...until a version is published again; then the service recovers by itself.
        client = redis.Redis.from_url(own_redis.url)
        publish.publish(client, helpers.make_recommendations(40, "m2"), helpers.make_popular("m2"),
                        model_version="m2", prefix="dp")
        client.close()
        time.sleep(0.5)
        status, _, ready = svc.request("GET", "/readyz")
        assert status == 200 and ready["model_version"] == "m2"
        status, headers, body = svc.request("GET", "/v1/recommendations/u1")
        assert body["source"] == "personalised" and headers["x-model-version"] == "m2"


def test_an_incomplete_version_is_never_served(redis_url, redis_prefix, warehouse_url):
    client = redis.Redis.from_url(redis_url)
    result = publish.publish(client, helpers.make_recommendations(30, "m1"), helpers.make_popular("m1"),
                             model_version="m1", prefix=redis_prefix)
    from data_platform.serving import layout

    client.hdel(layout.users_key(redis_prefix, result.cache_version), "u0", "u1")
    with helpers.Service(config(redis_url, redis_prefix, warehouse_url)) as svc:
        status, _, ready = svc.request("GET", "/readyz")
        assert status == 503 and "holds 28 users, its manifest says 30" in ready["detail"]
        status, headers, body = svc.request("GET", "/v1/recommendations/u5")
        assert status == 200 and body["source"] == "database" and headers["x-model-version"] == "m-wh"
    client.close()


def test_nothing_published_anywhere_is_503_not_500(tmp_path):
    empty = f"sqlite:///{tempfile.mkdtemp(dir=tmp_path)}/w.db"
    with helpers.Service(config(None, "unused", empty)) as svc:
        status, _, body = svc.request("GET", "/v1/recommendations/u1")
        assert status == 503 and "materialize the `recommendations` asset" in body["detail"]
        assert svc.request("GET", "/readyz")[0] == 503
