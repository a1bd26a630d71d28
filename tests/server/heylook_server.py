"""heylook_server.py - a real `heylookllm serve` process on a free loopback port, for tests.

A Server knows its base URL and the path of its log (stderr), which tests read to see what the
server did (e.g. that a request was cancelled); `check_clean` asserts a clean exit with nothing
from the sanitizers.
"""
import os
import re
import signal
import subprocess
import tempfile
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HEYLOOK_BIN", os.path.join(ROOT, "build", "heylookllm"))
MODEL = "smollm2-135m-instruct"


class Server:
    def __init__(self, *args, ready=True):
        self.log_path = tempfile.mktemp(prefix="heylook-serve-", suffix=".log")
        self.log = open(self.log_path, "wb")
        cmd = [BIN, "serve", "--port", "0", "--threads", "2", *args]
        if "--model" not in args and "--config" not in args:
            cmd += ["--model", MODEL]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if ready:
            self.wait_ready()

    def _wait_port(self):
        deadline = time.time() + 30
        while time.time() < deadline:
            m = re.search(r"listening on http://[^:]+:(\d+)", self.read_log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.read_log()}")
            time.sleep(0.05)
        raise RuntimeError("server did not start:\n" + self.read_log())

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = httpx.get(self.url + "/health", timeout=5)
            if r.status_code == 200:
                return
            assert r.status_code == 503, r.text
            if r.json().get("status") == "error":
                raise RuntimeError("models failed to load:\n" + self.read_log())
            time.sleep(0.1)
        raise RuntimeError("server not ready:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_clean(self):
        """After stop: a clean exit, and nothing from the sanitizers (ASan/UBSan builds)."""
        log = self.read_log()
        assert "Sanitizer" not in log and "runtime error:" not in log, log
        assert self.proc.returncode == 0, log

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


