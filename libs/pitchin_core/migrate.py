"""Apply a service's migrations and exit: `python -m pitchin_core.migrate <service>`.

The Helm chart runs this as a Job before an install or upgrade; locally each service
migrates on start (PITCHIN_MIGRATE_ON_START), and the advisory lock keeps the two apart.
"""

from __future__ import annotations

import argparse
import asyncio
from importlib.resources import files

from pitchin_core.db import migrate
from pitchin_core.settings import ServiceSettings

SERVICES = ("signups", "matching", "notifications", "scheduling")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=[*SERVICES, "all"])
    args = parser.parse_args(argv)
    for service in SERVICES if args.service == "all" else (args.service,):
        settings = ServiceSettings(service_name=service)
        applied = asyncio.run(
            migrate(settings.database_url, settings.db_schema, files(f"pitchin_{service}") / "migrations")
        )
        print(f"{service}: {len(applied)} migration(s) applied" + (f": {', '.join(applied)}" if applied else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
