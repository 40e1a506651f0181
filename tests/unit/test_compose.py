"""compose.yaml and the Dockerfile read as Docker Compose would, where no Docker engine is (issue 17).

What `docker compose config` would accept is not enough: these check what the stack relies on.
Each service that runs stays up with a healthcheck, none of ours as root, everything that must
outlive a container is a named volume, and the directories fairline shares with Asterisk are the
ones Asterisk's configuration (dialplan/asterisk.conf) writes to, at the same paths on both sides.
The compose semantics relied on: `services.*.{user, group_add, volumes, depends_on.condition,
healthcheck.test, secrets, restart}`, top-level `volumes` and `secrets`, `${VAR:?message}`
interpolation and `$$` for a literal `$`, YAML merge keys (`<<`) for the shared image settings.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "asterisk-docker"
sys.path.insert(0, str(DOCKER))

import stack as stackmod  # noqa: E402

COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
INSTANCE_DIR = "/srv/fairline/docker"  # docker-entrypoint.sh's default


def stage(name: str) -> str:
    """The Dockerfile's text from `FROM ... AS name` to the next FROM."""
    m = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", DOCKERFILE, re.M | re.S)
    assert m, name
    return m.group(1)


def mounts(service: str) -> dict[str, tuple[str, bool]]:
    """Mount point -> (named volume, read-only) of a service's short-syntax volumes."""
    found = {}
    for spec in SERVICES[service].get("volumes", []):
        source, target, *options = spec.split(":")
        assert source in COMPOSE["volumes"], f"{service}: {source} is not a named volume"
        found[target] = (source, options == ["ro"])
    return found


def volume_at(service: str, path: str) -> tuple[str, str, bool]:
    """The named volume that holds `path` in `service`, the path inside it, and whether it is read-only."""
    for target, (volume, ro) in sorted(mounts(service).items(), key=lambda m: -len(m[0])):
        if PurePosixPath(path).is_relative_to(target):
            return volume, str(PurePosixPath(path).relative_to(target)), ro
    raise AssertionError(f"{service}: {path} is in no volume: lost with the container")


def asterisk_directories() -> dict[str, str]:
    """asterisk.conf's [directories] as the Docker entrypoint renders them."""
    text = (ROOT / "dialplan" / "asterisk.conf").read_text().replace("@INSTANCE_DIR@", INSTANCE_DIR)
    return dict(re.findall(r"^(ast\w+dir) => (\S+)$", text, re.M))


def uid_of(user: str) -> int:
    m = re.fullmatch(r"(\d+):(\d+)", user)
    assert m, f"user {user!r}: expected numeric uid:gid, as the shared volumes hold files by number"
    return int(m.group(1))


