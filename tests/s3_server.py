"""A local S3-compatible server for the tests: moto's server on a free loopback port (no network)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import free_port

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` in a child process; :meth:`stop` ends it by its id."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(log_dir) / "moto.log", "w")
        exe = Path(sys.executable).with_name("moto_server")
        env = {**os.environ, **FAKE_CREDENTIALS}
        self.proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server did not start within 60 s")

    def env(self) -> dict[str, str]:
        """What a client (this process, a child, a Ray node) needs to use this server."""
        return {**FAKE_CREDENTIALS, "CURATE_S3_ENDPOINT_URL": self.endpoint}

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": self.endpoint},
                                 use_listings_cache=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
