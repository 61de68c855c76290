"""``shipyard serve`` (the host) and the deployment commands that talk to it:
``deploy``, ``undeploy``, ``scale``, ``rollback``, ``deployments``.

The deployment commands reach the host at ``--url`` / ``SHIPYARD_URL`` with the admin key from
``--key`` / ``SHIPYARD_KEY`` or, on the host's own machine, ``$SHIPYARD_HOME/admin.token``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, NoReturn

import click

from shipyard.config import current_user

_url_option = click.option(
    "--url",
    envvar="SHIPYARD_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Where the host listens (env: SHIPYARD_URL).",
)
_key_option = click.option(
    "--key",
    envvar="SHIPYARD_KEY",
    default=None,
    help="An admin key (env: SHIPYARD_KEY; default: $SHIPYARD_HOME/admin.token).",
)


def _admin_key(key: str | None) -> str:
    if key:
        return key
    from shipyard.config import home
    from shipyard.keys import read_admin_token

    token = read_admin_token(home())
    if token is None:
        raise click.ClickException(
            "no admin key: pass --key or SHIPYARD_KEY, or run this on the host's machine "
            "after `shipyard serve` has started once (it writes $SHIPYARD_HOME/admin.token)"
        )
    return token


def _call(
    method: str, url: str, path: str, key: str | None, body: Any = None, timeout: float = 600.0
) -> dict[str, Any]:
    import httpx

    headers = {
        "Authorization": f"Bearer {_admin_key(key)}",
        "Content-Type": "application/json",
        "X-Shipyard-User": current_user(),
    }
    try:
        response = httpx.request(
            method, url.rstrip("/") + "/api/v1" + path, json=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"cannot reach the host at {url}: {exc}\n  hint: start it with `shipyard serve`"
        ) from None
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        _fail(
            f"{error.get('message') or response.text} ({response.status_code} "
            f"{error.get('type', '')})".rstrip()
        )
    return data  # type: ignore[no-any-return]


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _print_deployment(d: dict[str, Any], *, notes: bool = False) -> None:
    live = d.get("live", [])
    ready = sum(1 for r in live if r["ready"])
    follows = d.get("follows") or []
    following = "".join(
        f"  following {f['spec']}" + (" (paused)" if f["paused"] else "") for f in follows
    )
    click.echo(
        f"{d['service']}  v{d.get('current_version')}  {ready}/{d.get('replicas')} ready  "
        f"endpoints: {', '.join(d.get('endpoints', [])) or '-'}{following}"
    )
    for warning in d.get("warnings") or []:  # e.g. a feature set not the model's version
        click.secho(f"  warning: {warning}", fg="yellow")
    if notes:  # what following did last, and why it is paused
        for f in follows:
            click.echo(f"  {f['describe']}")
            if f.get("note"):
                click.echo(f"    last: {f['note']}")


@click.command("serve")
@click.argument("service", required=False, metavar="[FILE.py:Class]")
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--name",
    default=None,
    help="Service name for FILE.py:Class [default: the class name: RankerService -> "
    "ranker-service].",
)
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--max-in-flight",
    default=64,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Requests in flight per replica before the host answers 503 + Retry-After.",
)
@click.option(
    "--max-body-buffer",
    metavar="SIZE",
    default="256MB",
    show_default=True,
    help="Bytes of request bodies the host and its workers hold at once (256MB, 1GB, or "
    "bytes); past it, calls get 503 + Retry-After before their body is read.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One JSON line per service request on stderr.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a connection may take to send complete request headers; then it is closed.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a request body may go without a byte; then 408 and the connection is closed.",
)
@click.option(
    "--max-connections",
    default=None,
    type=click.IntRange(1, 1_000_000),
    help="Connections held at once; past it a new one displaces the oldest still sending "
    "headers, or is closed [default: 1000, or the file limit (ulimit -n) less 128].",
)
@click.option(
    "--ping-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a replica may leave a health ping unanswered before it gets no new request "
    "(while another replica of its service answers).",
)
@click.option(
    "--reconcile-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between two reads of the desired deployments in the metadata database: a "
    "deploy, scale, rollback or undeploy made through another host sharing it starts here "
    "within this time.",
)
@click.option(
    "--gateway-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also serve the gateway routes of this YAML file under /v1 and /gateway.",
)
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Run the schedules of this database (`shipyard schedule`); one scheduler ticks per "
    "database, others stand by.",
)
@click.option(
    "--max-scheduled-runs",
    default=None,
    type=click.IntRange(min=1),
    help="Scheduled runs going at once; the rest queue (default: SHIPYARD_MAX_SCHEDULED_RUNS, "
    "max_scheduled_runs in config.yaml, else 16).",
)
def serve_command(
    service: str | None,
    bind: str,
    port: int,
    name: str | None,
    replicas: int,
    max_in_flight: int,
    max_body_buffer: str,
    access_log: bool,
    header_timeout: float,
    body_timeout: float,
    max_connections: int | None,
    ping_timeout: float,
    reconcile_interval: float,
    gateway_config: Path | None,
    scheduler: bool,
    max_scheduled_runs: int | None,
) -> None:
    """Start the host: every deployed service, the admin API, /metrics, /healthz.

    With FILE.py:Class the same host starts with that service deployed, and redeploys it
    whenever a .py file in its directory changes (the development loop): a save that fails
    is printed with its traceback while the version before it keeps serving, and the next
    good save is deployed. A later plain `shipyard serve` does not bring that service back.

    \b
    Examples:
      shipyard serve
      shipyard serve service.py:Ranker --port 8080
    """
    from shipyard._app import host_app
    from shipyard._server import ConnectionLimits, log_to_stderr
    from shipyard.gateway.errors import ConfigError
    from shipyard.serve.memory import SizeError, parse_size
    from shipyard.serve.run import run_host

    try:
        body_buffer = parse_size(max_body_buffer, minimum=1 << 20, what="body buffer")
    except SizeError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-body-buffer") from None
    dev = None
    if service is not None:
        file, _, cls = service.partition(":")
        if not file.endswith(".py") or not cls or not Path(file).is_file():
            raise click.BadParameter(
                f"{service!r}: expected an existing FILE.py:ClassName", param_hint="SERVICE"
            )
        from shipyard.names import service_name_problem

        if name is not None and (problem := service_name_problem(name)):
            raise click.BadParameter(problem, param_hint="--name")
        dev = (Path(file).resolve(), cls, name or _default_name(cls), replicas)
    cap = 0  # the global cap on scheduled runs (only with the scheduler)
    if scheduler:
        from shipyard.cli.schedules import scheduled_runs_cap

        cap = scheduled_runs_cap(max_scheduled_runs, "--max-scheduled-runs")
    log_to_stderr()
    try:
        host = host_app(
            bind=bind,
            port=port,
            max_in_flight=max_in_flight,
            max_body_buffer=body_buffer,
            access_log=access_log,
            gateway_config=gateway_config,
            ping_timeout=ping_timeout,
            reconcile_interval=reconcile_interval,
        )
    except ConfigError as exc:
        raise click.ClickException(f"invalid gateway configuration: {exc}") from None
    if scheduler:
        from shipyard.serve.scheduling import attach_scheduler

        attach_scheduler(host, max_running=cap)
    limits = ConnectionLimits(header_timeout, body_timeout, max_connections)
    run_host(host, dev=dev, limits=limits)


def _default_name(cls: str) -> str:
    """The service name of ``serve FILE.py:Class`` without ``--name``: the class name by the
    name rule (``RankerService`` -> ``ranker-service``), prefixed ``svc-`` when that alone is
    no valid service name (``UI`` -> ``svc-ui``: a reserved name)."""
    from shipyard.names import name_from

    name = name_from(cls, fallback="")
    return name or name_from(f"svc-{name_from(cls, fallback='') or cls}", fallback="svc")


def pack_service(file: Path) -> str:
    """The service file's directory as a base64 code snapshot."""
    from shipyard.flow.loader import module_name_for
    from shipyard.store.code import pack_code

    return base64.b64encode(pack_code(file, module_name_for(file))).decode()


