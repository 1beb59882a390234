"""`fodns probe`: the same health checks as fodns runs, from another host, reported to it.

One vantage point should not decide for the world: a probe in another network runs
every app's check (the checks and web heads it reads from `GET /v1/health`), keeps
its own rise/fall verdict per address (verdicts.AddressVerdict, as fodns does), and
reports each address's state with its evidence to `POST /v1/probes/{name}/reports`
every `interval` seconds. fodns counts it beside its own view by each check's
quorum; a probe that stops reporting ages out after three intervals.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fodns.checks import CheckSpec
from fodns.errors import FodnsError
from fodns.logs import get_logger
from fodns.probing import CheckResult, Prober, resolve_error
from fodns.verdicts import AddressVerdict

log = get_logger()
REFRESH_EVERY = 30.0  # how often the list of checks is read again (seconds)
REQUEST_TIMEOUT = 10.0


@dataclass
class ProbedApp:
    name: str
    web_head: tuple[str, ...]
    spec: CheckSpec
    due: float = 0.0
    verdicts: dict[str, AddressVerdict] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "app": self.name,
            "addresses": [
                {
                    "address": address,
                    "state": verdict.state,
                    "evidence": self.evidence.get(address, {}),
                }
                for address, verdict in sorted(self.verdicts.items())
            ][:32],
        }


class RemoteProbe:
    """Checks what fodns checks and reports it (see the module's docstring)."""

    def __init__(
        self, api: str, token: str, name: str, *, interval: float, concurrency: int = 256
    ) -> None:
        self._api = api.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._name = name
        self._interval = interval
        self._prober = Prober(concurrency=concurrency)
        self._apps: dict[str, ProbedApp] = {}

    async def run(self, *, rounds: int | None = None) -> None:
        """Check and report until cancelled (or for `rounds` reports)."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:
            refreshed = 0.0
            reported = 0
            try:
                while rounds is None or reported < rounds:
                    started = time.monotonic()
                    if started - refreshed >= REFRESH_EVERY or not self._apps:
                        await self._refresh(session)
                        refreshed = started
                    await self._check_due()
                    await self._report(session)
                    reported += 1
                    await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))
            finally:
                await self._prober.close()

    async def _refresh(self, session: aiohttp.ClientSession) -> None:
        async with session.get(f"{self._api}/v1/health") as response:
            if response.status != 200:
                raise FodnsError(
                    f"GET /v1/health answered {response.status}: {await response.text()}"
                )
            health = await response.json()
        seen = set()
        for item in health["apps"]:
            name = str(item["app"])
            seen.add(name)
            spec = CheckSpec.from_json(item["check"])
            web_head = tuple(item.get("web_head", ()))
            known = self._apps.get(name)
            if known is None or known.spec != spec or known.web_head != web_head:
                self._apps[name] = ProbedApp(name, web_head, spec)
        for name in set(self._apps) - seen:
            del self._apps[name]

    async def _check_due(self) -> None:
        now = time.monotonic()
        due = [app for app in self._apps.values() if app.due <= now]
        for app in due:
            app.due = now + app.spec.interval
        await asyncio.gather(*(self._check(app) for app in due))

    async def _check(self, app: ProbedApp) -> None:
        targets = await self._prober.targets(app.web_head)
        if targets:
            results = await asyncio.gather(
                *(self._prober.check(app.spec, a, h) for a, h in targets)
            )
        else:
            name = app.web_head[0] if app.web_head else app.name
            results = [resolve_error(name)]
        for result in results:
            self._record(app, result)

    def _record(self, app: ProbedApp, result: CheckResult) -> None:
        verdict = app.verdicts.setdefault(
            result.address, AddressVerdict(app.spec.fall, app.spec.rise)
        )
        verdict.record(result.ok, time.time(), result.error)
        app.evidence[result.address] = result.to_json()

    async def _report(self, session: aiohttp.ClientSession) -> None:
        reports = [app.report() for app in self._apps.values() if app.verdicts]
        body = {"interval": self._interval, "apps": reports}
        url = f"{self._api}/v1/probes/{self._name}/reports"
        try:
            async with session.post(url, json=body) as response:
                if response.status != 200:
                    log.error(
                        "probe_report_refused", status=response.status, body=await response.text()
                    )
                    return
                answer = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("probe_report_failed", error=str(exc) or type(exc).__name__)
            return
        if answer.get("unknown_apps"):
            self._apps = {n: a for n, a in self._apps.items() if n not in answer["unknown_apps"]}
        log.info("probe_reported", apps=len(reports))
