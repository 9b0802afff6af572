"""A fake Kaggle API on 127.0.0.1, driven by the real ``kaggle`` client.

Pointing the client at it. kaggle 2.2 / kagglesdk 0.1 have no endpoint override: the endpoint comes from
``KAGGLE_API_ENVIRONMENT`` (kagglesdk/kaggle_env.py), and the only local choices are fixed ports
(``LOCALHOST`` -> http://localhost, ``TEST`` -> http://localhost:7777, and KaggleApi ignores ``TEST``).
So the client runs with ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` (requests go to
``http://localhost/api/v1/<service>/<method>``) and ``HTTP_PROXY`` naming this server: requests sends
those plain-HTTP requests here, and the server answers them itself, as the host. It forwards nothing,
and refuses any host but localhost/127.0.0.1. ``FakeKaggle.client_env()`` gives the variables.

KaggleApi reads ``KAGGLE_API_ENVIRONMENT``, ``KAGGLE_CONFIG_DIR`` and ``HOME`` once, when
``kaggle.api.kaggle_api_extended`` is first imported; ``fresh_kaggle_import()`` makes the next import
happen again under the test's environment.

Behaviour is scripted per DownloadDataset call with ``script``: an int answers with that HTTP status
(JSON error body, as Kaggle does; ``retry_after`` adds a Retry-After header to 429/5xx), a string is a
zip variant served after a 302 to a storage URL, as Kaggle redirects to signed storage. When the script
runs out, calls answer ``"ok"``.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# The file name inside Kaggle's zip for this dataset, as projects that use it report; the source must not
# depend on it.
CSV_NAME = "online_retail.csv"
CSV_BYTES = (
    b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    b"536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    b"536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
    b'536366,22633,"HAND WARMER UNION JACK, RED",6,2010-12-01 08:28:00,1.85,17850.0,United Kingdom\n'
    b"C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n"
    b"536414,22139,,56,2010-12-01 11:52:00,0.0,,United Kingdom\n"
)

ZIP_VARIANTS = ("ok", "corrupt", "truncated", "not-a-zip", "no-csv", "two-csvs", "encrypted")
DOWNLOAD_METHOD = "datasets.DatasetApiService/DownloadDataset"
INTROSPECT_METHOD = "security.OAuthService/IntrospectToken"
_LOCAL_HOSTS = ("localhost", "127.0.0.1")
_HIDDEN_HEADERS = ("authorization", "proxy-authorization", "cookie")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it; credentials are reduced to the auth scheme."""

    method: str
    host: str
    path: str
    headers: dict[str, str]
    auth_scheme: str | None
    json_body: Any = None