@click.command("deploy")
@click.argument("target", metavar="FILE.py:Class")
@click.option("--name", required=True, help="The service name: POST /NAME/ENDPOINT.")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help="Pin a model (name, name:version, name@alias) at deploy time (repeatable).",
)
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="K=V",
    help="A setting for the workers' environment, stored as given: use --secret for secrets.",
)
@click.option(
    "--secret",
    "secret_refs",
    multiple=True,
    metavar="NAME=env:VAR|NAME=file:PATH",
    help="A secret for the workers' environment, read by the host at each worker's start "
    "from its environment variable VAR or its file PATH; only the reference is stored "
    "(repeatable).",
)
@click.option(
    "--memory",
    metavar="SIZE",
    default=None,
    help="Each replica's memory limit, e.g. 512M or 2G: a replica over it is killed and "
    "restarted, and its deployment's events say so.",
)
@click.option(
    "--follow",
    "follows",
    multiple=True,
    metavar="NAME@ALIAS",
    help="Pin the model the alias points at now, and roll to the version it points at "
    "whenever it moves (repeatable). `shipyard rollback` pauses following until a deploy "
    "gives --follow again; a deploy without --follow follows nothing.",
)
@click.option(
    "--on",
    "where",
    type=click.Choice(["host", "ray"]),
    default="host",
    show_default=True,
    help="Where the replicas run: the host's own worker processes, or a Ray Serve "
    "deployment that Ray places and autoscales (the host stays the front door; it needs "
    "SHIPYARD_RAY_ADDRESS).",
)
@click.option(
    "--min-replicas",
    type=click.IntRange(1, 1024),
    default=None,
    help="--on ray: the fewest replicas Ray keeps (default --replicas).",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(1, 1024),
    default=None,
    help="--on ray: the most replicas Ray scales to (default the minimum).",
)
@click.option(
    "--target-ongoing",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="--on ray: requests each replica should be running; Ray adds replicas above it "
    "(default 2).",
)
@click.option(
    "--replica-cpus",
    type=click.FloatRange(min=0),
    default=None,
    help="--on ray: CPUs Ray reserves for each replica (default 1).",
)
@click.option(
    "--replica-resource",
    "replica_resources",
    multiple=True,
    metavar="NAME=AMOUNT",
    help="--on ray: a custom Ray resource each replica needs, e.g. gpu_node=0.01 to place "
    "the replicas only on nodes that have it (repeatable).",
)
@_url_option
@_key_option
def deploy_command(
    target: str,
    name: str,
    replicas: int,
    models: tuple[str, ...],
    follows: tuple[str, ...],
    env: tuple[str, ...],
    secret_refs: tuple[str, ...],
    memory: str | None,
    where: str,
    min_replicas: int | None,
    max_replicas: int | None,
    target_ongoing: float | None,
    replica_cpus: float | None,
    replica_resources: tuple[str, ...],
    url: str,
    key: str | None,
) -> None:
    """Deploy a service class to the host, live, without restarting it.

    Uploads a snapshot of the file's directory; new replicas start, and traffic switches to
    them only once every one is ready; the old ones drain. If load() fails, the old version
    keeps serving.

    \b
    Examples:
      shipyard deploy service.py:Ranker --name ranker --replicas 2 --model ranker@prod
      shipyard deploy service.py:Ranker --name ranker --secret API_KEY=env:RANKER_API_KEY
      shipyard deploy service.py:Ranker --name ranker --secret API_KEY=file:/run/secrets/ranker
      shipyard deploy service.py:Ranker --name ranker --memory 512M
      shipyard deploy service.py:Ranker --name ranker --follow ranker@prod
      shipyard deploy service.py:Ranker --name ranker --on ray --min-replicas 1 --max-replicas 8
    """
    from shipyard.serve.follow import FollowError, parse_follow
    from shipyard.serve.memory import SizeError, parse_size
    from shipyard.serve.secrets import SecretError, parse_secret

    file, _, cls = target.partition(":")
    path = Path(file)
    if not file.endswith(".py") or not cls or not path.is_file():
        raise click.BadParameter(
            f"{target!r}: expected an existing FILE.py:ClassName", param_hint="FILE.py:Class"
        )
    variables = {}
    for item in env:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"{item!r}: expected K=V", param_hint="--env")
        variables[k] = v
    secrets = {}
    for item in secret_refs:
        try:
            secret, reference = parse_secret(item)
        except SecretError as exc:
            raise click.BadParameter(str(exc), param_hint="--secret") from None
        secrets[secret] = reference
    for spec in follows:
        try:
            parse_follow(spec)
        except FollowError as exc:
            raise click.BadParameter(str(exc), param_hint="--follow") from None
    try:
        limit = parse_size(memory) if memory is not None else None
    except SizeError as exc:
        raise click.BadParameter(str(exc), param_hint="--memory") from None
    body = {
        "name": name,
        "entry": f"{path.name}:{cls}",
        "code": pack_service(path.resolve()),
        "replicas": replicas,
        "models": list(models),
        "follow": list(follows),
        "env": variables,
        "secrets": secrets,
        "memory": limit,
        "user": current_user(),
    }
    ray_options: dict[str, Any] = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target_ongoing": target_ongoing,
        "replica_cpus": replica_cpus,
    }
    resources: dict[str, float] = {}
    for item in replica_resources:
        resource, sep, amount = item.partition("=")
        try:
            resources[resource] = float(amount)
        except ValueError:
            resource = ""
        if not sep or not resource:
            raise click.BadParameter(
                f"{item!r}: expected NAME=AMOUNT", param_hint="--replica-resource"
            )
    if resources:
        ray_options["replica_resources"] = resources
    given = [k for k, v in ray_options.items() if v is not None]
    if where == "host" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise click.BadParameter(f"{flags} apply with --on ray", param_hint="--on")
    if where == "ray":
        body["on"] = "ray"
        body.update({k: v for k, v in ray_options.items() if v is not None})
    click.echo(f"deploying {target} as {name} ({replicas} replica(s))...", err=True)
    _print_deployment(_call("POST", url, "/deployments", key, body), notes=bool(follows))


