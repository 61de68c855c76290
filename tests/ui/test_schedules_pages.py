"""The schedules pages and what started each run, over a real SQLite store filled through
the schedules package: schedules created from flow files, fire times recorded by the
scheduler on an injected clock (runs, skips, queued ones, a start that failed), a backfill;
pause and resume from the UI as an admin, refused to anyone else."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient
from ui_support import UIEnv, close_host, host_over

from shipyard.keys import KeyStore
from shipyard.schedules.cron import Cron
from shipyard.schedules.launch import trigger_of
from shipyard.schedules.manage import backfill, create
from shipyard.schedules.records import FireRecord
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from shipyard.schedules.views import describe, history, summaries
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus
from support.fakes import graph

if TYPE_CHECKING:
    from shipyard.serve.host import Host

URL = "http://127.0.0.1:8000"
ORIGIN = {"Origin": URL}
#: the injected clock starts here (before the real date: runs' real heartbeats are alive)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

FLOWS = {
    "ranker_flow": """
from shipyard import FlowSpec, Parameter, schedule, step


@schedule(cron="*/5 * * * *", overlap="skip")
class RankerFlow(FlowSpec):
    factors = Parameter("factors", default="8,16")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    "queue_flow": """
from shipyard import FlowSpec, schedule, step


@schedule(cron="*/5 * * * *", overlap="queue")
class QueueFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
    "nightly_flow": """
from shipyard import FlowSpec, schedule, step


@schedule(cron="30 6 * * *", timezone="Europe/Amsterdam")
class NightlyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Starter:
    """What the launcher does first (take the claim with its token, record the run with its
    trigger, link it), in this process; a start of a schedule in ``fail`` raises."""

    def __init__(self, store: ScheduleStore, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.fail: set[str] = set()
        self.runs: dict[int, int] = {}  # fire id -> run id

    def __call__(self, fire: FireRecord, token: str) -> None:
        if fire.schedule in self.fail:
            raise OSError("no space left on device")
        # this process stands in for the launcher (alive while its run goes)
        assert self.store.start(fire.id, token, pid=os.getpid(), now=self.clock())
        flow = self.store.get(fire.schedule).flow_name
        run_id = self.store.meta.create_run(
            flow,
            user="scheduler",
            params={},
            tags=[],
            graph=graph(flow, flow.lower()),
            code_key=None,
            trigger=trigger_of(self.store.fire(fire.id)),
        )
        self.store.link_run(fire.id, run_id)
        self.runs[fire.id] = run_id


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIEnv]:
    """A private SHIPYARD_HOME with three schedules and their history (see the module)."""
    root = tmp_path_factory.mktemp("schedules-ui")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            patch.delenv(name, raising=False)
        _stores.reset()
        meta = MetaStore.open()
        blobs = open_blob_store()
        keys = KeyStore(meta)
        try:
            _fill(ScheduleStore(meta), blobs, root)
            yield UIEnv(home, meta, blobs, keys, [])
        finally:
            keys.close()
            meta.close()
            _stores.reset()


def _fill(store: ScheduleStore, blobs: Any, root: Path) -> None:
    for module, source in FLOWS.items():
        path = root / f"{module}.py"
        path.write_text(source)
        name = {"ranker_flow": "ranker", "queue_flow": "queuer"}.get(module)
        create(store, path, name=name, user="tester", now=T0, blobs=blobs)
    clock = Clock()
    starter = Starter(store, clock)
    scheduler = Scheduler(store, clock=clock, starter=starter)
    # 62 minutes without a scheduler: 12 fire times each, the newest runs (catchup=latest)
    clock.now = T0 + timedelta(minutes=62)
    scheduler.tick()
    # five minutes on, the runs still going: ranker skips (overlap=skip), queuer queues
    clock.now += timedelta(minutes=5)
    scheduler.tick()
    # a backfill of four fire times before the schedule existed, one at a time: the first
    # cannot start (the others wait), then the next one runs (two still wait)
    backfill(
        store, "ranker", T0 - timedelta(minutes=20), T0 - timedelta(minutes=5), max_parallel=1,
        dry_run=False, now=clock.now,
    )  # fmt: skip
    starter.fail.add("ranker")
    clock.now += timedelta(seconds=30)
    scheduler.tick()
    starter.fail.clear()
    for fire_id, run_id in starter.runs.items():  # the runs end, as their launchers record
        store.meta.finish_run(run_id, RunStatus.SUCCEEDED)
        store.finish(fire_id, 0, now=clock.now)
    clock.now += timedelta(seconds=30)
    scheduler.tick()  # queuer's queued fire time starts, and the next backfilled one


