"""Two processes registering the same name at once get distinct, gapless versions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from shipyard.registry import Registry
from shipyard.store.meta import MetaStore
from support.waiting import wait_for

_REGISTRAR = textwrap.dedent(
    """
    import json, os, sys, time
    from shipyard.registry import commit
    from shipyard.store.meta import MetaStore
    from shipyard.store.records import ArtifactRecord

    url, go, count, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    record = ArtifactRecord("model", "ab" * 32, 1, "pickle5", "builtins.int", "1")
    with MetaStore.open(url) as meta:
        run_id = meta.create_run("F", user="u", params={}, tags=[], graph={}, code_key=None)
        task_id = meta.create_task(run_id, "end", foreach_stack=[], input_task_ids=[])
        open(ready, "w").close()
        while not os.path.exists(go):
            time.sleep(0.002)
        got = []
        for _ in range(count):
            with meta.writer.begin() as conn:
                intent = {"name": "ranker", "artifact": "model", "libraries": {}}
                got += commit(conn, [intent], artifacts={"model": record}, flow_name="F",
                              run_id=run_id, step_name="end", task_id=task_id, user="u")
            time.sleep(0.003)  # let the other process in (SQLite's busy wait is not fair)
    print(json.dumps([version for _, version in got]))
    """
)


def test_concurrent_commits_get_distinct_versions(db_url: str, tmp_path: Path) -> None:
    MetaStore.open(db_url).close()  # migrated before the race: the race is on versions
    go, count = tmp_path / "go", 15
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", _REGISTRAR, db_url, str(go), str(count), str(r)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    # both past interpreter start-up, so the commits really interleave (or one failed early:
    # communicate() below says why)
    wait_for(
        lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in procs),
        "both registrars to be ready",
        timeout=60,
    )
    go.touch()
    versions: list[int] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        versions += json.loads(out)
    assert sorted(versions) == list(range(1, 2 * count + 1))
    with MetaStore.open(db_url) as meta:
        stored = Registry(meta).versions("ranker")
        assert [v.version for v in stored] == list(range(1, 2 * count + 1))
        assert len({v.run_id for v in stored}) == 2