@click.command("undeploy")
@click.argument("name")
@_url_option
@_key_option
def undeploy_command(name: str, url: str, key: str | None) -> None:
    """Stop a service (its requests in flight finish first).

    Example: shipyard undeploy ranker
    """
    _call("DELETE", url, f"/deployments/{name}", key)
    click.echo(f"{name} undeployed")


@click.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(1, 64))
@click.option(
    "--max",
    "max_replicas",
    type=click.IntRange(1, 1024),
    default=None,
    help="A deployment on Ray: Ray autoscales between REPLICAS and this (default REPLICAS).",
)
@_url_option
@_key_option
def scale_command(
    name: str, replicas: int, max_replicas: int | None, url: str, key: str | None
) -> None:
    """Set a service's number of replicas (on Ray: its minimum, and --max its maximum).

    \b
    Examples:
      shipyard scale ranker 4
      shipyard scale ranker 2 --max 8      # a deployment on Ray
    """
    body: dict[str, Any] = {"replicas": replicas}
    if max_replicas is not None:
        body["max_replicas"] = max_replicas
    _print_deployment(_call("POST", url, f"/deployments/{name}/scale", key, body))


@click.command("rollback")
@click.argument("name")
@_url_option
@_key_option
def rollback_command(name: str, url: str, key: str | None) -> None:
    """Return a service to its previous version (code snapshot and model pins).

    A deployment that follows an alias (deploy --follow) stops following it until it is
    deployed again with --follow.

    Example: shipyard rollback ranker
    """
    _print_deployment(_call("POST", url, f"/deployments/{name}/rollback", key, {}), notes=True)


