"""Which requests count as poison: in flight at 2 worker crashes within 60 s, never answered
between them; refused for 10 minutes (on a hand-moved clock)."""

from __future__ import annotations

import hashlib

from shipyard.serve.poison import Digested, PoisonRequests, body_hasher
from support.clock import Clock

BAD = b'{"die": true}'
GOOD = b'{"die": null}'  # as long as BAD: the cheap length check cannot tell them apart


def test_a_request_in_flight_at_two_crashes_is_held_for_ten_minutes(clock: Clock) -> None:
    poison = PoisonRequests(clock=clock)
    assert not poison.holding and not poison.suspecting
    assert poison.crashed(1, "svc", "crash", BAD) is None
    assert poison.suspecting and not poison.holding
    clock.advance(30)
    held = poison.crashed(2, "svc", "crash", BAD)
    assert held is not None and poison.holding and poison.held_count() == 1
    assert held.digest == hashlib.sha256(b"svc/crash\n" + BAD).hexdigest()
    assert poison.refusal("svc", "crash", BAD) is held
    assert held.retry_after(clock()) == 600
    assert "svc/crash" in held.message(clock()) and "600 s" in held.message(clock())
    # the same endpoint with another body, and the same body elsewhere, are not held
    assert poison.refusal("svc", "crash", GOOD) is None
    assert poison.refusal("svc", "other", BAD) is None
    assert poison.refusal("other", "crash", BAD) is None
    clock.advance(599)
    assert poison.refusal("svc", "crash", BAD) is held
    clock.advance(1)
    assert poison.held_count() == 0
    assert poison.refusal("svc", "crash", BAD) is None
    assert not poison.holding  # healthy calls are back to no lookup at all


def test_crashes_further_apart_than_the_window_do_not_add_up(clock: Clock) -> None:
    poison = PoisonRequests(clock=clock)
    assert poison.crashed(1, "svc", "crash", BAD) is None
    clock.advance(61)
    assert poison.crashed(2, "svc", "crash", BAD) is None
    clock.advance(59)
    assert poison.crashed(3, "svc", "crash", BAD) is not None  # 2 and 3 are 59 s apart


def test_two_copies_in_flight_at_one_crash_count_once(clock: Clock) -> None:
    poison = PoisonRequests(clock=clock)
    assert poison.crashed(7, "svc", "crash", BAD) is None
    assert poison.crashed(7, "svc", "crash", BAD) is None
    assert not poison.holding


def test_a_bystander_the_workers_answer_is_cleared(clock: Clock) -> None:
    # a load generator sends one healthy body over and over: it is in flight at both crashes,
    # but between them a worker answered it, which a poison request never is
    poison = PoisonRequests(clock=clock)
    poison.crashed(1, "svc", "crash", BAD)
    poison.crashed(1, "svc", "crash", GOOD)
    poison.answered("svc", "crash", GOOD)
    clock.advance(5)
    assert poison.crashed(2, "svc", "crash", GOOD) is None
    held = poison.crashed(2, "svc", "crash", BAD)
    assert held is not None
    assert poison.refusal("svc", "crash", GOOD) is None
    assert poison.refusal("svc", "crash", BAD) is held


def test_suspects_are_forgotten_a_window_after_the_last_crash(clock: Clock) -> None:
    poison = PoisonRequests(clock=clock)
    poison.crashed(1, "svc", "crash", BAD)
    clock.advance(61)
    poison.answered("svc", "other", b"{}")
    assert not poison.suspecting


def test_what_is_tracked_is_bounded(clock: Clock) -> None:
    poison = PoisonRequests(clock=clock, limit=4)
    for i in range(10):
        body = f'{{"i": {i}}}'.encode()
        poison.crashed(1, "svc", "crash", body)
        assert poison.crashed(2, "svc", "crash", body) is not None
    assert poison.held_count() == 4
    assert poison.refusal("svc", "crash", b'{"i": 9}') is not None
    assert poison.refusal("svc", "crash", b'{"i": 0}') is None  # the oldest went first


def test_a_streamed_body_is_the_same_request_by_its_digest(clock: Clock) -> None:
    # the host hashes a streamed body part by part and keeps only (length, digest): a crash
    # of it and a crash of the same bytes sent whole are crashes of one request
    hasher = body_hasher("svc", "crash")
    for part in (BAD[:4], BAD[4:9], BAD[9:]):
        hasher.update(part)
    streamed = Digested(len(BAD), hasher.hexdigest())
    poison = PoisonRequests(clock=clock)
    assert poison.crashed(1, "svc", "crash", streamed) is None
    held = poison.crashed(2, "svc", "crash", BAD)
    assert held is not None and held.digest == streamed.digest
    assert poison.refusal("svc", "crash", streamed) is held
    assert poison.refusal("svc", "crash", Digested(len(GOOD), "0" * 64)) is None
    # a streamed body a worker answered is cleared like any other
    other = Digested(len(GOOD), "1" * 64)
    assert poison.crashed(3, "svc", "crash", other) is None
    poison.answered("svc", "crash", other)
    assert poison.crashed(4, "svc", "crash", other) is None  # a first crash again
