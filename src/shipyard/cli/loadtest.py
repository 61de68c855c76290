"""``shipyard loadtest``: load-test a service on the configured host, or any URL given."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shipyard.cli._common import DurationType

if TYPE_CHECKING:
    from shipyard.loadtest import Objective, Outcome, Plan

#: the request cap when --max-requests is not given
DEFAULT_MAX_REQUESTS = 1_000_000


@click.command("loadtest")
@click.argument("target", metavar="SERVICE/ENDPOINT|URL")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Open model: start this many requests a second, whatever the answers do; "
    "latency is measured from when each should have started.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Closed model: this many connections, each sending its next request when "
    "its answer arrives.",
)
@click.option(
    "--duration",
    type=DurationType(),
    default="10s",
    show_default=True,
    help="How long to measure, e.g. 30s or 2m.",
)
@click.option(
    "--ramp",
    type=DurationType(),
    default="0s",
    show_default=True,
    help="Warm up first, not measured: the rate (or the connections) grow evenly "
    "from zero over it.",
)
@click.option(
    "--max-requests",
    type=click.IntRange(1),
    default=DEFAULT_MAX_REQUESTS,
    show_default=True,
    help="Stop sending after this many requests.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Spread the client over this many processes (their histograms merged).",
)
@click.option(
    "--timeout",
    type=DurationType(),
    default="10s",
    show_default=True,
    help="A request with no answer after this is a Timeout error.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Open model: connections opened at most, as needed; "
    "beyond, requests wait for one (and the corrected latency counts the wait).",
)
@click.option(
    "--json",
    "json_body",
    metavar="JSON",
    default=None,
    help='The body of every request, e.g. \'{"profile_id": "p1"}\'.',
)
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the JSON body of every request.",
)
@click.option(
    "--bodies",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.jsonl",
    help="One JSON body a line, sent in turn and cycled; a line may be "
    '{"endpoint": "score", "weight": 3, "body": {...}} to mix endpoints.',
)
@click.option("--method", default=None, help="[default: POST with a body, GET without]")
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="An extra request header (repeatable).",
)
@click.option(
    "--slo",
    default=None,
    metavar="'p99<50ms,errors<0.1%'",
    help="Objectives: exit status 1 when one is missed (pNN, max, mean in us/ms/s; "
    "errors in % or a fraction; rps).",
)
@click.option(
    "--find-max",
    is_flag=True,
    default=False,
    help="Search for the highest --rate (the start) that meets --slo, in at most --steps "
    "runs of --duration each.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 50),
    default=6,
    show_default=True,
    help="--find-max: the most runs the search makes.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write summary.json, seconds.csv and report.html here.",
)
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="For SERVICE/ENDPOINT targets: keep the summary and report with the deployment "
    "on the host (needs an admin key), listed on the UI's deployment page.",
)
@click.option(
    "--url",
    default=None,
    help="The host for SERVICE/ENDPOINT targets (env: SHIPYARD_URL; default "
    "http://127.0.0.1:8000).",
)
@click.option(
    "--key",
    envvar="SHIPYARD_KEY",
    default=None,
    help="The key to send as `Authorization: Bearer` (env: SHIPYARD_KEY; for "
    "SERVICE/ENDPOINT targets the default is $SHIPYARD_HOME/admin.token when "
    "there is one).",
)
def loadtest_command(
    target: str,
    rate: float | None,
    concurrency: int | None,
    duration: timedelta,
    ramp: timedelta,
    max_requests: int,
    processes: int,
    timeout: timedelta,
    max_connections: int,
    json_body: str | None,
    body_file: Path | None,
    bodies: Path | None,
    method: str | None,
    headers: tuple[str, ...],
    slo: str | None,
    find_max: bool,
    steps: int,
    out: Path | None,
    record: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Load-test a service: SERVICE/ENDPOINT on the configured host, or a full URL.

    Two models. --rate R (open): requests start on a fixed schedule whatever the answers
    do, and latency is measured from when each should have started, so a stall counts for
    every request it delayed (coordinated omission corrected; the uncorrected figures are
    shown beside). --concurrency N (closed): N connections, each waiting for its answer.
    Always bounded: --duration (default 10s) and --max-requests.

    \b
    Bodies: --json TEXT, --body-file FILE, or --bodies FILE.jsonl with one JSON body a line,
    cycled. A line {"endpoint": E, "weight": W, "body": B} (only these keys, "body" needed)
    sends B to E (ENDPOINT of the same service, SERVICE/ENDPOINT, or /a/path) W times per
    pass over the file.

    \b
    Examples:
      shipyard loadtest ranker/home --json '{"profile_id": "p1"}' --rate 500 --duration 30s
      shipyard loadtest http://127.0.0.1:8000/ranker/home --body-file body.json \\
          --concurrency 32 --duration 10s
      shipyard loadtest ranker/home --bodies traffic.jsonl --rate 200 \\
          --slo 'p99<50ms,errors<0.1%' --out report/
    """
    from shipyard import loadtest as lt

    if (rate is None) == (concurrency is None):
        raise click.UsageError(
            "give one load model: --rate R (open: R requests a second on a schedule) or "
            "--concurrency N (closed: N connections)"
        )
    if sum(x is not None for x in (json_body, body_file, bodies)) > 1:
        raise click.UsageError("give at most one of --json, --body-file and --bodies")
    if method is not None and (method.upper() == "HEAD" or not method.isalpha()):
        raise click.BadParameter(
            f"{method!r}: give a method such as GET, POST or PUT (HEAD is not supported: its "
            "answers announce a body they do not send)",
            param_hint="--method",
        )
    if find_max and (slo is None or rate is None):
        raise click.UsageError(
            "--find-max needs --slo (what to meet) and --rate (the rate to start from), e.g. "
            "--find-max --rate 100 --slo 'p99<50ms,errors<0.1%'"
        )
    if duration.total_seconds() <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--duration")
    try:
        objectives = lt.parse_slo(slo) if slo is not None else None
        address, on_host = lt.parse_target(target, _host_url(url) if "://" not in target else "")
        if json_body is not None:
            kinds = [lt.body_from_json(json_body)]
        elif body_file is not None:
            kinds = [lt.body_from_file(body_file)]
        elif bodies is not None:
            kinds = lt.bodies_from_jsonl(bodies)
        else:
            kinds = []
        extra = [lt.parse_header(h) for h in headers]
    except lt.LoadtestError as exc:
        raise click.UsageError(str(exc)) from None
    admin_key = key
    if key is None and on_host:
        key = admin_key = _local_admin_token()
    recorder = None
    if on_host and record:
        recorder = _Recorder(_host_url(url), target.split("/", 1)[0], admin_key)
    if key is not None and not any(name.lower() == "authorization" for name, _ in extra):
        extra.append(("Authorization", f"Bearer {key}"))
    plan = lt.Plan(
        address=address,
        requests=tuple(
            lt.request_cycle(address, kinds, method=method and method.upper(), headers=extra)
        ),
        duration=duration.total_seconds(),
        max_requests=max_requests,
        rate=rate,
        concurrency=concurrency,
        ramp=ramp.total_seconds(),
        timeout=max(0.001, timeout.total_seconds()),
        max_connections=max_connections,
    )
    shown = target if on_host else address.origin + address.path
    model = f"{rate:g} req/s" if rate is not None else f"{concurrency} connections"
    click.echo(
        f"load-testing {shown}: {model} for {plan.duration:g}s"
        + (f" after a {plan.ramp:g}s ramp" if plan.ramp else "")
        + (f" over {processes} processes" if processes > 1 else ""),
        err=True,
    )
    if find_max:
        assert objectives is not None
        _find_max(
            plan,
            objectives,
            steps=steps,
            processes=processes,
            shown=shown,
            out=out,
            recorder=recorder,
        )
        return
    progress = lt.Progress(
        lambda text: click.echo(text, nl=False, err=True), tty=sys.stderr.isatty()
    )
    try:
        outcome = lt.run(plan, processes=processes, on_interval=progress)
    except lt.LoadtestError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        progress.finish()
    checks = lt.judge(outcome, objectives) if objectives is not None else None
    result = lt.summary(outcome, target=shown, checks=checks)
    click.echo(lt.table(result))
    if out is not None:
        for path in lt.write_outputs(outcome, result, out):
            click.echo(f"wrote {path}", err=True)
    if recorder is not None:
        recorder.send(outcome, result)
    if checks is not None:
        for c in checks:
            click.echo(("  " if c.met else "SLO MISSED: ") + c.describe())
        if not all(c.met for c in checks):
            sys.exit(1)