class TestServices:
    def test_every_service_that_keeps_running_restarts_and_has_a_healthcheck(self) -> None:
        for name, service in SERVICES.items():
            if service.get("restart") == "no":  # a one-shot: its exit status is its health
                continue
            assert service.get("restart") == "unless-stopped", name
            test = service.get("healthcheck", {}).get("test")
            assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name

    def test_none_of_our_containers_runs_as_root(self) -> None:
        ours = {name for name, s in SERVICES.items() if "build" in s}
        assert ours == {"fallback", "asterisk", "fairline"}
        for name in ours:
            assert uid_of(SERVICES[name]["user"]) != 0, name
        # The official PostgreSQL image starts as root only to own its data directory, then runs as postgres.
        assert {name for name, s in SERVICES.items() if "user" not in s} == {"postgres"}
        assert SERVICES["postgres"]["image"].startswith("postgres:")

    def test_the_users_are_the_images_users_and_fairlines_is_in_asterisks_group(self) -> None:
        asterisk, fairline = stackmod.DOCKER_ASTERISK_UID, stackmod.DOCKER_FAIRLINE_UID
        assert SERVICES["asterisk"]["user"] == f"{asterisk}:{asterisk}"
        for name in ("fairline", "fallback"):
            assert SERVICES[name]["user"] == f"{fairline}:{fairline}"
            assert SERVICES[name]["group_add"] == [str(asterisk)]
        assert re.search(rf"groupadd --system --gid {asterisk} asterisk\b.*useradd --system --uid {asterisk} "
                         r"--gid asterisk\b.*\bUSER asterisk$", stage("asterisk"), re.S | re.M)
        assert re.search(rf"groupadd --system --gid {asterisk} asterisk\b.*groupadd --system --gid {fairline} fairline\b"
                         rf".*useradd --system --uid {fairline} --gid fairline --groups asterisk\b.*\bUSER fairline$",
                         stage("fairline"), re.S | re.M)

    def test_depends_on_names_services_with_what_each_condition_needs(self) -> None:
        for name, service in SERVICES.items():
            for other, dep in service.get("depends_on", {}).items():
                assert other in SERVICES, (name, other)
                condition = dep["condition"]
                assert condition in ("service_started", "service_healthy", "service_completed_successfully")
                if condition == "service_healthy":
                    assert "healthcheck" in SERVICES[other], (name, other)
                if condition == "service_completed_successfully":
                    assert SERVICES[other]["restart"] == "no", (name, other)
        # Asterisk takes no call before the fallback dialplan is there; fairline starts on a booted Asterisk.
        assert SERVICES["asterisk"]["depends_on"] == {"fallback": {"condition": "service_completed_successfully"}}
        assert SERVICES["fairline"]["depends_on"]["asterisk"] == {"condition": "service_healthy"}

    def test_secrets_are_the_files_stack_py_writes_each_container_its_own(self) -> None:
        declared = COMPOSE["secrets"]
        for name, service in SERVICES.items():
            for secret in service.get("secrets", []):
                assert secret in declared, (name, secret)
        assert SERVICES["asterisk"]["secrets"] == ["asterisk"]
        assert SERVICES["asterisk"]["environment"]["FAIRLINE_SECRETS"] == "/run/secrets/asterisk"
        assert SERVICES["fairline"]["secrets"] == ["fairline"]
        assert SERVICES["fairline"]["environment"]["FAIRLINE_SECRETS"] == "/run/secrets/fairline"
        assert set(stackmod.DOCKER_SECRETS) == {"asterisk", "fairline"}
        assert "PG_PASSWORD" not in stackmod.DOCKER_SECRETS["asterisk"][1]
        printed = set(re.findall(r'print\(f"export (\w+)=', (DOCKER / "stack.py").read_text()))
        for secret in declared.values():
            m = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", secret["file"])
            assert m and m.group(1) in printed, secret

    def test_every_dollar_is_an_escape_or_a_required_variable(self) -> None:
        """Compose interpolates `$NAME` and `${NAME}` in every value; a shell `$` must be written `$$`."""
        values = "\n".join(line for line in COMPOSE_TEXT.splitlines() if not line.lstrip().startswith("#"))
        for m in re.finditer(r"\$(\$|\{\w+:\?[^}]+\}|.)", values):
            assert m.group(1) == "$" or len(m.group(1)) > 1, values[m.start() - 40:m.end() + 10]
        # and the shell then sees $PG_PASSWORD from the secrets file it sourced
        assert "$$PG_PASSWORD@" in " ".join(SERVICES["fairline"]["entrypoint"])


