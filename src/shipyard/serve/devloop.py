"""The development loop of ``shipyard serve FILE.py:Class``: deploy the service at start,
then again on every save, for as long as the host runs.

What is watched: every ``*.py`` file under the service's code directory (the file's own, which
the code snapshot is taken from), recursively, skipping hidden directories, ``__pycache__``
and virtualenvs. Saves are debounced (an editor that
writes twice in a row deploys once), and a save that leaves every file's content as it was
deploys nothing.

A save that does not start (a syntax error, an exception in ``load()``) is printed with the
worker's traceback, and the version before it keeps serving; the loop keeps watching, and the
next good save is deployed. Every version it deploys is marked ``dev`` in the deployments
record, so a later plain ``shipyard serve`` does not bring the service back
(:meth:`~shipyard.serve.deployments.DeploymentStore.set_aside_dev`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from watchfiles import Change

    from shipyard.serve.host import Host

log = logging.getLogger("shipyard.serve")

#: milliseconds without a new change before a save is acted on (editors write twice)
QUIET_MS = 300
#: milliseconds of changes grouped at most, however busy the directory is
DEBOUNCE_MS = 2000


@dataclass
class DevLoop:
    """Deploys ``file``'s class ``cls`` as ``name`` on ``host`` now and on every change."""

    host: Host
    file: Path
    cls: str
    name: str
    replicas: int = 1
    #: the digest of the last snapshot tried, deployed or not (an unchanged save is skipped)
    tried: str | None = None

    @property
    def root(self) -> Path:
        """The code directory, the file's own: what the code snapshot holds (its top-level
        modules and packages) and what is watched."""
        return self.file.parent

    async def run(self) -> None:
        """Deploy, then watch and redeploy until cancelled (the host stops)."""
        from watchfiles import awatch

        log.info(
            "development loop: %s:%s as %s, redeployed when a .py file under %s changes",
            self.file.name,
            self.cls,
            self.name,
            self.root,
        )
        await self.deploy_changes()
        try:
            async for changes in awatch(
                self.root, watch_filter=_python_files(), debounce=DEBOUNCE_MS, step=QUIET_MS
            ):
                names = sorted({Path(path).name for _, path in changes})
                log.info("changed: %s", ", ".join(names))
                await self.deploy_changes()
        except Exception:  # the directory went away...: say so, the host serves on
            log.exception(
                "the development loop stopped watching %s; %s keeps serving as it is; "
                "restart `shipyard serve` to watch again",
                self.root,
                self.name,
            )

    async def deploy_changes(self) -> None:
        """Deploy the code as it is now, unless it is what was last tried; again while it
        changed during the deploy (a save made then is not lost)."""
        while True:
            snapshot = self._snapshot()
            if snapshot is None:
                return
            digest = hashlib.sha256(snapshot).hexdigest()
            if digest == self.tried:
                return
            self.tried = digest
            await self.deploy(snapshot)

    def _snapshot(self) -> bytes | None:
        from shipyard.flow.loader import module_name_for
        from shipyard.store.code import CodeSnapshotError, pack_code

        try:
            return pack_code(self.file, module_name_for(self.file))
        except (CodeSnapshotError, OSError) as exc:
            log.error(
                "%s: cannot take the code snapshot: %s; waiting for the next save", self.name, exc
            )
            return None

    async def deploy(self, code: bytes) -> None:
        """Deploy ``code``; a failure is printed with its traceback, never raised."""
        from shipyard.serve.admin import AdminError

        try:
            response = await self.host.admin.deploy_code(
                self.name,
                f"{self.file.name}:{self.cls}",
                code,
                replicas=self.replicas,
                user="shipyard serve",
                dev=True,
            )
        except AdminError as exc:
            self._failed(exc.message)
            return
        except Exception:  # the loop outlives anything one deploy does
            log.exception("%s: the deploy failed; waiting for the next save", self.name)
            return
        if response.status_code == 200:
            group = self.host.supervisor.services.get(self.name)
            version = f" v{group.spec.version}" if group is not None else ""
            log.info(
                "%s%s is live at http://%s:%s/%s/",
                self.name,
                version,
                self.host.bind,
                self.host.port,
                self.name,
            )
        else:
            log.error("%s: %s", self.name, bytes(response.body).decode())

    def _failed(self, message: str) -> None:
        """Say why the last deploy failed, with the worker's traceback, and what serves."""
        from shipyard.serve.deployments import VersionStatus
        from shipyard.serve.logs import read_logs

        versions = self.host.admin.store.versions(self.name)
        failed = versions[-1] if versions and versions[-1].status is VersionStatus.FAILED else None
        trace = ""
        if failed is not None:
            page = read_logs(self.host.home, self.name, version=failed.version)
            for line in page.lines:
                event = line.event or {}
                if event.get("event") == "load_failed" and isinstance(event.get("traceback"), str):
                    trace = event["traceback"]
                    break
        group = self.host.supervisor.services.get(self.name)
        serving = (
            f"v{group.spec.version} keeps serving" if group is not None else "no version serves yet"
        )
        text = f"{message.split('; the previous version keeps serving')[0]}; {serving}"
        if trace:
            text += "\n" + "\n".join("    " + row for row in trace.rstrip("\n").splitlines())
        if failed is not None:  # the snapshot's paths as the user's files the lines are in
            snapshot = self.host.home / "code" / failed.code_key
            text = text.replace(f"{snapshot}/", f"{self.root}/")
        log.error("%s\n  waiting for the next save of %s", text, self.root)


def _python_files() -> Callable[[Change, str], bool]:
    """The watch filter: ``*.py`` files, less what watchfiles ignores by default (hidden
    directories, ``__pycache__``, virtualenvs...)."""
    from watchfiles import DefaultFilter

    class PythonFiles(DefaultFilter):
        def __call__(self, change: Change, path: str) -> bool:
            return path.endswith(".py") and super().__call__(change, path)

    return PythonFiles()


__all__ = ["DEBOUNCE_MS", "QUIET_MS", "DevLoop"]
