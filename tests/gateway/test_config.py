"""Configuration: strict validation with file:line, secrets, and MLflow's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.gateway import ConfigError, Provider, RouteType, load_config, parse_config

ENV = {"KEY": "sk-1"}
GOOD = """\
routes:
  - name: chat
    type: chat
    upstream: {provider: openai, base_url: "https://api.example.com/v1", model: small,
               api_key: "${KEY}"}
    timeout: 5
    retries: {attempts: 3, backoff: 0.1}
    fallback: [local]
    limits: {requests_per_minute: 600, tokens_per_minute: 200000, per_key: {requests_per_minute: 5}}
    prices: {input_per_1k: 0.15, output_per_1k: 0.6}
  - name: local
    type: chat
    upstream: {provider: openai, base_url: "http://127.0.0.1:8080/v1", model: small-local}
  - name: ranker
    type: service
    upstream: {service: ranker}
"""


def test_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(GOOD)
    config = load_config(path, host_url="http://127.0.0.1:8000", environ=ENV)
    chat = config.routes["chat"]
    assert chat.type is RouteType.CHAT and chat.upstream.api_key == "sk-1"
    assert "sk-1" not in repr(chat)  # the credential is never printed
    assert chat.retries.attempts == 3 and chat.timeout == 5 and chat.line == 2
    assert chat.limits["per_key"] == {"requests_per_minute": 5}
    assert chat.prices is not None and chat.prices.output_per_1k == 0.6
    assert [r.name for r in config.chain("chat")] == ["chat", "local"]
    assert config.routes["ranker"].upstream.base_url == "http://127.0.0.1:8000/ranker"


def test_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    text = GOOD.replace('"${KEY}"', f'"file:{secret}"')
    config = parse_config(text, environ={}, host_url="http://h:1")
    assert config.routes["chat"].upstream.api_key == "from-file"


@pytest.mark.parametrize(
    ("old", "new", "line", "reason"),
    [
        ("    timeout: 5", "    timeout: 5\n    colour: blue", 7, "unknown field 'colour'"),
        ("fallback: [local]", "fallback: [local, nope]", 8, "unknown route 'nope'"),
        ('"https://api.example.com/v1"', '"ftp://x/v1"', 4, "http:// or https://"),
        ('"https://api.example.com/v1"', '"https://u:p@x/v1"', 4, "credentials"),
        ('"${KEY}"', '"${MISSING}"', 5, "MISSING"),
        ('"${KEY}"', '"sk-literal"', 5, "not the secret itself"),
        ('"${KEY}"', '"file:/no/such/file"', 5, "cannot read the secret file"),
        ("    type: service", "    type: servce", 15, "unknown route type 'servce'"),
        ("model: small-local}", "model: small-local}\n    fallback: [chat]", 8, "fallback cycle"),
        (
            "  - name: ranker\n    type: service",
            "  - name: ranker\n    type: embeddings",
            16,
            "provider",
        ),
        ("  - name: local", "  - name: Local_1", 11, "route name 'Local_1'"),
        ("    timeout: 5", "    timeout: 5\n    timeout: 6", 7, "duplicate key 'timeout'"),
        # an upstream asked for gzip could not be scrubbed of credentials as it answers
        (
            "    timeout: 5",
            "    timeout: 5\n    forward_headers: [Accept-Encoding]",
            7,
            "'Accept-Encoding' is never forwarded",
        ),
        ("    timeout: 5", "    timeout: [5", 7, "invalid YAML"),
        ("requests_per_minute: 600", "requests_per_hour: 600", 9, "unknown limit"),
        ("per_key: {requests_per_minute: 5}", "per_key: {per_key: {}}", 9, "limit 'per_key'"),
        (
            '    type: chat\n    upstream: {provider: openai, base_url: "http://127',
            '    type: embeddings\n    upstream: {provider: openai, base_url: "http://127',
            8,
            "types must match",
        ),
    ],
)
def test_errors_name_file_line_and_reason(old: str, new: str, line: int, reason: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as bad:
        parse_config(text, "g.yaml", environ=ENV, host_url="http://h:1")
    assert bad.value.file == "g.yaml" and reason in bad.value.reason
    assert bad.value.line == line, str(bad.value)
    assert str(bad.value).startswith(f"g.yaml:{line}: ")


def test_a_service_route_needs_a_host_url() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_config(GOOD, "g.yaml", environ=ENV)
    assert bad.value.line == 16 and "host_url" in bad.value.reason


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        ("ui", "'ui' can never be a service name (reserved: api, docs, gateway,"),
        ("Ranker_1", "service name 'Ranker_1' is not valid: use 1-63 lowercase letters"),
    ],
)
def test_service_upstreams_follow_the_service_name_rule(service: str, reason: str) -> None:
    text = GOOD.replace("upstream: {service: ranker}", f"upstream: {{service: {service}}}")
    with pytest.raises(ConfigError) as bad:
        parse_config(text, "g.yaml", environ=ENV, host_url="http://h:1")
    assert bad.value.reason.startswith(reason) and bad.value.line == 16, str(bad.value)
    assert "[a-z][a-z0-9-]*" not in bad.value.reason  # the old message contradicted the rule


MLFLOW = """\
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $OPENAI_API_KEY
        openai_api_base: http://127.0.0.1:9999/v1
    limit:
      renewal_period: minute
      calls: 10
  - name: claude
    endpoint_type: llm/v1/chat
    model:
      provider: anthropic
      name: claude-x
      config:
        anthropic_api_key: ${ANTHROPIC_API_KEY}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {provider: openai, name: text-embedding, config: {openai_api_key: literal-key}}
"""


def test_mlflow_format_is_mapped_to_routes() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"}
    config = parse_config(MLFLOW, "m.yaml", environ=env)
    assert config.format == "mlflow"
    chat, claude, embed = (config.routes[n] for n in ("chat", "claude", "embed"))
    assert chat.upstream.base_url == "http://127.0.0.1:9999/v1" and chat.upstream.model == (
        "gpt-4o-mini"
    )
    assert chat.upstream.api_key == "sk-o" and dict(chat.limits) == {"requests_per_minute": 10}
    assert claude.upstream.provider is Provider.ANTHROPIC and claude.upstream.api_key == "sk-a"
    assert embed.type is RouteType.EMBEDDINGS and embed.upstream.api_key == "literal-key"
    legacy = MLFLOW.replace("endpoints:", "routes:").replace("endpoint_type", "route_type")
    assert parse_config(legacy, environ=env).routes.keys() == config.routes.keys()


@pytest.mark.parametrize(
    ("old", "new", "line", "reason"),
    [
        ("provider: openai\n      name: gpt", "provider: bedrock\n      name: gpt", 5, "bedrock"),
        ("renewal_period: minute", "renewal_period: hour", 11, "renewal_period 'hour'"),
        (
            "        openai_api_base",
            "        openai_organization: o\n        openai_api_base",
            9,
            "unknown field 'openai_organization'",
        ),
        ("$OPENAI_API_KEY", "$NOT_SET", 8, "NOT_SET"),
    ],
)
def test_mlflow_errors_have_lines(old: str, new: str, line: int, reason: str) -> None:
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a"}
    with pytest.raises(ConfigError) as bad:
        parse_config(MLFLOW.replace(old, new, 1), "m.yaml", environ=env)
    assert reason in bad.value.reason and bad.value.line == line, str(bad.value)
