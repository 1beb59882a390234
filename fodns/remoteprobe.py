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
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fodns.checks import CheckSpec
from fodns.errors import FodnsError
from fodns.logs import get_logger
from fodns.probeworker import ProbeWorker, RoundResults
from fodns.verdicts import AddressVerdict

log = get_logger()
REFRESH_EVERY = 30.0  # how often the list of checks is read again (seconds)
REQUEST_TIMEOUT = 10.0


@dataclass
class ProbedApp:
    """One app this probe checks: what its check found, address by address."""

    name: str
    web_head: tuple[str, ...]
    spec: CheckSpec
    verdicts: dict[str, AddressVerdict] = field(default_factory=dict)
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, results: RoundResults) -> None:
        now = time.time()
        for address, _, result in results:
            verdict = self.verdicts.setdefault(
                address, AddressVerdict(self.spec.fall, self.spec.rise)
            )
            verdict.record(result.ok, now, result.error)
            self.evidence[address] = result.to_json()

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
    """Checks what fodns checks and reports it (see the module's docstring). The
    rounds are probeworker.ProbeWorker's, as in fodns's own check process."""

    def __init__(
        self, api: str, token: str, name: str, *, interval: float, concurrency: int = 256
    ) -> None:
        self._api = api.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._name = name
        self._interval = interval
        self._concurrency = concurrency
        self._apps: dict[int, ProbedApp] = {}
        self._ids: dict[str, int] = {}  # app name -> the id its rounds go by here

    async def run(self, *, rounds: int | None = None) -> None:
        """Check and report until cancelled (or for `rounds` reports)."""
        worker = ProbeWorker(self._found, self._concurrency)
        checking = asyncio.get_running_loop().create_task(worker.run())
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:
                refreshed = 0.0
                reported = 0
                while rounds is None or reported < rounds:
                    started = time.monotonic()
                    if started - refreshed >= REFRESH_EVERY or not self._apps:
                        await self._refresh(session, worker)
                        refreshed = started
                    await asyncio.sleep(self._interval)
                    await self._report(session)
                    reported += 1
        finally:
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking

    def _found(self, app_id: int, results: RoundResults) -> None:
        app = self._apps.get(app_id)
        if app is not None:
            app.record(results)

    async def _refresh(self, session: aiohttp.ClientSession, worker: ProbeWorker) -> None:
        """Read fodns's checks again; hand them to the rounds."""
        async with session.get(f"{self._api}/v1/health") as response:
            if response.status != 200:
                raise FodnsError(
                    f"GET /v1/health answered {response.status}: {await response.text()}"
                )
            health = await response.json()
        apps: dict[int, ProbedApp] = {}
        for item in health["apps"]:
            name = str(item["app"])
            app_id = self._ids.setdefault(name, len(self._ids) + 1)
            spec = CheckSpec.from_json(item["check"])
            web_head = tuple(item.get("web_head", ()))
            known = self._apps.get(app_id)
            same = known is not None and (known.spec, known.web_head) == (spec, web_head)
            apps[app_id] = known if same and known is not None else ProbedApp(name, web_head, spec)
        self._apps = apps
        worker.take(
            [
                {"id": app_id, "web_head": list(app.web_head), "check": app.spec.to_json()}
                for app_id, app in apps.items()
            ]
        )

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
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("probe_report_failed", error=str(exc) or type(exc).__name__)
            return
        log.info("probe_reported", apps=len(reports))
