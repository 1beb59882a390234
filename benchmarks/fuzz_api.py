"""The admin API half of benchmarks/fuzz.py: requests to the endpoints that write
(POST /v1/apps, POST /v1/groups, PATCH apps and groups, switches) with valid, mutated
and hostile bodies and headers, and what every answer must be: JSON, 2xx or 4xx.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import http.client
import json
import random
import time
import urllib.parse
from typing import Any

from fuzz_dns import Findings, mutate

# ---- the admin API ---------------------------------------------------------------------


@dataclasses.dataclass
class ApiRequest:
    kind: str
    method: str
    path: str
    body: bytes | None
    headers: list[tuple[str, bytes]]

    def excerpt(self) -> dict[str, Any]:
        """The request as JSON can hold it: bytes as Latin-1, the body cut at 300."""
        return {
            "method": self.method,
            "path": self.path,
            "headers": [(name, value.decode("latin-1")) for name, value in self.headers],
            "body": self.body[:300].decode("latin-1") if self.body is not None else None,
            "body_length": len(self.body) if self.body is not None else None,
        }


def deep(depth: int, rng: random.Random) -> bytes:
    opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))
    return opener * depth + b"1" + closer * depth


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type, often one that validation code does not expect."""
    roll = rng.randrange(16)
    if roll == 0:
        return None
    if roll == 1:
        return rng.choice((True, False))
    if roll == 2:
        return rng.choice((0, -1, 1, 5, 86400, 86401, 2**31, 2**63, -(2**63), 10**30))
    if roll == 3:
        return rng.choice((0.5, -0.0, 1e308, 30.0, 5e-324))
    if roll == 4:
        return rng.choice(("primary", "backup", "", " ", "fz-v4", "fz-both", "fo.example.net"))
    if roll == 5:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randint(1, 30)))
    if roll == 6:
        return rng.choice(("\ud800", "a\udfffb", "\x00", "a\x00b", "\u202e", "\ufeff"))
    if roll == 7:
        return "x" * rng.choice((63, 64, 255, 256, 4000))
    if roll == 8:
        return rng.choice(("192.0.2.1", "2001:db8::1", "lb.example.com", "::", "0.0.0.0"))
    if roll == 9:
        return rng.choice(("999.1.1.1", "1.2.3", "lb..example.com", "-lb.example.com", "*"))
    if roll in (10, 11) and depth < 4:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if roll == 12 and depth < 4:
        return {
            rng.choice(("name", "to", "x", "")): hostile_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))
        }
    if roll == 13:
        return [f"192.0.2.{i % 256}" for i in range(rng.choice((2, 300, 3000)))]
    return rng.choice(("primary", "backup", "fz-lb-host", "FZ-V4", "fz-v4 ", "fz_v4"))


FIELD_VALUE_BYTES = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])


PROBLEMS_KEPT = 20_000  # problem answers remembered in full, for grouping by cause

# The writing endpoints fuzzed, and the fields each accepts.
API_FIELDS: dict[str, tuple[str, ...]] = {
    "apps": ("name", "load_balancer", "web_servers", "reason"),
    "groups": ("zone", "label", "primary", "backup", "ttl", "reason"),
    "patch_app": ("name", "load_balancer", "web_servers", "reason"),
    "patch_group": ("primary", "backup", "ttl", "reason"),
    "switch": ("to", "reason"),
}