def _client(host: Any, key: str | None = None) -> TestClient:
    client = TestClient(host, client=("127.0.0.1", 1), base_url=URL)
    if key is not None:
        signed = client.post("/ui/signin", data={"key": key, "next": "/ui/schedules"})
        assert signed.status_code == 200, signed.text
    return client


def _rows(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr data-[a-z]+=.*?</tr>", body, flags=re.S)


def _first(pattern: str, text: str) -> str:
    found = re.search(pattern, text, flags=re.S)
    assert found is not None, f"{pattern!r} not found"
    return found.group(1)


def _ran(store: ScheduleStore, kind: str) -> list[FireRecord]:
    """ranker's fire records of ``kind`` that have a run."""
    return [f for f in store.fires("ranker", limit=100) if f.run_id and f.kind.value == kind]


def _text(fragment: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_schedules_page_lists_timetables_next_fire_times_and_counts(env: UIEnv) -> None:
    page = env.client().get("/ui/schedules")
    assert page.status_code == 200, page.text
    assert 'href="/ui/schedules" class="active"' in page.text  # the nav link
    rows = {
        re.search(r'data-schedule="([^"]+)"', r).group(1): r for r in _rows(page.text, "schedules")
    }  # type: ignore[union-attr]
    assert sorted(rows) == ["NightlyFlow", "queuer", "ranker"]

    nightly = _text(rows["NightlyFlow"])
    assert "every day at 06:30 (Europe/Amsterdam time)" in nightly and "30 6 * * *" in nightly
    cron, now = Cron.parse("30 6 * * *"), datetime.now(UTC)
    times = cron.fire_times(now, "Europe/Amsterdam")
    expected = [next(times) for _ in range(3)]
    shown = re.findall(r'<span title="([^"]+) UTC">', rows["NightlyFlow"])
    assert shown == [w.strftime("%Y-%m-%d %H:%M:%S") for w in expected]
    assert "never fired" in nightly

    ranker = _text(rows["ranker"])
    assert "every 5 minutes (UTC)" in ranker
    # the catch-up run and a backfilled one; 11 missed and 1 overlapping; 2 backfilled ones
    # waiting their turn; 1 that could not start
    counts = [_text(c) for c in re.findall(r'<td class="num[^"]*">(.*?)</td>', rows["ranker"])]
    assert counts == ["2", "12", "2", "1"]  # runs, skipped, queued, failed
    last = _first(r'<td class="last">(.*?)</td>', rows["ranker"])
    assert _text(last) == "2026-03-01 13:05:00 skipped"  # the latest fire time, not a backfill
    queuer = [_text(c) for c in re.findall(r'<td class="num[^"]*">(.*?)</td>', rows["queuer"])]
    assert queuer == ["2", "11", "0", "0"]  # the queued one ran once the first ended
    assert "No scheduler is running" in page.text  # the test's scheduler lease is long gone


def test_a_schedule_page_shows_its_history_with_reasons_and_filters(env: UIEnv) -> None:
    client = env.client()
    page = client.get("/ui/schedules/ranker")
    assert page.status_code == 200, page.text
    assert "RankerFlow" in page.text and "every 5 minutes (UTC)" in page.text
    assert len(re.findall(r"<li>", page.text.split('id="next"')[1].split("</ol>")[0])) == 10
    policies = _text(page.text.split('id="policies"')[1].split("</table>")[0])
    assert "overlap skip" in policies and "catchup latest" in policies
    assert '"8,16"' in _text(page.text.split('id="parameters"')[1].split("</table>")[0])
    assert [_text(v)[:1] for v in _rows(page.text, "versions")] == ["1"]

    fires = _rows(page.text, "fires")
    assert len(fires) == 17  # 12 scheduled + 1 overlapping + 4 backfilled fire times
    by_outcome: dict[str, list[str]] = {}
    for row in fires:
        by_outcome.setdefault(_first(r'data-outcome="([a-z]+)"', row), []).append(_text(row))
    assert sorted((k, len(v)) for k, v in by_outcome.items()) == [
        ("failed", 1), ("queued", 2), ("run", 2), ("skipped", 12)
    ]  # fmt: skip
    assert any(
        "overlap=skip: RankerFlow/" in r and "still running" in r for r in by_outcome["skipped"]
    )
    assert any("catchup=latest runs only the newest" in r for r in by_outcome["skipped"])
    assert "could not start: no space left on device" in by_outcome["failed"][0]
    assert "2026-03-01 11:40:00 backfill" in by_outcome["failed"][0]
    assert all("backfill: 1 running (--max-parallel 1)" in r for r in by_outcome["queued"])
    # each run links to its run page, with the run's status
    links = re.findall(r'class="fire-run" href="(/ui/runs/RankerFlow/\d+)"', page.text)
    assert len(links) == 2 and all(client.get(u).status_code == 200 for u in links)

    skipped = client.get("/ui/schedules/ranker?outcome=skipped")
    rows = _rows(skipped.text, "fires")
    assert len(rows) == 12 and all('data-outcome="skipped"' in r for r in rows)
    assert "skipped (12)" in skipped.text
    none = client.get("/ui/schedules/queuer?outcome=failed")
    assert 'id="no-fires"' in none.text and "No failed fire times" in none.text
    bad = client.get("/ui/schedules/ranker?outcome=lost")
    assert bad.status_code == 400 and "outcome &#39;lost&#39; is not one of" in bad.text
    missing = client.get("/ui/schedules/nosuch")
    assert missing.status_code == 404 and "no schedule named &#39;nosuch&#39;" in missing.text


def test_each_run_says_what_triggered_it(env: UIEnv) -> None:
    store = ScheduleStore(env.meta)
    client = env.client()
    (fire,) = [
        f for f in store.fires("ranker", limit=100) if f.run_id and f.kind.value == "schedule"
    ]
    page = client.get(f"/ui/runs/RankerFlow/{fire.run_id}")
    said = _text(page.text.split('id="triggered-by">')[1].split("</dd>")[0])
    assert said == "schedule ranker , fire time 2026-03-01 13:00:00 UTC"
    assert 'href="/ui/schedules/ranker"' in page.text

    backfilled = [
        f for f in store.fires("ranker", limit=100) if f.run_id and f.kind.value == "backfill"
    ]
    page = client.get(f"/ui/runs/RankerFlow/{backfilled[0].run_id}")
    assert "backfill of schedule ranker" in _text(page.text)

    upstream = env.meta.create_run(
        "UpFlow", user="u", params={}, tags=[], graph=graph("UpFlow", "up"), code_key=None
    )
    by_hand = client.get(f"/ui/runs/UpFlow/{upstream}")
    assert "by hand (u)" in _text(by_hand.text.split('id="triggered-by">')[1].split("</dd>")[0])
    after = env.meta.create_run(
        "DownFlow", user="scheduler", params={}, tags=[], graph=graph("DownFlow", "down"),
        code_key=None, trigger={"type": "flow", "upstream_run": f"UpFlow/{upstream}"},
    )  # fmt: skip
    page = client.get(f"/ui/runs/DownFlow/{after}")
    assert f'class="upstream-run" href="/ui/runs/UpFlow/{upstream}"' in page.text

    runs = client.get("/ui/runs")
    cells = {
        re.search(r'data-run="([^"]+)"', r).group(1): _text(
            r.split('class="trigger-cell">')[1].split("</td>")[0]
        )  # type: ignore[union-attr]
        for r in _rows(runs.text, "runs")
    }
    assert cells[f"RankerFlow/{fire.run_id}"] == "schedule"
    assert cells[f"RankerFlow/{backfilled[0].run_id}"] == "backfill"
    assert cells[f"UpFlow/{upstream}"] == "by hand"
    assert cells[f"DownFlow/{after}"] == "after UpFlow"


def test_a_hostile_event_payload_is_escaped_and_cut(env: UIEnv) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    run_id = env.meta.create_run(
        "EventFlow", user="scheduler", params={}, tags=[], graph=graph("EventFlow", "ev"),
        code_key=None,
        trigger={"type": "event", "event": "<script>alert(2)</script>", "schedule": "queuer",
                 "payload": {"html": hostile, "filler": "y" * 5000}},
    )  # fmt: skip
    client = env.client()
    page = client.get(f"/ui/runs/EventFlow/{run_id}")
    assert page.status_code == 200
    assert hostile not in page.text and "<script>alert(2)" not in page.text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text
    payload = unescape(page.text.split('id="event-payload">')[1].split("</pre>")[0])
    assert payload.startswith('{"filler": "yyy') and payload.endswith("…")
    assert len(payload) == 600  # PAYLOAD_CHARS
    listed = client.get("/ui/runs")
    assert "<script>alert(2)" not in listed.text and "event: &lt;script&gt;" in listed.text


@pytest.fixture(scope="module")
def host(env: UIEnv) -> Iterator[Host]:
    made = host_over(env)
    yield made
    close_host(made)


@pytest.fixture(scope="module")
def keys(host: Host) -> dict[str, str]:
    _, admin = host.keys.create("ops", ["admin"])
    _, ui = host.keys.create("viewer", ["ui"])
    return {"admin": admin, "ui": ui}


def test_an_admin_pauses_and_resumes_from_the_ui(
    host: Host, keys: dict[str, str], env: UIEnv
) -> None:
    store = ScheduleStore(env.meta)
    admin = _client(host, keys["admin"])
    page = admin.get("/ui/schedules/NightlyFlow")
    assert 'id="pause"' in page.text and 'id="resume"' not in page.text
    path = "/ui/actions/schedules/NightlyFlow/pause"
    empty = admin.post(path, json={"note": "  "}, headers=ORIGIN)
    assert empty.status_code == 422 and "needs a note" in empty.json()["error"]["message"]
    assert admin.post(path, json={"note": "x" * 501}, headers=ORIGIN).status_code == 422
    assert admin.post(path, data={"note": "n"}, headers=ORIGIN).status_code == 415
    assert admin.post(path, json={"note": "n"}).status_code == 403  # no Origin
    unknown = admin.post("/ui/actions/schedules/nosuch/pause", json={"note": "n"}, headers=ORIGIN)
    assert unknown.status_code == 404 and "no schedule named" in unknown.json()["error"]["message"]
    assert not store.get("NightlyFlow").paused

    done = admin.post(path, json={"note": "ratings feed broken <INC-12>"}, headers=ORIGIN)
    assert done.status_code == 200, done.text
    record = store.get("NightlyFlow")
    assert record.paused and record.note == "ratings feed broken <INC-12>"
    assert record.paused_by == "ops (ui)"

    listing = admin.get("/ui/schedules")
    paused = _text(listing.text.split('id="paused">')[1].split("</section>")[0])
    assert paused.startswith("Paused NightlyFlow : ratings feed broken <INC-12> — ops (ui), 20")
    assert "ratings feed broken &lt;INC-12&gt;" in listing.text  # escaped
    page = admin.get("/ui/schedules/NightlyFlow")
    assert 'id="resume"' in page.text and 'id="pause"' not in page.text
    assert "None while paused" in page.text and 'id="pause-note"' in page.text

    resumed = admin.post("/ui/actions/schedules/NightlyFlow/resume", json={}, headers=ORIGIN)
    assert resumed.status_code == 200 and resumed.json()["was_paused"] is True
    record = store.get("NightlyFlow")
    assert not record.paused and record.note is None
    assert 'id="paused"' not in admin.get("/ui/schedules").text


def test_anyone_else_sees_no_buttons_and_is_refused(
    host: Host, keys: dict[str, str], env: UIEnv
) -> None:
    store = ScheduleStore(env.meta)
    viewer = _client(host, keys["ui"])
    page = viewer.get("/ui/schedules/queuer")
    assert page.status_code == 200 and 'id="read-only"' in page.text
    assert 'id="pause"' not in page.text and 'id="resume"' not in page.text
    refused = viewer.post("/ui/actions/schedules/queuer/pause", json={"note": "n"}, headers=ORIGIN)
    assert refused.status_code == 403 and "scope 'admin'" in refused.json()["error"]["message"]
    anonymous = _client(host).post("/ui/actions/schedules/queuer/resume", json={}, headers=ORIGIN)
    assert anonymous.status_code == 401
    # the UI alone (`shipyard ui`) is read-only whoever signs in
    alone = env.client()
    alone.post("/ui/signin", data={"key": keys["admin"], "next": "/ui/schedules"})
    alone = alone.post("/ui/actions/schedules/queuer/pause", json={"note": "n"}, headers=ORIGIN)
    assert alone.status_code == 403 and "read-only" in alone.json()["error"]["message"]
    assert not store.get("queuer").paused


def test_the_history_queries_on_sqlite_and_postgresql(meta: MetaStore, tmp_path: Path) -> None:
    store = ScheduleStore(meta)
    _fill(store, open_blob_store(), tmp_path)
    found = summaries(store)
    ranker = found["ranker"]
    assert ranker.counts == {"run": 2, "skipped": 12, "queued": 2, "failed": 1, "pending": 0}
    assert ranker.last is not None and ranker.last.outcome == "skipped"
    assert ranker.last.scheduled_for == T0 + timedelta(minutes=65)
    assert set(found) == {"ranker", "queuer"} and summaries(store, "queuer").keys() == {"queuer"}
    rows, total = history(store, "ranker", outcome="queued", limit=1, offset=1)
    assert total == 2 and [r.scheduled_for for r in rows] == [T0 - timedelta(minutes=10)]
    going, ended = history(store, "queuer", outcome="run", limit=5)[0]
    assert (going.run_flow, going.run_status) == ("QueueFlow", "running")
    assert (ended.run_flow, ended.run_status) == ("QueueFlow", "succeeded")
    assert going.scheduled_for == T0 + timedelta(minutes=65)  # the one queued, then run
    with pytest.raises(ValueError, match="outcome 'lost' is not one of run, skipped"):
        history(store, "ranker", outcome="lost", limit=1)


def test_describe_says_common_timetables_in_words() -> None:
    assert describe("0 */4 * * *", "Europe/Amsterdam") == (
        "every 4 hours at :00 (Europe/Amsterdam time)"
    )
    assert describe("0 6,18 * * 1-5", "UTC") == "Monday to Friday at 06:00 and 18:00 (UTC)"
    assert describe("@weekly", "UTC") == "every Sunday at 00:00 (UTC)"
    assert describe("0 0 1 * *", "UTC") == "on day 1 of the month at 00:00 (UTC)"
    assert describe("1,2 9-17 * * *", "UTC") == "1,2 9-17 * * * (UTC)"  # too intricate
    assert describe(None, "UTC") == "no timetable: events and upstream flows only"
