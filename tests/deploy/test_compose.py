"""docker-compose.yml agrees with itself, the instance and workspace files, .env.example and the
Dockerfile; and docker-compose's own schema accepts it (when the docker-compose binary exists:
it validates without a Docker engine)."""

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DAGSTER_SERVICES = ("user_code", "webserver", "daemon", "celery_worker")
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def env_refs(node) -> set[str]:
    """Names read with `env: NAME` anywhere in a Dagster YAML document."""
    if isinstance(node, dict):
        found = {node["env"]} if isinstance(node.get("env"), str) else set()
        for value in node.values():
            found |= env_refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    return set()


def deploy_yaml(name: str):
    return yaml.safe_load((REPO_ROOT / "deploy" / name).read_text())


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def dockerfile_copies() -> dict[str, str]:
    """COPY source -> destination of deploy/Dockerfile (destinations made absolute)."""
    workdir, copies = "/", {}
    for line in (REPO_ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        parts = shlex.split(line)
        if parts[:1] == ["WORKDIR"]:
            workdir = parts[1]
        elif parts[:1] == ["COPY"]:
            *sources, dest = parts[1:]
            for source in sources:
                absolute = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest.removeprefix('./')}"
                target = f"{absolute.rstrip('/')}/{Path(source).name}" if dest.endswith("/") else absolute
                copies[source] = target
    return copies