class TestVolumes:
    def test_every_named_volume_is_used_and_every_used_one_declared(self) -> None:
        used = {volume for name in SERVICES for volume, _ in mounts(name).values()}
        assert used == set(COMPOSE["volumes"])

    @pytest.mark.parametrize("setting", ["FAIRLINE_SPOOL_DIR", "FAIRLINE_RECORDINGS_DIR"])
    def test_fairlines_spool_and_recordings_outlive_the_container(self, setting: str) -> None:
        volume, inside, ro = volume_at("fairline", SERVICES["fairline"]["environment"][setting])
        assert inside == "." and not ro
        # fairline's alone: no other container mounts them
        assert [n for n in SERVICES if volume in {v for v, _ in mounts(n).values()}] == ["fairline"]

    def test_the_database_outlives_its_container(self) -> None:
        assert volume_at("postgres", "/var/lib/postgresql/data")[0] == "pgdata"

    @pytest.mark.parametrize("setting, asterisk_path, fairline_writes", [
        # where Asterisk records (ARI recordings go to astspooldir/recording); fairline moves them out
        ("FAIRLINE_ASTERISK_RECORDINGS_DIR", "{astspooldir}/recording", True),
        # cdr_custom.conf's file, in astlogdir/cdr-custom; `fairline reconcile` reads it
        ("FAIRLINE_ASTERISK_CDR", "{astlogdir}/cdr-custom/fairline-cdr.csv", False),
        # the file extensions.conf includes, relative to astetcdir; fairline writes it, Asterisk reads it
        ("FAIRLINE_ASTERISK_FALLBACK", "{astetcdir}/fallback/fairline-fallback.conf", True),
    ])
    def test_fairline_sees_asterisks_files_where_asterisk_writes_them(
            self, setting: str, asterisk_path: str, fairline_writes: bool) -> None:
        where = asterisk_path.format(**asterisk_directories())
        fairline_path = SERVICES["fairline"]["environment"][setting]
        assert fairline_path == where  # same path in both containers (shared-dirs.sh makes them in both images)
        on_asterisk = volume_at("asterisk", where)
        on_fairline = volume_at("fairline", fairline_path)
        assert on_asterisk[:2] == on_fairline[:2]
        assert on_fairline[2] is not fairline_writes  # read-only where fairline only reads
        assert on_asterisk[2] is (setting == "FAIRLINE_ASTERISK_FALLBACK")  # Asterisk never writes its dialplan

    def test_the_includes_and_the_cdr_file_are_where_the_test_above_looks(self) -> None:
        assert '#tryinclude "fallback/fairline-fallback.conf"' in (ROOT / "dialplan" / "extensions.conf").read_text()
        assert "[fairline-cdr.csv]" in (ROOT / "dialplan" / "cdr_custom.conf").read_text()

    def test_the_fallback_one_shot_writes_into_the_volume_asterisk_includes(self) -> None:
        env = SERVICES["fallback"]["environment"]
        assert env["FAIRLINE_ASTERISK_FALLBACK"] == SERVICES["fairline"]["environment"]["FAIRLINE_ASTERISK_FALLBACK"]
        assert volume_at("fallback", env["FAIRLINE_ASTERISK_FALLBACK"])[::2] == ("fallback", False)
        assert SERVICES["fallback"]["entrypoint"] == ["/opt/fairline/fallback-init.sh"]
        assert f"COPY asterisk-docker/fallback-init.sh /opt/fairline/fallback-init.sh" in stage("fairline")
        assert env["FAIRLINE_CONFIG"] == "/etc/fairline/fairline.yaml"
        assert "COPY dialplan/fairline.yaml /etc/fairline/fairline.yaml" in stage("fairline")

    def test_both_images_make_the_shared_mount_points_alike(self) -> None:
        """An empty named volume takes owner and mode from the image that mounts it first: the same in both."""
        shared = {t for t, (v, _) in mounts("asterisk").items()} & {t for t, (v, _) in mounts("fairline").items()}
        script = (DOCKER / "shared-dirs.sh").read_text()
        made = {path.replace('"$d', INSTANCE_DIR).rstrip('"')
                for line in re.findall(r"^install -d (.*?)(?:\s+#.*)?$", script, re.M)
                for path in line.split() if path.startswith('"$d')}
        assert shared <= made, shared - made
        for name in ("asterisk", "fairline"):
            assert "COPY asterisk-docker/shared-dirs.sh /opt/fairline/shared-dirs.sh" in stage(name)
            assert "RUN /opt/fairline/shared-dirs.sh" in stage(name)


def test_the_fairline_image_copies_every_package_pyproject_installs() -> None:
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", DOCKERFILE, re.M))
    assert {p.rstrip("*") for p in packages} <= copied
