"""kafka.security_protocol / kafka.tls / kafka.sasl: parsing, validation, and no secret leaks."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from statuswatch.config import Settings, load_settings
from statuswatch.errors import ConfigError, SourceError
from statuswatch.shell.kafka_client import security_kwargs

SECRET = "Hunter2-S3CRET-do-not-print"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def statuswatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statuswatch", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )


def sasl_yaml(body: str, protocol: str = "SASL_SSL") -> str:
    return f"kafka:\n  security_protocol: {protocol}\n  sasl:\n" + "".join(
        f"    {line}\n" for line in body.splitlines()
    )


def test_tls_and_sasl_from_yaml(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read at load time")
    s = load_settings(write(tmp_path, (
        "kafka:\n  security_protocol: SASL_SSL\n"
        f"  tls: {{ca_file: {ca}, check_hostname: false}}\n"
        f"  sasl: {{mechanism: SCRAM-SHA-256, username: alice, password: {SECRET}}}\n"
    )))
    assert s.kafka.tls is not None and s.kafka.tls.ca_file == ca
    assert s.kafka.tls.check_hostname is False
    assert s.kafka.sasl is not None and s.kafka.sasl.mechanism == "SCRAM-SHA-256"
    assert s.kafka.sasl.password_value() == SECRET
    assert SECRET not in repr(s) and SECRET not in str(s)
    assert SECRET not in repr(s.kafka.sasl) and SECRET not in s.model_dump_json()


def test_password_from_the_environment_merges_with_yaml(tmp_path, monkeypatch):
    monkeypatch.setenv("STATUSWATCH_KAFKA__SASL__PASSWORD", SECRET)
    s = load_settings(write(tmp_path, sasl_yaml("username: alice")))
    assert s.kafka.sasl is not None
    assert (s.kafka.sasl.username, s.kafka.sasl.password_value()) == ("alice", SECRET)
    assert SECRET not in repr(s)


def test_password_from_a_file(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")  # as `echo` or a k8s secret writes it
    s = load_settings(write(tmp_path, sasl_yaml(f"username: alice\npassword_file: {secret_file}")))
    assert s.kafka.sasl is not None and s.kafka.sasl.password_value() == SECRET
    kwargs = security_kwargs(Settings(kafka=s.kafka.model_copy(
        update={"security_protocol": "SASL_PLAINTEXT"})).kafka)
    assert kwargs["sasl_plain_password"] == SECRET
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "ssl_context" not in kwargs


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (sasl_yaml(f"username: a\npassword: {SECRET}\npassword_file: /etc/hostname"),
         "not both"),
        (sasl_yaml("username: a"), "password (or password_file) is required"),
        (sasl_yaml("username: a\npassword_file: /nonexistent/pw"), "not a readable file"),
        (sasl_yaml(f"mechanism: SCRAM-SHA-1\nusername: a\npassword: {SECRET}"), "SCRAM-SHA-512"),
        (sasl_yaml(f"username: a\npassword: [{SECRET}]"), "valid string"),
        (sasl_yaml(f"username: a\npasword: {SECRET}"), "unknown key"),
        (sasl_yaml(f"username: a\npassword: {SECRET}", protocol="SSL"), "needs security_protocol"),
        ("kafka:\n  security_protocol: SASL_SSL\n", "needs a sasl section"),
        ("kafka:\n  tls: {check_hostname: false}\n", "needs security_protocol SSL"),
        ("kafka:\n  security_protocol: SSL\n  tls: {key_file: /etc/hostname}\n", "needs cert_file"),
        (f"kafka:\n  security_protocol: SSL\n  tls: {{key_password: {SECRET}, "
         "key_password_file: /etc/hostname}\n", "not both"),
        ("kafka:\n  security_protocol: TLS\n", "SASL_SSL"),
    ],
)
def test_bad_security_config_names_the_problem_and_hides_the_secret(tmp_path, text, problem):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    message = str(err.value)
    assert problem in message
    assert "kafka" in message
    assert SECRET not in message
    assert SECRET not in repr(err.value)


def test_check_config_never_prints_the_secret(tmp_path):
    bad = write(tmp_path, sasl_yaml(f"mechanism: SCRAM-SHA-1\nusername: a\npassword: {SECRET}"))
    done = statuswatch("check-config", "--config", str(bad))
    assert done.returncode == 2
    assert "kafka.sasl.mechanism" in done.stderr
    assert SECRET not in done.stderr + done.stdout
    # a value that is the secret itself in the wrong place (type error) is not echoed either
    done = statuswatch("check-config", "--config", str(bad),
                       env={"STATUSWATCH_KAFKA__SASL__USERNAME": "", "STATUSWATCH_KAFKA__SASL__"
                            "PASSWORD": SECRET})
    assert done.returncode == 2 and SECRET not in done.stderr + done.stdout


def test_startup_logs_never_show_the_secret(tmp_path):
    """`statuswatch -v run` with SASL against a port nobody listens on: fails, names no secret."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the run: nothing listens there
    config = write(tmp_path, (
        f"kafka:\n  bootstrap_servers: 127.0.0.1:{port}\n  security_protocol: SASL_PLAINTEXT\n"
        "  sasl: {username: alice}\nmetrics: {enabled: false}\n"
    ))
    done = statuswatch("-v", "run", "--config", str(config),
                       env={"STATUSWATCH_KAFKA__SASL__PASSWORD": SECRET})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot connect to Kafka" in done.stderr
    assert "DEBUG" in done.stderr  # the debug log really ran
    assert SECRET not in done.stderr + done.stdout


def test_ssl_context_follows_the_config(tmp_path):
    s = Settings(kafka={"security_protocol": "SSL", "tls": {"check_hostname": False}})
    kwargs = security_kwargs(s.kafka)
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED  # never turned off
    assert Settings(kafka={"security_protocol": "SSL"}).kafka.tls is None
    assert security_kwargs(Settings(kafka={"security_protocol": "SSL"}).kafka)[
        "ssl_context"].check_hostname is True


def test_unusable_tls_files_are_a_source_error(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    s = Settings(kafka={"security_protocol": "SSL", "tls": {"ca_file": ca}})
    with pytest.raises(SourceError, match="cannot set up TLS"):
        security_kwargs(s.kafka)
