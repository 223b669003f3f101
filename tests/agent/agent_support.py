"""Loopback servers for the agent's tests: a fault-injecting proxy in front of moto, a fake IMDS, and moto queries."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE = {"AutoScalingGroupName": "gpu-asg", "InstanceId": "i-0123456789abcdef0", "InstanceType": "p5.48xlarge"}


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


# CloudWatch speaks AWS JSON 1.0 with awsQueryCompatible: the query-protocol error code rides in a header.
_ERRORS = {
    "5xx": (500, "com.amazon.coral.service#InternalFailure", "InternalFailure;Receiver"),
    "throttle": (400, "com.amazon.coral.availability#ThrottlingException", "Throttling;Sender"),
    "invalid": (400, "com.amazonaws.cloudwatch#InvalidParameterValueException", "InvalidParameterValue;Sender"),
}


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (host, port) whose ``mode`` the test switches:
    pass, 5xx, throttle, invalid, hang (no answer for ``hang_s``), and refuse() / accept() for connection refused."""

    def __init__(self, upstream: tuple[str, int], hang_s: float = 2.0) -> None:
        self.upstream, self.hang_s = upstream, hang_s
        self.mode = "pass"
        self.forwarded = 0
        self.faulted = 0
        self.payloads: list[dict] = []
        """The JSON requests forwarded to moto, un-gzipped, in order."""
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.accept()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accept(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                mode = proxy.mode
                if mode == "hang":
                    proxy.faulted += 1
                    time.sleep(proxy.hang_s)
                    self.close_connection = True
                    return
                if mode in _ERRORS:
                    proxy.faulted += 1
                    status, error_type, query_error = _ERRORS[mode]
                    payload = json.dumps({"__type": error_type, "message": f"injected {mode}"}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("x-amzn-query-error", query_error)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                text = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                if self.headers.get("Content-Type", "").startswith("application/x-amz-json"):
                    proxy.payloads.append(json.loads(text))
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=10)
                upstream.request("POST", self.path, body=body, headers=dict(self.headers))
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()
                proxy.forwarded += 1

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def refuse(self) -> None:
        """Close the listening socket: connections to the port are refused until accept()."""
        self._server.shutdown()
        self._server.server_close()

    def close(self) -> None:
        self.refuse()


class FakeImds:
    """IMDSv2 on loopback: PUT /latest/api/token, then GETs that require the token."""

    TOKEN = "test-token"

    def __init__(self, items: dict[str, str]) -> None:
        self.items = items
        self.requests: list[tuple[str, str]] = []
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                imds.requests.append(("PUT", self.path))
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._reply(200, imds.TOKEN)
                else:
                    self._reply(400, "bad token request")

            def do_GET(self) -> None:  # noqa: N802
                imds.requests.append(("GET", self.path))
                if self.headers.get("X-aws-ec2-metadata-token") != imds.TOKEN:
                    self._reply(401, "")
                elif self.path in imds.items:
                    self._reply(200, imds.items[self.path])
                else:
                    self._reply(404, "Not Found")

            def _reply(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def stored_count(client, metric: str, dimensions: dict[str, str]) -> int:
    """How many datapoints of the series moto holds (sum of SampleCount over the last hour)."""
    now = datetime.now(timezone.utc)
    response = client.get_metric_statistics(
        Namespace="GpuScale/Agent", MetricName=metric, Period=60, Statistics=["SampleCount"],
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5))
    return int(sum(point["SampleCount"] for point in response["Datapoints"]))