@click.command("deployments")
@click.argument("name", required=False)
@_url_option
@_key_option
def deployments_command(name: str | None, url: str, key: str | None) -> None:
    """List deployed services, or show one with its versions.

    Example: shipyard deployments ranker
    """
    if name is None:
        for d in _call("GET", url, "/deployments", key)["deployments"]:
            _print_deployment(d)
        return
    d = _call("GET", url, f"/deployments/{name}", key)
    _print_deployment(d, notes=True)
    for v in d["versions"]:
        pins = ", ".join(f"{k}={p}" for k, p in v["pins"].items()) or "-"
        secrets = "".join(f"  secret {k}={r}" for k, r in (v.get("secrets") or {}).items())
        if v.get("memory"):
            secrets += f"  memory {v['memory'] >> 20} MB"
        if v.get("dev"):
            secrets += "  dev (shipyard serve FILE.py:Class; not restored)"
        if v.get("ray"):
            ray = v["ray"]
            secrets += f"  on ray {ray['min_replicas']}..{ray['max_replicas']} replicas"
        if str(v.get("created_by", "")).startswith("follow:"):
            secrets += f"  by {v['created_by']}"  # the host rolled it: the alias moved
        click.echo(
            f"  v{v['version']}  {v['status']:<9} {v['created_at'][:19]}  "
            f"{v['entry']}  models: {pins}{secrets}  {v.get('message') or ''}".rstrip()
        )
    for event in d.get("events") or []:
        click.echo(f"  {event['at'][:19]}  {event['event']}: {event['reason']}")


COMMANDS: list[click.Command] = [
    serve_command,
    deploy_command,
    undeploy_command,
    scale_command,
    rollback_command,
    deployments_command,
]

__all__ = ["COMMANDS"]
