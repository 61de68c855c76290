"""Token buckets and the rate limiter: per route vs per key, Retry-After, token reservations
settled against the upstream's usage, fallbacks, reloads. A hand-moved clock, no sleeping."""

from __future__ import annotations

import math

import pytest

from shipyard.gateway import ConfigError
from shipyard.gateway.limits import (
    LimitsError,
    RateLimiter,
    TokenBucket,
    parse_limits,
)
from support.clock import Clock


def test_bucket_refills_continuously_up_to_its_capacity(clock: Clock) -> None:
    bucket = TokenBucket(60, 60.0, clock)  # 1 per second
    bucket.take(60)
    assert bucket.refill() == 0
    clock.advance(15)
    assert bucket.refill() == pytest.approx(15)
    assert bucket.wait(20) == pytest.approx(5)
    clock.advance(3600)
    assert bucket.refill() == 60  # never above capacity
    bucket.take(100)  # a debt
    assert bucket.wait(1) == pytest.approx(41)
    assert bucket.wait(1000) == pytest.approx(100)  # more than capacity only needs a full bucket


def test_requests_per_minute_per_route_counts_every_key(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"requests_per_minute": 3})
    assert [limiter.admit("chat", k, limits, estimated_tokens=0) for k in (1, 2, 3)] == [None] * 3
    refusal = limiter.admit("chat", 4, limits, estimated_tokens=0)
    assert refusal is not None and refusal.reason == "route_requests_per_minute"
    assert refusal.retry_after == pytest.approx(20)  # one request refills in 60/3 s
    assert "3 requests per minute for this route" in refusal.message
    assert "retry after 20 s" in refusal.message
    clock.advance(19.9)
    assert limiter.admit("chat", 4, limits, estimated_tokens=0) is not None
    clock.advance(0.1)
    assert limiter.admit("chat", 4, limits, estimated_tokens=0) is None
    # another route is not affected
    assert limiter.admit("other", 4, limits, estimated_tokens=0) is None


def test_per_key_limits_are_separate_per_key_and_per_route(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"per_key": {"requests_per_minute": 2}})
    for _ in range(2):
        assert limiter.admit("chat", 1, limits, estimated_tokens=0) is None
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=0)
    assert refusal is not None and refusal.reason == "key_requests_per_minute"
    assert refusal.retry_after == pytest.approx(30)
    assert "this key on this route" in refusal.message
    assert limiter.admit("chat", 2, limits, estimated_tokens=0) is None  # another key
    assert limiter.admit("embed", 1, limits, estimated_tokens=0) is None  # another route


def test_a_refused_request_takes_nothing_and_reports_the_longest_wait(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits(
        "chat",
        {
            "requests_per_minute": 100,
            "per_key": {"requests_per_minute": 1, "tokens_per_minute": 600},
        },
    )
    assert limiter.admit("chat", 1, limits, estimated_tokens=600) is None
    route_level = limiter.level("route_requests_per_minute", "chat")
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=600)
    assert refusal is not None
    # the request bucket needs 60 s, the token bucket 60 s for 600 tokens: the longest wins
    assert refusal.retry_after == pytest.approx(60)
    assert limiter.level("route_requests_per_minute", "chat") == route_level  # nothing taken
    clock.advance(30)
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=100)
    assert refusal is not None and refusal.reason == "key_requests_per_minute"
    assert math.isclose(refusal.retry_after, 30)


def test_tokens_are_reserved_then_settled_with_the_real_count(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"tokens_per_minute": 1000})
    assert limiter.admit("chat", 1, limits, estimated_tokens=800) is None
    assert limiter.level("route_tokens_per_minute", "chat") == pytest.approx(200)
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=300)
    assert refusal is not None and refusal.reason == "route_tokens_per_minute"
    assert refusal.retry_after == pytest.approx(100 / (1000 / 60))
    # the answer was smaller than the estimate: the difference comes back at once
    assert limiter.settle("chat", 1, 150) == 150
    assert limiter.level("route_tokens_per_minute", "chat") == pytest.approx(850)
    assert limiter.admit("chat", 1, limits, estimated_tokens=300) is None
    # larger than the estimate: the bucket goes into debt and refuses until it refills
    assert limiter.settle("chat", 1, 2000) == 2000
    assert limiter.level("route_tokens_per_minute", "chat") == pytest.approx(550 - 1700)
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=1)
    assert refusal is not None and refusal.retry_after == pytest.approx(1151 / (1000 / 60))