def _find_max(
    plan: Plan,
    objectives: list[Objective],
    *,
    steps: int,
    processes: int,
    shown: str,
    out: Path | None,
    recorder: _Recorder | None,
) -> None:
    from shipyard import loadtest as lt
    from shipyard.loadtest.search import Step, find_max

    each = plan.ramp + plan.duration
    click.echo(
        f"searching for the highest rate meeting {', '.join(o.text for o in objectives)}: "
        f"from {plan.rate:g} req/s, at most {steps} steps of {each:g}s ({steps * each:g}s "
        "in all, plus the answers' waits)",
        err=True,
    )

    def said(step: Step) -> None:
        total = step.outcome.total
        rate = total.errors / total.requests if total.requests else 1.0
        verdict = "met" if step.met else ("client-limited" if step.client_limited else "MISSED")
        click.echo(
            f"  {step.rate:>10,.1f} req/s: achieved {step.outcome.rps:,.1f}, p99 "
            f"{total.latency.percentile(99) / 1000:.2f} ms, errors {rate:.2%}: {verdict}",
            err=True,
        )

    try:
        search = find_max(plan, objectives, steps=steps, processes=processes, on_step=said)
    except lt.LoadtestError as exc:
        raise click.ClickException(str(exc)) from None
    best = search.best
    ended = {
        "converged": "the rates met and missed are within 5 %",
        "steps": f"--steps {steps} used",
        "client": "the client became the limit: add --processes to search higher",
    }
    if best is None:
        click.echo(f"no rate tried met the SLO ({ended[search.ended_by]}); the lowest tried:")
        chosen = min(search.steps, key=lambda s: s.rate)
    else:
        click.echo(
            f"highest rate meeting the SLO: {best.rate:,.1f} req/s ({ended[search.ended_by]})"
        )
        chosen = best
    result = lt.summary(chosen.outcome, target=shown, checks=chosen.checks)
    result["find_max"] = {
        "max_rate": best.rate if best else None,
        "ended_by": search.ended_by,
        "steps": [
            {
                "rate": s.rate,
                "rps": round(s.outcome.rps, 2),
                "met": s.met,
                "client_limited": s.client_limited,
                "p99_ms": round(s.outcome.total.latency.percentile(99) / 1000, 3),
                "errors": s.outcome.total.errors,
                "requests": s.outcome.total.requests,
            }
            for s in search.steps
        ],
    }
    click.echo(lt.table(result))
    if out is not None:
        for path in lt.write_outputs(chosen.outcome, result, out):
            click.echo(f"wrote {path}", err=True)
    if recorder is not None:
        recorder.send(chosen.outcome, result)
    if best is None:
        sys.exit(1)