@dataclass
class FakeKaggle:
    """The fake server. Use as a context manager; ``url`` is known once it has started."""

    username: str = "testuser"
    key: str = "0123456789abcdef0123456789abcdef"
    token: str | None = None
    datasets: tuple[str, ...] = ("ulrikthygepedersen/online-retail-dataset",)
    csv_name: str = CSV_NAME
    csv_bytes: bytes = CSV_BYTES
    script: list[int | str] = field(default_factory=list)
    retry_after: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------------

    def __enter__(self) -> FakeKaggle:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            # A short poll interval keeps shutdown() (and so each test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-kaggle",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake Kaggle server has not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment that sends the real kaggle client here (see the module docstring)."""
        return {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.url,
            "http_proxy": self.url,
            # Nothing may bypass the proxy, or the client would try port 80 on this machine.
            "NO_PROXY": "",
            "no_proxy": "",
        }

    # -- what the tests look at -------------------------------------------------------------------------

    @property
    def download_calls(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/" + DOWNLOAD_METHOD)]

    @property
    def storage_calls(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/storage/")]

    def zip_bytes(self, variant: str = "ok") -> bytes:
        return build_zip(variant, self.csv_name, self.csv_bytes)

    # -- used by the handler ----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_action(self) -> int | str:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def _authorised(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        if scheme == "Basic":
            expected = base64.b64encode(f"{self.username}:{self.key}".encode()).decode("ascii")
            return value == expected
        return scheme == "Bearer" and self.token is not None and value == self.token


def build_zip(variant: str, csv_name: str = CSV_NAME, csv_bytes: bytes = CSV_BYTES) -> bytes:
    """The bytes the storage URL serves for each zip variant."""
    if variant not in ZIP_VARIANTS:
        raise ValueError(f"unknown zip variant {variant!r}; choose from {ZIP_VARIANTS}")
    if variant == "not-a-zip":
        return b"<html><body>Please sign in</body></html>"
    members: list[tuple[str, bytes]] = [(csv_name, csv_bytes)]
    if variant == "no-csv":
        members = [("README.txt", b"no data here\n")]
    elif variant == "two-csvs":
        members.append(("online_retail_2011.csv", csv_bytes))
    buffer = io.BytesIO()
    # Stored, not deflated: the CSV's bytes sit verbatim in the archive, so "corrupt" can flip one of them
    # and leave every header intact, which is the case only a CRC check catches.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    blob = buffer.getvalue()
    if variant == "corrupt":
        at = blob.index(csv_bytes) + len(csv_bytes) // 2
        blob = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]
    elif variant == "encrypted":
        # The "encrypted" flag (bit 0 of the general purpose flags) in the member's local and central headers.
        marked = bytearray(blob)
        marked[marked.index(b"PK\x03\x04") + 6] |= 1
        marked[marked.index(b"PK\x01\x02") + 8] |= 1
        blob = bytes(marked)
    elif variant == "truncated":
        # A file that was cut short before it reached storage: served whole, with a matching length.
        blob = blob[: len(blob) // 2]
    return blob


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeKaggle/1.0"

    @property
    def fake(self) -> FakeKaggle:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # the tests read the records instead
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        # Through the proxy the request line holds the absolute URL (http://localhost/api/v1/...).
        target = urlsplit(self.path)
        host = target.netloc or self.headers.get("Host", "")
        path = target.path or "/"
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        authorization = self.headers.get("Authorization")
        self.fake._record(
            RecordedRequest(
                method=self.command,
                host=host,
                path=path,
                headers={k: v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS},
                auth_scheme=authorization.partition(" ")[0] if authorization else None,
                json_body=body,
            )
        )
        if host.rpartition(":")[0] not in _LOCAL_HOSTS and host not in _LOCAL_HOSTS:
            self._json(502, {"code": 502, "message": f"the fake Kaggle server does not proxy to {host}"})
            return
        method = path.removeprefix("/api").removeprefix("/v1/")
        if self.command == "POST" and method == DOWNLOAD_METHOD:
            self._download(authorization, body or {})
        elif self.command == "POST" and method == INTROSPECT_METHOD:
            active = self.fake.token is not None and (body or {}).get("token") == self.fake.token
            self._json(200, {"active": True, "username": self.fake.username} if active else {"active": False})
        elif self.command == "GET" and path.startswith("/storage/"):
            self._storage(path)
        else:
            self._json(404, {"code": 404, "message": f"no route {self.command} {path}"})

    def _download(self, authorization: str | None, body: dict[str, Any]) -> None:
        if not self.fake._authorised(authorization):
            self._json(401, {"code": 401, "message": "Unauthenticated"})
            return
        dataset = f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}"
        if dataset not in self.fake.datasets:
            self._json(404, {"code": 404, "message": f"Dataset {dataset} not found"})
            return
        action = self.fake._next_action()
        if isinstance(action, int):
            headers: dict[str, str] = {}
            if self.fake.retry_after is not None and (action == 429 or action >= 500):
                headers["Retry-After"] = self.fake.retry_after
            self._json(action, {"code": action, "message": f"scripted HTTP {action}"}, headers)
            return
        if action not in ZIP_VARIANTS:
            raise ValueError(f"unknown scripted action {action!r}")
        # Kaggle answers with a redirect to a signed storage URL on another host; here 127.0.0.1, so that
        # requests drops the Authorization header on the way, as it does against Kaggle.
        location = f"{self.fake.url}/storage/{action}/{body.get('datasetSlug', 'dataset')}.zip"
        self._send(302, b"", {"Location": location, "Content-Type": "text/plain"})

    def _storage(self, path: str) -> None:
        variant = path.split("/")[2]
        if variant not in ZIP_VARIANTS:
            self._json(404, {"code": 404, "message": "no such object"})
            return
        self._send(200, self.fake.zip_bytes(variant), {"Content-Type": "application/zip"})

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send(status, data, {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def fresh_kaggle_import() -> Iterator[None]:
    """Forget the imported ``kaggle`` package before and after the block (not ``kagglesdk``, which reads
    its environment per call), so that KaggleApi's import-time settings come from the test's environment."""

    def forget() -> None:
        for name in [m for m in sys.modules if m == "kaggle" or m.startswith("kaggle.")]:
            del sys.modules[name]

    forget()
    try:
        yield
    finally:
        forget()
