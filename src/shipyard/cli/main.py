"""``shipyard``: the command-line entry point. Each part adds its commands here."""

from __future__ import annotations

import click

from shipyard.cli import (
    artifacts,
    cache,
    cards,
    doctor,
    flows,
    gateway,
    housekeeping,
    keys,
    loadtest,
    models,
    runs,
    schedules,
    serve,
    service,
    stub,
    ui,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="shipyard")
def main() -> None:
    """shipyard: flows, models, services, cache and gateway for ML work."""
    from shipyard.client.namespaces import namespace

    namespace(None)  # the command line sees every run (a flow's steps get the default back)


for _command in (
    *flows.COMMANDS,
    *runs.COMMANDS,
    *artifacts.COMMANDS,
    *cards.COMMANDS,
    *housekeeping.COMMANDS,
    *models.COMMANDS,
    *keys.COMMANDS,
    *serve.COMMANDS,
    *service.COMMANDS,
    *cache.COMMANDS,
    *gateway.COMMANDS,
    *stub.COMMANDS,
    *ui.COMMANDS,
    *loadtest.COMMANDS,
    *doctor.COMMANDS,
    *schedules.COMMANDS,
):
    main.add_command(_command)