class _Recorder:
    """Keeps a run with its deployment: ``POST /api/v1/deployments/{service}/loadtests`` on
    the host, with an admin key. A run that cannot be recorded is said, not failed."""

    def __init__(self, url: str, service: str, key: str | None) -> None:
        self.url, self.service, self.key = url.rstrip("/"), service, key

    def send(self, outcome: Outcome, result: dict[str, Any]) -> None:
        import httpx

        from shipyard.config import current_user
        from shipyard.loadtest.report import html

        if self.key is None:
            click.echo("not recorded with the deployment: no admin key (--key, or run this "
                       "on the host's machine); --no-record to skip", err=True)  # fmt: skip
            return
        body = {"summary": result, "report": html(outcome, result), "user": current_user()}
        try:
            response = httpx.post(
                f"{self.url}/api/v1/deployments/{self.service}/loadtests",
                json=body,
                headers={"Authorization": f"Bearer {self.key}", "X-Shipyard-User": current_user()},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            click.echo(f"not recorded with the deployment: {exc}", err=True)
            return
        if response.status_code != 201:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            click.echo(f"not recorded with the deployment ({response.status_code}): {message}",
                       err=True)  # fmt: skip
            return
        record = response.json()
        click.echo(f"recorded with {self.service} v{record.get('version')} "
                   f"(load test {record.get('id')}; the UI's page of {self.service} lists it)",
                   err=True)  # fmt: skip


def _host_url(url: str | None) -> str:
    from shipyard.config import ConfigError, settings

    try:
        return settings(url=url).url
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _local_admin_token() -> str | None:
    from shipyard.config import home
    from shipyard.keys import KeysError, read_admin_token

    try:
        return read_admin_token(home())
    except KeysError:
        return None


COMMANDS: list[click.Command] = [loadtest_command]

__all__ = ["COMMANDS"]
