"""A host's /etc/fodns and /var as systemd/README.md sets them up, under a test folder.

The state directory is laid out as systemd lays out a DynamicUser= service's:
/var/lib/private/fodns (its parent root-only), reached through the symlink
/var/lib/fodns. Blocks of the guides run in bash with `/var/` and `/etc/` moved
under the folder, so they can be run as written.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import FodnsProcess, start_fodns

ZONE = "fo.example.net"
SHELL_TIMEOUT = 60


@dataclass
class Host:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / "var" / "lib" / "private" / "fodns"

    @property
    def database(self) -> Path:
        return self.root / "var" / "lib" / "fodns" / "fodns.db"  # through the symlink

    @property
    def backups(self) -> Path:
        return self.root / "var" / "backups" / "fodns"

    @property
    def zone_file(self) -> Path:
        return self.root / "etc" / "fodns" / "zones" / f"{ZONE}.zone"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "fodns" / "fodns.toml"

    def lay_out(self) -> None:
        """/etc/fodns/zones, and the state directory as systemd makes it at first start."""
        self.zone_file.parent.mkdir(parents=True)
        self.state.mkdir(parents=True, mode=0o700)
        self.state.parent.chmod(0o700)  # /var/lib/private: root only
        (self.root / "var" / "lib" / "fodns").symlink_to("private/fodns")

    def on_host(self, text: str) -> str:
        """`text` with the host's /etc/ and /var/ moved under root."""
        return text.replace("/etc/", f"{self.root}/etc/").replace("/var/", f"{self.root}/var/")

    def start(self, *args: str) -> FodnsProcess:
        """`fodns serve` with the host's config, as the unit runs it. No token in the
        environment: fodns takes one from the config, or generates one in the state
        directory, as on a host without the admin-token credential."""
        return start_fodns("--config", str(self.config), *args, env={"FODNS_ADMIN_TOKEN": ""})

    @property
    def token(self) -> str:
        return (self.database.parent / "admin-token").read_text().strip()

    def shell(self, block: str, env: dict[str, str] | None = None) -> str:
        """Run a guide's block in bash (stopping at the first failing command), with the
        host's paths under root; its standard output."""
        script = self.on_host(block)
        result = subprocess.run(
            ["bash", "-e", "-u", "-o", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=SHELL_TIMEOUT,
            env={**os.environ, **(env or {})},
        )
        assert result.returncode == 0, f"{script}\nfailed:\n{result.stdout}\n{result.stderr}"
        return result.stdout
