"""``shipyard gateway``: the gateway alone, serving the routes of a YAML file."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("gateway", invoke_without_command=True)
@click.option(
    "--config",
    "config",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The YAML file of routes (ours, or MLflow AI Gateway's `endpoints:` format).",
)
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One JSON line per request on stderr.",
)
@click.pass_context
def gateway_command(
    ctx: click.Context, config: Path | None, bind: str, port: int, access_log: bool
) -> None:
    """Run the gateway: an authenticated reverse proxy to LLM providers and services.

    Serves the OpenAI-compatible /v1/chat/completions, /v1/completions, /v1/embeddings and
    /v1/models, other routes under /gateway/ROUTE/..., /healthz and /metrics. Every route
    needs a key (`shipyard keys create --scope route:ROUTE`). `service` routes (and `chat`
    routes with `provider: service`) call the host at SHIPYARD_URL (default
    http://127.0.0.1:8000) unless the file sets `host_url:`. Editing
    the file or sending SIGHUP reloads it without dropping requests; an invalid file is
    refused and logged.

    \b
    Examples:
      shipyard gateway --config gateway.yaml
      shipyard gateway --config mlflow-config.yaml --port 5000
    """
    from shipyard.gateway.errors import ConfigError
    from shipyard.gateway.run import run_gateway

    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise click.UsageError("give the routes with --config FILE (or run a subcommand)")
    if not config.is_file():
        raise click.BadParameter(f"{str(config)!r} is not a file", param_hint="--config")
    try:
        run_gateway(config, bind=bind, port=port, access_log=access_log)
    except ConfigError as exc:
        raise click.ClickException(f"invalid gateway configuration: {exc}") from None


def _add_usage_commands() -> None:
    from shipyard.cli import gateway_usage

    for command in gateway_usage.COMMANDS:
        gateway_command.add_command(command)


_add_usage_commands()

COMMANDS: list[click.Command] = [gateway_command]

__all__ = ["COMMANDS"]
