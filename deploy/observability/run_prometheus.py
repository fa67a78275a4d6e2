"""A local Prometheus scraping the Pitch In services, with the alert rules loaded.

    python deploy/observability/run_prometheus.py      # beside `make run`; Ctrl-C stops it

It serves its UI on http://127.0.0.1:9090 (alerts under /alerts). The binary comes from Debian's
`prometheus` package, installed by ``install.sh`` beside this file when missing. To start it from
another supervisor (e.g. deploy/local/run.py)::

    from run_prometheus import LocalPrometheus      # with deploy/observability on sys.path
    prometheus = LocalPrometheus(state_dir / "prometheus", {"signups": 8001, ...})
    prometheus.start(); ...; prometheus.stop()
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pitchin_testing.lifecycle import stop_process, wait_until_serving

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RULES = HERE / "rules" / "pitchin.rules.yaml"
DEFAULT_PORTS = {"signups": 8001, "matching": 8002, "notifications": 8003, "scheduling": 8004}


def ensure_prometheus() -> str:
    """The path of the `prometheus` binary, installing Debian's package if needed."""
    found = shutil.which("prometheus")
    if found is None or shutil.which("promtool") is None:
        subprocess.run(["bash", str(HERE / "install.sh")], check=True)
        found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError("prometheus is not on PATH after deploy/observability/install.sh")
    return found


def scrape_config(ports: Mapping[str, int], *, scrape_interval: str = "5s", rules: Path = RULES) -> str:
    """prometheus.yml for services on 127.0.0.1 (JSON is YAML; labels as the chart sets them)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": "15s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "pitchin",
                "metrics_path": "/metrics",
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}} for name, port in ports.items()
                ],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


class LocalPrometheus:
    def __init__(
        self,
        state_dir: Path,
        ports: Mapping[str, int] = DEFAULT_PORTS,
        *,
        listen: str = "127.0.0.1:9090",
        scrape_interval: str = "5s",
    ) -> None:
        self.state_dir = state_dir
        self.ports = dict(ports)
        self.listen = listen
        self.scrape_interval = scrape_interval
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        binary = ensure_prometheus()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "prometheus.yml"
        config.write_text(scrape_config(self.ports, scrape_interval=self.scrape_interval), encoding="utf-8")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.state_dir / 'data'}",
                    f"--web.listen-address={self.listen}",
                    "--storage.tsdb.retention.time=2d",
                    "--web.enable-lifecycle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_serving(self.process, f"{self.url}/-/ready", timeout, "prometheus", self._see_log)
        except TimeoutError:
            self.stop()
            raise

    def _see_log(self) -> str:
        return f"see {self.log_file}"

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None:
            stop_process(self.process, timeout, kill_wait=5)

    def query(self, expr: str) -> dict[str, Any]:
        """The JSON answer of /api/v1/query (status, data or errorType/error)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", default="127.0.0.1:9090")
    parser.add_argument("--state", type=Path, default=REPO / ".state" / "run" / "prometheus")
    args = parser.parse_args()
    prometheus = LocalPrometheus(args.state, listen=args.listen)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    prometheus.start()
    print(f"Prometheus on {prometheus.url} (alerts: {prometheus.url}/alerts); Ctrl-C stops it", flush=True)
    try:
        while not stopping.is_set() and prometheus.process is not None and prometheus.process.poll() is None:
            stopping.wait(1.0)
    finally:
        prometheus.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
