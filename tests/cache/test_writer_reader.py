"""Writer and reader semantics, the same on every embedded backend (memory://, lmdb://)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from shipyard import cache
from shipyard.cache import codec, namespaces, signing
from shipyard.cache.backends import memory, open_backend
from shipyard.cache.namespaces import encode_key
from shipyard.cache.reader import SETTINGS_SECONDS
from support.clock import Clock


@dataclass
class Row:
    titles: list[str]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def publish(url: str, values: dict[str, object], ns: str = "home-rows", **kw: object) -> str:
    with cache.writer(ns, url=url, **kw) as w:  # type: ignore[arg-type]
        w.put_many(values)
    assert w.info is not None
    return w.info.version


def test_put_commit_get(url: str) -> None:
    w = cache.writer("home-rows", url=url, meta={"run": "F/1"})
    w.put("p1", ["t1", "t2"])
    w.put_many({"p2": {"a": 1}, "p3": Row(["x"])})
    assert w.put_many([("p4", None), ("p5", b"raw")]) == 2
    info = w.commit()
    values = {"p1": ["t1", "t2"], "p2": {"a": 1}, "p3": Row(["x"]), "p4": None, "p5": b"raw"}
    size = sum(len(encode_key("home-rows", k)) + len(codec.encode(v)) for k, v in values.items())
    assert info.keys == 5 and info.published_at is not None
    assert info.meta == {"run": "F/1", "bytes": size}  # the writer measured what it stored
    r = cache.reader("home-rows", url=url)
    assert r.version == info.version
    assert r.get("p1") == ["t1", "t2"]
    assert r.get("p3") == Row(["x"])
    assert r.get("p4", default="d") is None  # a stored None is a value, not a miss
    assert r.get("nope") is None and r.get("nope", default=[]) == []
    assert r.get_many(["p1", "nope", "p5"]) == {"p1": ["t1", "t2"], "p5": b"raw"}
    assert r.get_many(["p2", "nope"], default=0) == {"p2": {"a": 1}, "nope": 0}


def test_nothing_is_visible_before_commit_and_an_error_aborts(url: str) -> None:
    first = publish(url, {"p1": "old", "p2": "old"})
    r = cache.reader("home-rows", url=url, refresh_seconds=0)
    w = cache.writer("home-rows", url=url)
    w.put_many({"p1": "new", "p3": "new"})
    assert r.get("p1") == "old" and r.get("p3") is None and r.version == first
    w.commit()
    assert r.get("p1") == "new" and r.get("p2") is None and r.get("p3") == "new"

    live = r.version
    with pytest.raises(RuntimeError, match="scoring broke"):
        with cache.writer("home-rows", url=url) as broken:
            broken.put("p1", "broken")
            raise RuntimeError("scoring broke")
    assert r.get("p1") == "new" and r.version == live
    versions = [v.version for v in open_backend(url).versions("home-rows")]
    assert broken.version not in versions  # aborted versions are dropped
    with pytest.raises(cache.CacheError, match="already aborted"):
        broken.put("p1", "x")


def test_a_running_reader_picks_up_a_new_version_and_reads_one_version_between_checks(
    url: str,
) -> None:
    publish(url, {"a": 1, "b": 1})
    r = cache.reader("home-rows", url=url, refresh_seconds=3600)
    assert r.get_many(["a", "b"]) == {"a": 1, "b": 1}
    publish(url, {"a": 2, "b": 2})
    assert r.get_many(["a", "b"]) == {"a": 1, "b": 1}  # consistent until the next check
    r.refresh()
    assert r.get_many(["a", "b"]) == {"a": 2, "b": 2}

    clock = Clock()
    timed = cache.reader("home-rows", url=url, refresh_seconds=5, clock=clock)
    assert timed.get("a") == 2
    publish(url, {"a": 3, "b": 3})
    clock.advance(4.9)
    assert timed.get("a") == 2  # not yet time to check
    clock.advance(0.1)
    assert timed.get("a") == 3  # checked, and the new version read


def test_lru_never_serves_a_stale_version(url: str) -> None:
    publish(url, {"p1": "v1"})
    r = cache.reader("home-rows", url=url, lru=2, refresh_seconds=0)
    hits = sample("shipyard_cache_hits_total", namespace="home-rows")
    assert r.get("p1") == "v1" and r.get("p1") == "v1" and r.get("zz") is None
    assert r.get("zz", default="d") == "d"  # a cached miss still honours the default
    assert sample("shipyard_cache_hits_total", namespace="home-rows") == hits + 2
    publish(url, {"p1": "v2", "zz": "now"})
    assert r.get("p1") == "v2" and r.get("zz") == "now"
    for key in ("a", "b", "c"):
        r.get(key)
    assert len(r._lru) == 2  # bounded


def test_keep_drops_old_versions_but_never_the_live_one(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(namespaces, "DROP_GRACE_SECONDS", 0.0)
    backend = open_backend(url)
    made = [publish(url, {"k": i}, keep=2) for i in range(5)]
    assert [v.version for v in backend.versions("home-rows")] == made[-2:]
    cache.rollback("home-rows", url=url)
    assert backend.live("home-rows") == made[-2]
    # default keep (3) from here; the rolled-back-to version stays while it is live
    cache.configure("home-rows", keep=1, url=url)
    newer = publish(url, {"k": 99})
    kept = [v.version for v in backend.versions("home-rows")]
    assert newer in kept and made[-2] in kept  # made[-2] was live a moment ago: grace
    publish(url, {"k": 100})
    assert len(backend.versions("home-rows")) == 2


def test_dropping_waits_for_readers_to_move_on(url: str) -> None:
    made = [publish(url, {"k": i}, keep=1) for i in range(3)]
    # within DROP_GRACE_SECONDS of being superseded nothing is dropped
    assert [v.version for v in open_backend(url).versions("home-rows")] == made


def test_rollback(url: str) -> None:
    with pytest.raises(cache.CacheError, match="no live version"):
        cache.rollback("home-rows", url=url)
    v1 = publish(url, {"p": "one"})
    with pytest.raises(cache.CacheError, match="no published version before"):
        cache.rollback("home-rows", url=url)
    publish(url, {"p": "two"})
    r = cache.reader("home-rows", url=url, refresh_seconds=0)
    assert r.get("p") == "two"
    assert cache.rollback("home-rows", url=url).version == v1
    assert r.get("p") == "one" and r.version == v1
    unpublished = cache.writer("home-rows", url=url)
    with pytest.raises(cache.CacheError, match="never published"):
        open_backend(url).set_live("home-rows", unpublished.version)


def test_freshness_alarm_flags_but_never_expires(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ns = "fresh-rows"
    publish(url, {"p": 1}, ns=ns)
    settings = cache.configure(ns, keep=5, max_age="6h", url=url)
    assert settings == cache.NamespaceSettings(keep=5, max_age=6 * 3600.0)
    clock, wall = Clock(), Clock(time.time())
    r = cache.reader(ns, url=url, refresh_seconds=0, clock=clock, wall=wall)
    assert r.get("p") == 1
    assert sample("shipyard_cache_stale", namespace=ns) == 0
    cache.configure(ns, max_age="1h", url=url)  # keep stays 5
    wall.advance(3600 + 1)
    assert r.get("p") == 1
    assert sample("shipyard_cache_stale", namespace=ns) == 0  # settings not re-read yet
    clock.advance(SETTINGS_SECONDS)
    with caplog.at_level(logging.WARNING, logger="shipyard.cache"):
        assert r.get("p") == 1  # still served
    assert sample("shipyard_cache_stale", namespace=ns) == 1
    assert any("stale" in m for m in caplog.messages)
    backend = open_backend(url)
    assert namespaces.read_settings(backend, ns) == cache.NamespaceSettings(5, 3600.0)
    assert "_settings." + ns not in cache.admin.user_namespaces(backend)
    publish(url, {"p": 2}, ns=ns)
    wall.now = time.time()  # the moment the new version was published
    assert r.get("p") == 2
    assert sample("shipyard_cache_stale", namespace=ns) == 0
    assert cache.configure(ns, max_age="off", url=url).max_age is None


def test_an_unavailable_backend_returns_the_default_unless_strict() -> None:
    url = "memory://outage"
    publish(url, {"p": "row"})
    r = cache.reader("home-rows", url=url, refresh_seconds=0)
    strict = cache.reader("home-rows", url=url, refresh_seconds=0, strict=True)
    assert r.get("p") == "row" and strict.get("p") == "row"
    before = sample(
        "shipyard_cache_defaults_served_total", namespace="home-rows", reason="unavailable"
    )
    memory.set_available("outage", False)
    try:
        assert r.get("p", default="popular") == "popular"
        assert r.get_many(["p", "q"], default=0) == {"p": 0, "q": 0}
        assert r.get_many(["p"]) == {}
        with pytest.raises(cache.BackendUnavailable):
            strict.get("p")
    finally:
        memory.set_available("outage", True)
        memory.reset("outage")
    after = sample(
        "shipyard_cache_defaults_served_total", namespace="home-rows", reason="unavailable"
    )
    assert after == before + 5  # strict readers count too


def test_no_published_version_yet(url: str) -> None:
    r = cache.reader("empty-ns", url=url)
    assert r.get("p", default="d") == "d" and r.version is None
    with pytest.raises(cache.CacheError, match="no published version"):
        cache.reader("empty-ns", url=url, strict=True).get("p")


def test_a_tampered_value_is_an_error_naming_namespace_and_key(url: str) -> None:
    version = publish(url, {"ok": 1})
    backend = open_backend(url)
    w = cache.writer("home-rows", url=url)
    evil = codec.PICKLE + signing.signer().key_id + b"\0" * 64 + b"cos\nsystem\n(S'true'\ntR."
    w.backend.put_many("home-rows", w.version, [(b"p1", evil)])
    w.commit()
    assert backend.live("home-rows") != version
    where = f"namespace 'home-rows', version {w.version}, key 'p1'"
    with pytest.raises(cache.UntrustedValue, match=where):
        cache.reader("home-rows", url=url).get("p1")


def test_bad_names_keys_and_urls(url: str) -> None:
    for bad in ("", "Home", "1abc", "a/b", "_settings.x", "a" * 64):
        with pytest.raises(cache.InvalidName, match="bad cache namespace"):
            cache.writer(bad, url=url)
    w = cache.writer("ok", url=url)
    with pytest.raises(cache.InvalidName, match="keys are str"):
        w.put(1, "x")  # type: ignore[arg-type]
    with pytest.raises(cache.InvalidName, match="NUL"):
        w.put("\0part", "x")
    with pytest.raises(cache.InvalidName, match="keep"):
        cache.writer("ok", url=url, keep=0)
    with pytest.raises(cache.InvalidName, match="max_age"):
        cache.configure("ok", max_age="soon", url=url)
    with pytest.raises(cache.CacheError, match="unknown cache URL 'ftp://x'"):
        cache.reader("ok", url="ftp://x")
