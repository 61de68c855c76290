"""``shipyard ui``: the web UI alone (read-only), for a machine that runs flows but no host.

The host (``shipyard serve``) serves the same pages under ``/ui`` together with the live
state of its deployments.
"""

from __future__ import annotations

import click


@click.command("ui")
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8002, show_default=True, type=click.IntRange(0, 65535))
def ui_command(bind: str, port: int) -> None:
    """Serve the web UI alone, read-only: runs, DAGs, tasks, logs, models, deployments.

    Open to loopback clients while no key with scope `ui` exists; otherwise (and always for
    clients beyond loopback) the browser signs in with a key.

    \b
    Examples:
      shipyard ui
      shipyard ui --port 9000
    """
    from shipyard._server import server_for
    from shipyard.config import settings
    from shipyard.keys import Guard, KeyStore
    from shipyard.keys.guard import is_loopback
    from shipyard.keys.scopes import UI
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.meta import MetaStore
    from shipyard.ui import standalone

    conf = settings()
    meta = MetaStore.open(conf.db_url)
    keys = KeyStore(meta)
    guard = Guard.for_settings(keys, conf, bind_host=bind)
    app = standalone(meta, open_blob_store(conf.store_url), guard, read_only=True)
    shown = f"[{bind}]" if ":" in bind else bind
    click.echo(f"shipyard UI (read-only) on http://{shown}:{port}/ui/", err=True)
    if not keys.has_keys_with_scope_prefix(UI):
        create = "create one with: shipyard keys create --scope ui"
        if is_loopback(bind):
            click.echo(
                f"  open to loopback clients: no key with scope 'ui' exists ({create})", err=True
            )
        else:
            click.echo(
                "  no key with scope 'ui' exists: clients beyond loopback cannot sign in "
                f"({create})",
                err=True,
            )
    try:
        server_for(app, bind, port).run()
    finally:
        keys.close()
        meta.close()


COMMANDS = [ui_command]

__all__ = ["COMMANDS", "ui_command"]
