"""A local GitHub for tests, benchmarks and ``gitops-bot demo``: REST subset, git over HTTP, webhooks.

Production code never imports this package. Start it in-process::

    async with Simulator(tmp_path, webhook_url="http://127.0.0.1:8080/webhook") as sim:
        driver = Driver(sim)
        alice = driver.user("alice")
        ...
"""

from __future__ import annotations

from bot.sim.driver import Driver, DriverError, Person, SigningKey
from bot.sim.faults import FaultRule, RequestLog
from bot.sim.server import Simulator
from bot.sim.webhooks import sign

__all__ = ["Driver", "DriverError", "FaultRule", "Person", "RequestLog", "SigningKey", "Simulator", "sign"]
