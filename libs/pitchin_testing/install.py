"""Where the local servers come from: the Kafka jars in a download cache outside the clone and
Debian's PostgreSQL binaries, both fetched by ``deploy/local/install.sh`` when missing (no Docker).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from pitchin_testing.lifecycle import ServerError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
PREFERRED_PG_MAJOR = "15"


def repo_root() -> Path:
    """The root of the clone (``libs/pitchin_testing/install.py`` -> ``parents[2]``)."""
    return Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Download cache shared by all clones: ``$PITCHIN_CACHE`` or ``~/.cache/pitchin``."""
    configured = os.environ.get("PITCHIN_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "pitchin"


def kafka_libs() -> Path:
    """Directory holding the Kafka runtime jars (its ``*`` is the JVM class path)."""
    return cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def kafka_installed() -> bool:
    return (kafka_libs() / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file()


def _pg_bin_dirs() -> list[Path]:
    dirs = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    # Preferred major first, then the newest of the others.
    return sorted(dirs, key=lambda d: (d.parent.name != PREFERRED_PG_MAJOR, -_major(d.parent.name)))


def _major(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        return 0


def pg_bin_dir() -> Path:
    """``/usr/lib/postgresql/<major>/bin``, preferring major 15."""
    dirs = _pg_bin_dirs()
    if not dirs:
        raise ServerError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; run ensure_installed()")
    return dirs[0]


_install_lock = threading.Lock()


def ensure_installed() -> None:
    """Run ``deploy/local/install.sh`` if the Kafka jars or PostgreSQL's initdb are missing."""
    with _install_lock:
        if kafka_installed() and _pg_bin_dirs():
            return
        script = repo_root() / "deploy" / "local" / "install.sh"
        env = dict(os.environ, PITCHIN_CACHE=str(cache_dir()))
        result = subprocess.run(["bash", str(script)], cwd=repo_root(), env=env, check=False)
        if result.returncode != 0:
            raise ServerError(f"{script} failed with exit code {result.returncode}")
        if not (kafka_installed() and _pg_bin_dirs()):
            raise ServerError(f"{script} finished but the Kafka jars or initdb are still missing")