def dockerfile_env() -> dict[str, str]:
    env = {}
    for line in (REPO_ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            name, value = line[4:].split("=", 1)
            env[name.strip()] = value.strip()
    return env


def test_every_service_of_the_deployment_is_there():
    assert set(SERVICES) == {"postgres", "user_code", "webserver", "daemon", "rabbitmq", "celery_worker",
                             "redis", "serving", "stream_consumer"}
    for name in ("postgres", "user_code", "webserver", "daemon", "redis", "serving", "stream_consumer"):
        assert "profiles" not in SERVICES[name], name
    for name in ("rabbitmq", "celery_worker"):
        assert SERVICES[name]["profiles"] == ["celery"], name


def test_commands_match_the_workspace_and_the_native_test():
    user_code = SERVICES["user_code"]["command"]
    assert user_code[:3] == ["dagster", "api", "grpc"]
    assert option(user_code, "-m") == PYPROJECT["module_name"] == "data_platform.definitions"
    workspace = deploy_yaml("workspace.yaml")
    [entry] = workspace["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["location_name"] == PYPROJECT["code_location_name"]
    env = SERVICES["webserver"]["environment"]
    # The webserver and daemon find the code server where compose starts it.
    assert env[grpc["host"]["env"]] == "user_code"
    assert env[grpc["port"]["env"]] == option(user_code, "-p")
    assert SERVICES["webserver"]["command"][0] == "dagster-webserver"
    assert SERVICES["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    copies = dockerfile_copies()
    for name in ("webserver", "daemon"):
        assert option(SERVICES[name]["command"], "-w") == copies["deploy/workspace.yaml"], name
    # The worker reads its broker URL from the environment: nothing under DAGSTER_HOME holds it.
    worker = SERVICES["celery_worker"]["command"]
    assert worker[:2] == ["celery", "-A"] and "worker" in worker
    assert option(worker, "-A") == "data_platform.jobs.celery_worker"
    assert (REPO_ROOT / "platform" / "jobs" / "celery_worker.py").is_file()
    # The instance the processes open is deploy/dagster.postgres.yaml.
    assert copies["deploy/dagster.postgres.yaml"] == f"{dockerfile_env()['DAGSTER_HOME']}/dagster.yaml"
    # The webserver publishes on loopback only: the OSS webserver has no authentication.
    assert [p.split(":")[0] for p in SERVICES["webserver"]["ports"]] == ["127.0.0.1"]


def test_services_get_every_variable_their_files_read():
    needed = (
        env_refs(deploy_yaml("dagster.postgres.yaml"))
        | env_refs(deploy_yaml("workspace.yaml"))
        | {"DATA_PLATFORM_WAREHOUSE_URL", "DATA_PLATFORM_CELERY_BROKER_URL"}
    )
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "DAGSTER_CODE_HOST", "DAGSTER_CODE_PORT",
            "DATA_PLATFORM_CELERY_BROKER_URL"} <= needed
    for name in DAGSTER_SERVICES:
        environment = SERVICES[name]["environment"]
        missing = needed - set(environment)
        assert not missing, f"{name} lacks {missing}"
    env = SERVICES["user_code"]["environment"]
    assert env["DAGSTER_PG_HOST"] == "postgres"
    assert env["DAGSTER_PG_DB"] == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert env["DAGSTER_PG_USER"] == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert env["DAGSTER_PG_PASSWORD"] == SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "@postgres:5432/${WAREHOUSE_DB" in env["DATA_PLATFORM_WAREHOUSE_URL"]
    assert "@rabbitmq:5672/" in env["DATA_PLATFORM_CELERY_BROKER_URL"]
    # Steps on workers write model files where the runs of user_code read them.
    assert env["DATA_PLATFORM_MODEL_DIR"]
    for name in ("user_code", "celery_worker"):
        assert f"models:{env['DATA_PLATFORM_MODEL_DIR']}" in SERVICES[name]["volumes"], name


def walk_strings(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


# Needed by the celery profile only: an empty default (no secret), checked when the broker starts
# (test_the_broker_refuses_to_start_without_a_password), because `:?` is enforced for every profile.
PROFILE_ONLY_PASSWORDS = {"RABBITMQ_PASSWORD"}


def from_environment(match) -> bool:
    if match is None:
        return False
    if match["name"] in PROFILE_ONLY_PASSWORDS:
        return match["op"] in (":?", "?") or (match["op"] == ":-" and match["arg"] == "")
    return match["op"] in (":?", "?")


def test_no_literal_secret_in_the_compose_file():
    for path, value in walk_strings(COMPOSE):
        key = path.rsplit(".", 1)[-1]
        if re.search(r"PASSWORD|PASS$|SECRET|TOKEN", key):
            assert INTERPOLATION.fullmatch(value), f"{path} is a literal: {value!r}"
            assert from_environment(INTERPOLATION.fullmatch(value)), f"{path} has a default password: {value!r}"
        # user:password@ in a URL: the password part must come from the environment.
        for url_password in url_passwords(value):
            assert from_environment(INTERPOLATION.fullmatch(url_password)), f"{path} has a literal password in a URL"


def url_passwords(value: str) -> list[str]:
    """The password parts of the URLs in value, interpolations kept whole."""
    found = [m.group(0) for m in INTERPOLATION.finditer(value)]
    masked = INTERPOLATION.sub(lambda m: f"<{found.index(m.group(0))}>", value)
    return [
        re.sub(r"<(\d+)>", lambda m: found[int(m.group(1))], password)
        for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", masked)
    ]


def test_the_secret_check_sees_url_passwords():
    assert url_passwords("amqp://guest:guest@rabbitmq:5672//") == ["guest"]
    assert url_passwords("postgresql://${U:-u}:${P:?set P in .env}@db/x") == ["${P:?set P in .env}"]


def test_env_example_defines_every_required_variable():
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    required = {m["name"] for m in INTERPOLATION.finditer(text) if m["op"] in (":?", "?", None)}
    defined = {
        line.split("=", 1)[0]
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert "POSTGRES_PASSWORD" in required
    # The broker's password is for the celery profile only: compose does not demand it.
    assert "RABBITMQ_PASSWORD" not in required and "RABBITMQ_PASSWORD" in defined
    assert required <= defined, required - defined
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_dockerfile_copies_what_the_services_reference():
    copies = dockerfile_copies()
    for source in copies:
        assert (REPO_ROOT / source).exists(), source
    assert {"pyproject.toml", "README.md", "platform", "deploy/dagster.postgres.yaml",
            "deploy/workspace.yaml"} <= set(copies)
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).is_file(), f"{name} mounts missing {source}"
    install = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    # The celery worker's command comes from the celery extra.
    assert "'.[celery]'" in install


COMPOSE_BIN = shutil.which("docker-compose")


@pytest.mark.skipif(COMPOSE_BIN is None, reason="no docker-compose binary (apt-get install docker-compose)")
def test_docker_compose_accepts_the_file(tmp_path):
    env_file = tmp_path / "env"
    shutil.copyfile(REPO_ROOT / ".env.example", env_file)
    base = [COMPOSE_BIN, "--env-file", str(env_file), "-f", str(REPO_ROOT / "docker-compose.yml")]
    clean_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = subprocess.run([*base, "--profile", "celery", "config", "-q"], env=clean_env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    services = subprocess.run([*base, "--profile", "celery", "config", "--services"], env=clean_env,
                              capture_output=True, text=True, timeout=120)
    assert set(services.stdout.split()) == set(SERVICES)
    # Without the password the file refuses to start anything.
    env_file.write_text("\n".join(
        line for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if not line.startswith("POSTGRES_PASSWORD=")
    ))
    refused = subprocess.run([*base, "config", "-q"], env=clean_env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr
    # Without the broker's password, everything but the celery profile still starts.
    env_file.write_text("\n".join(
        line for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if not line.startswith("RABBITMQ_PASSWORD=")
    ))
    accepted = subprocess.run([*base, "config", "-q"], env=clean_env, capture_output=True, text=True, timeout=120)
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize(("password", "starts"), [("", False), ("s3cret", True)])
def test_the_broker_refuses_to_start_without_a_password(tmp_path, password, starts):
    # The rabbitmq service's entrypoint, run by sh with a stand-in for the image's entrypoint.
    entrypoint = SERVICES["rabbitmq"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    assert SERVICES["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"] == "${RABBITMQ_PASSWORD:-}"
    script = entrypoint[2].replace("$$", "$")  # compose's escape of a literal $
    stand_in = tmp_path / "docker-entrypoint.sh"
    stand_in.write_text('#!/bin/sh\necho "started $1"\n')
    stand_in.chmod(0o755)
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "RABBITMQ_DEFAULT_PASS": password})
    if starts:
        assert proc.returncode == 0 and proc.stdout.strip() == "started rabbitmq-server"
    else:
        assert proc.returncode == 1 and "set RABBITMQ_PASSWORD" in proc.stderr and not proc.stdout


def test_the_serving_service_reads_the_redis_and_warehouse_the_assets_write():
    serving = SERVICES["serving"]
    command = serving["command"]
    assert command[:2] == ["data-platform", "serve"]
    assert option(command, "--host") == "0.0.0.0" and int(option(command, "--workers")) >= 1
    port = option(command, "--port")
    # Published on loopback only, like the webserver: the API has no authentication.
    assert serving["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(serving["healthcheck"]["test"])
    writer = SERVICES["user_code"]["environment"]
    env = serving["environment"]
    assert env["DATA_PLATFORM_WAREHOUSE_URL"] == writer["DATA_PLATFORM_WAREHOUSE_URL"]
    assert env["DATA_PLATFORM_REDIS_URL"] == writer["DATA_PLATFORM_REDIS_URL"]
    assert "@" not in env["DATA_PLATFORM_REDIS_URL"] and "//redis:6379" in env["DATA_PLATFORM_REDIS_URL"]
    assert serving["depends_on"]["redis"]["condition"] == "service_healthy"
    # Redis has no authentication here: it must not be published outside the network.
    assert "ports" not in SERVICES["redis"]


def test_the_stream_consumer_writes_where_the_stream_asset_reads():
    consumer = SERVICES["stream_consumer"]
    command = consumer["command"]
    assert command[:2] == ["data-platform", "stream"] and "--produce" not in command
    env = consumer["environment"]
    writer = SERVICES["user_code"]["environment"]
    assert env["DATA_PLATFORM_WAREHOUSE_URL"] == writer["DATA_PLATFORM_WAREHOUSE_URL"]
    assert env["DATA_PLATFORM_REDIS_URL"] == writer["DATA_PLATFORM_REDIS_URL"]
    # The asset reads the stream named by DATA_PLATFORM_STREAM (default `events`).
    assert option(command, "--stream") == env["DATA_PLATFORM_STREAM"] == writer.get("DATA_PLATFORM_STREAM", "events")
    assert consumer["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "ports" not in consumer