class ApiFuzzer:
    """Draws requests to the writing endpoints and judges the answers."""

    def __init__(self, rng: random.Random, token: str, apps: list[str], labels: list[str]) -> None:
        self.rng = rng
        self.token = token.encode()
        self.apps = list(apps)
        self.labels = list(labels)
        self.created = 0
        self.findings = Findings()
        self.problems: list[dict[str, Any]] = []
        self.server_errors = 0
        self.sent: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()

    # -- requests

    def valid_body(self, target: str) -> dict[str, Any]:
        rng = self.rng
        self.created += 1
        address = f"192.0.2.{rng.randrange(1, 255)}"
        if target == "apps":
            return {"name": f"fz-new-{self.created}", "web_servers": [address]}
        if target == "groups":
            body: dict[str, Any] = {"primary": rng.choice(self.apps), "ttl": rng.choice((5, 300))}
            if rng.random() < 0.5:
                body["label"] = f"fz-new-{self.created}"
            return body
        if target == "patch_app":
            return {"web_servers": [address], "reason": "fuzz"}
        if target == "patch_group":
            return {"ttl": rng.choice((5, 60, 3600)), "reason": "fuzz"}
        return {"to": rng.choice(("primary", "backup")), "reason": "fuzz"}

    def path(self, target: str) -> str:
        rng = self.rng
        if target in ("apps", "groups"):
            path = f"/v1/{target}"
        else:
            if rng.random() < 0.05:
                segment = urllib.parse.quote(
                    rng.choice(("%ff", "\u00e9", "..", "a/b", "\x00", " ", "x" * 300)), safe=""
                )
                if rng.random() < 0.5:
                    segment = "%ff%fe" + segment
            elif target == "patch_app":
                segment = rng.choice(self.apps)
            else:
                segment = rng.choice(self.labels)
            kind = "apps" if target == "patch_app" else "groups"
            path = f"/v1/{kind}/{segment}" + ("/switch" if target == "switch" else "")
        if target != "apps" and target != "patch_app" and rng.random() < 0.1:
            zone = rng.choice(("fo.example.net", "FO.EXAMPLE.NET.", "nope", "%ff", "", "."))
            path += "?zone=" + zone
        return path

    def body(self, target: str) -> tuple[str, bytes | None]:
        rng = self.rng
        roll = rng.random()
        valid = json.dumps(self.valid_body(target)).encode()
        if roll < 0.2:
            return "valid", valid
        if roll < 0.45:
            return "json_mutated", mutate(rng, b"  " + valid, [valid])[2:]
        if roll < 0.7:
            fields = API_FIELDS[target]
            body = {
                rng.choice((*fields, *fields, "extra", "")): hostile_value(rng)
                for _ in range(rng.randint(0, 4))
            }
            return "random_json", json.dumps(body).encode()
        if roll < 0.75:
            depth = rng.choice((50, 500, 5000, 100_000))
            inner = deep(depth, rng)
            field = rng.choice(API_FIELDS[target])
            wrapped = inner if rng.random() < 0.5 else b'{"' + field.encode() + b'":' + inner + b"}"
            return "deep_nesting", wrapped
        if roll < 0.82:
            field = rng.choice(API_FIELDS[target])
            number = rng.choice(
                (b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1" * 5000, b"1" * 400)
            )
            return "huge_number", b'{"' + field.encode() + b'":' + number + b"}"
        if roll < 0.9:
            choice = rng.randrange(5)
            if choice == 0:
                return "not_utf8", rng.randbytes(rng.randint(0, 200))
            if choice == 1:
                return "not_utf8", valid.replace(b'"', b'"\xe9', 1)
            if choice == 2:
                return "not_utf8", valid.decode().encode("utf-16")
            if choice == 3:
                return "not_utf8", b"\xef\xbb\xbf" + valid
            return "not_utf8", b'{"name": "\xff\xfe"}'
        if roll < 0.95:
            return "empty", rng.choice((b"", None, b"null", b"[]", b'""', b"0"))
        return "odd_headers", valid

    def next(self) -> ApiRequest:
        rng = self.rng
        target = rng.choice(tuple(API_FIELDS))
        method = "POST" if target in ("apps", "groups", "switch") else "PATCH"
        path = self.path(target)
        kind, body = self.body(target)
        headers: list[tuple[str, bytes]] = [
            ("Authorization", b"Bearer " + self.token),
            ("Content-Type", b"application/json"),
        ]
        if kind == "odd_headers" or rng.random() < 0.03:
            kind = "odd_headers"
            choice = rng.randrange(10)
            if choice == 0:
                headers[0] = ("Authorization", b"Bearer \xff\xfe" + self.token)
            elif choice == 1:
                headers[0] = ("Authorization", b"Bearer \xc3\xa9t\xc3\xa9")
            elif choice == 2:
                headers.append(("Authorization", b"Bearer wrong"))
            elif choice == 3:
                headers[0] = ("Authorization", b"bearer   " + self.token)
            elif choice == 4:
                headers[1] = ("Content-Type", b"application/json; charset=no-such-charset")
            elif choice == 5:
                headers[1] = ("Content-Type", b"text/plain; charset=latin-1")
            elif choice == 6:
                headers[1] = ("Content-Type", b"application/json; charset=utf-16")
            elif choice == 7:
                del headers[1]
            elif choice == 8:
                headers[0] = ("Authorization", b"Basic " + base64.b64encode(b"a:b"))
            else:
                # Visible ASCII and obs-text (RFC 9110 §5.5): odd, but valid HTTP.
                headers.append(("X-Fuzz", bytes(rng.choice(FIELD_VALUE_BYTES) for _ in range(40))))
        return ApiRequest(kind, method, path, body, headers)

    # -- answers

    def judge(self, request: ApiRequest, status: int, content_type: str, body: bytes) -> None:
        self.statuses[str(status)] += 1
        problem = answer_problem(status, content_type, body)
        if problem is None:
            if status in (200, 201) and request.method == "POST" and "/switch" not in request.path:
                self.remember(body)
            return
        self.findings.add(f"{problem}: {request.method} {route_of(request.path)} ({request.kind})")
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(
                {
                    "problem": problem,
                    "kind": request.kind,
                    "request": request.excerpt(),
                    "response": {"status": status, "body": body[:300].decode("utf-8", "replace")},
                    # aiohttp logs each exception a handler raises before its 500, and
                    # requests go one at a time: the n-th 500 is the n-th traceback.
                    "server_error": self.server_errors if status == 500 else None,
                }
            )
        if status == 500:
            self.server_errors += 1

    def remember(self, body: bytes) -> None:
        """Created apps and groups become targets of later PATCH and switch requests."""
        with contextlib.suppress(ValueError, AttributeError):
            document = json.loads(body)
            if "label" in document and len(self.labels) < 200:
                self.labels.append(document["label"])
            elif "name" in document and len(self.apps) < 200:
                self.apps.append(document["name"])


def answer_problem(status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with an answer: DESIGN.md wants JSON errors with a 4xx status."""
    if not (200 <= status < 300 or 400 <= status < 500):
        return f"status {status}"
    if status == 204:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return f"status {status} with a body that is not JSON"
    if "application/json" not in content_type:
        return f"status {status} JSON sent as {content_type!r}"
    if status >= 400 and not (
        isinstance(document, dict)
        and isinstance(document.get("error"), dict)
        and {"code", "message"} <= set(document["error"])
    ):
        return f"status {status} without an error object"
    return None


def route_of(path: str) -> str:
    parts = path.split("?")[0].split("/")
    if len(parts) >= 4:
        parts[3] = "{name}" if parts[2] == "apps" else "{label}"
    return "/".join(parts)


def api_fuzz(
    port: int,
    token: str,
    seed: int,
    count: int,
    deadline: float,
    apps: list[str],
    labels: list[str],
) -> dict[str, Any]:
    """`count` requests one after another on one keep-alive connection (a new one after
    the server closes it), until `deadline`."""
    fuzzer = ApiFuzzer(random.Random(seed), token, apps, labels)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.monotonic()
    done = 0
    while done < count and time.monotonic() < deadline:
        request = fuzzer.next()
        fuzzer.sent[request.kind] += 1
        done += 1
        try:
            connection.putrequest(request.method, request.path, skip_accept_encoding=True)
            for name, value in request.headers:
                connection.putheader(name, value)
            if request.body is not None:
                connection.putheader("Content-Length", str(len(request.body)))
            connection.endheaders(request.body)
            response = connection.getresponse()
            body = response.read()
            fuzzer.judge(request, response.status, response.getheader("Content-Type", ""), body)
            if response.will_close:
                connection.close()
        except (OSError, http.client.HTTPException) as exc:
            fuzzer.statuses["no response"] += 1
            problem = f"no response: {type(exc).__name__}"
            fuzzer.findings.add(f"{problem}: {request.method} {route_of(request.path)}")
            fuzzer.problems.append(
                {"problem": problem, "kind": request.kind, "request": request.excerpt()}
            )
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()
    return {
        "requests": done,
        "seconds": round(time.monotonic() - began, 1),
        "sent": dict(fuzzer.sent),
        "statuses": dict(sorted(fuzzer.statuses.items())),
        "findings": fuzzer.findings.to_json(),
        "problems": fuzzer.problems,
    }


def root_causes(problems: list[dict[str, Any]], tracebacks: list[str]) -> list[dict[str, Any]]:
    """The problem answers grouped by what the server raised (for a 500: the exception
    and the innermost fodns frame of its traceback in the log), most frequent first."""
    causes: dict[str, dict[str, Any]] = {}
    for problem in problems:
        traceback = None
        ordinal = problem.get("server_error")
        if ordinal is not None and ordinal < len(tracebacks):
            traceback = tracebacks[ordinal]
        key = problem["problem"] if traceback is None else traceback_signature(traceback)
        cause = causes.setdefault(
            key,
            {"cause": key, "count": 0, "routes": collections.Counter(), "examples": []},
        )
        cause["count"] += 1
        request = problem["request"]
        cause["routes"][f"{request['method']} {route_of(request['path'])}"] += 1
        if len(cause["examples"]) < 3:
            example = {k: problem[k] for k in ("kind", "request", "response") if k in problem}
            if traceback is not None:
                example["traceback"] = traceback_excerpt(traceback)
            cause["examples"].append(example)
    ordered = sorted(causes.values(), key=lambda cause: -cause["count"])
    for cause in ordered:
        cause["routes"] = dict(cause["routes"])
    return ordered


def traceback_excerpt(traceback: str) -> str:
    """The fodns frames of a traceback (with their source lines) and the exception."""
    lines = traceback.splitlines()
    kept = []
    for index, line in enumerate(lines):
        if "/fodns/" in line and line.lstrip().startswith("File"):
            kept.append(line.strip())
            if index + 1 < len(lines):
                kept.append("    " + lines[index + 1].strip())
    kept.append(exception_line(lines))
    return "\n".join(kept)


def exception_line(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line and not line.startswith(" ")), "")


def traceback_signature(traceback: str) -> str:
    """The exception's type and the innermost fodns frame it passed through."""
    lines = traceback.splitlines()
    frames = [line.strip() for line in lines if "/fodns/" in line and "File" in line]
    where = ""
    if frames:
        file, _, rest = frames[-1].partition(", line ")
        module = file.rpartition("/")[2].rstrip('"')
        where = f" in {module}:{rest.replace(', in ', ' ')}"
    return exception_line(lines).partition(":")[0] + where