def test_settle_without_usage_keeps_the_estimate(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"per_key": {"tokens_per_minute": 1000}})
    assert limiter.admit("chat", 1, limits, estimated_tokens=400) is None
    assert limiter.settle("chat", 1, None) == 400
    assert limiter.level("key_tokens_per_minute", "chat", 1) == pytest.approx(600)
    assert limiter.in_flight(1) == 0


def test_a_fallback_route_takes_the_charge(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"tokens_per_minute": 1000})
    assert limiter.admit("chat", 1, limits, estimated_tokens=500) is None
    assert limiter.admit("local", 1, limits, estimated_tokens=0) is None  # creates its bucket
    limiter.settle("local", 1, 0)
    assert limiter.settle("local", 1, 300) == 300  # the primary failed, the fallback answered
    assert limiter.level("route_tokens_per_minute", "chat") == pytest.approx(1000)
    assert limiter.level("route_tokens_per_minute", "local") == pytest.approx(700)
    assert limiter.in_flight(1) == 0


def test_an_estimate_above_the_whole_minute_passes_on_a_full_bucket(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"tokens_per_minute": 100})
    assert limiter.admit("chat", 1, limits, estimated_tokens=5000) is None
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=1)
    assert refusal is not None


def test_day_limits_refill_over_a_day(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", {"per_key": {"requests_per_day": 2}})
    assert limiter.admit("chat", 1, limits, estimated_tokens=0) is None
    assert limiter.admit("chat", 1, limits, estimated_tokens=0) is None
    refusal = limiter.admit("chat", 1, limits, estimated_tokens=0)
    assert refusal is not None and refusal.reason == "key_requests_per_day"
    assert refusal.retry_after == pytest.approx(43200)
    assert "per day" in refusal.message


def test_a_reload_resizes_buckets(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    small = parse_limits("chat", {"requests_per_minute": 1})
    assert limiter.admit("chat", 1, small, estimated_tokens=0) is None
    assert limiter.admit("chat", 1, small, estimated_tokens=0) is not None
    large = parse_limits("chat", {"requests_per_minute": 600})
    refusal = limiter.admit("chat", 1, large, estimated_tokens=0)  # the level is kept...
    assert refusal is not None and refusal.retry_after == pytest.approx(0.1)  # ...refilling 10/s
    clock.advance(0.1)
    assert limiter.admit("chat", 1, large, estimated_tokens=0) is None
    clock.advance(3600)
    assert limiter.level("route_requests_per_minute", "chat") == 600
    assert limiter.admit("chat", 1, small, estimated_tokens=0) is None  # shrunk back to 1
    assert limiter.level("route_requests_per_minute", "chat") == 0


def test_no_limits_admits_everything(clock: Clock) -> None:
    limiter = RateLimiter(clock)
    limits = parse_limits("chat", None)
    assert limits.empty
    assert all(limiter.admit("chat", 1, limits, estimated_tokens=10**9) is None for _ in range(100))
    assert limiter.in_flight(1) == 100


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"requests_per_second": 5}, "unknown field 'requests_per_second' in limits"),
        ({"requests_per_minute": 0}, "limits.requests_per_minute is 0"),
        ({"per_key": {"tokens_per_minute": "lots"}}, "limits.per_key.tokens_per_minute is 'lots'"),
        ({"per_key": {"requests_per_minute": True}}, "is True"),
        ({"per_key": [1]}, "per_key must be a mapping"),
        ([1, 2], "limits must be a mapping"),
    ],
)
def test_bad_limits_name_the_route_and_the_field(raw: object, fragment: str) -> None:
    with pytest.raises(LimitsError) as info:
        parse_limits("chat", raw)  # type: ignore[arg-type]
    assert fragment in str(info.value) and "'chat'" in str(info.value)
    assert info.value.route == "chat"
    # one tree: a configuration error of the gateway, and a ValueError as it always was
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert str(info.value) == info.value.reason  # no file to name
