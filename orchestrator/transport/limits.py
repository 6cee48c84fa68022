"""Concurrency limits per route: sessions through one proxy host, targets per gateway.

A sweep must not open more than ``max_proxy_sessions`` sessions through one SSH proxy host at a
time, nor lean on one gateway device (hostvia gateway uuid, or jump gateway host) for more than
``max_targets_per_gateway`` targets at a time. ``async with limiter.slot(route):`` waits for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from orchestrator.models import Route


def proxy_key(route: Route) -> str | None:
    """The proxy host a route goes through (``proxy`` and ``hostvia``), else ``None``."""
    if route.kind in ("proxy", "hostvia"):
        return f"{route.host}:{route.port}"
    return None


def gateway_key(route: Route) -> str | None:
    """The gateway device a route leans on: hostvia gateway uuid or jump gateway host."""
    if route.kind == "hostvia":
        words = route.command.split()
        return f"hostvia:{words[1]}" if len(words) >= 3 and words[0] == "hostvia" else None
    if route.kind == "jump" and route.via is not None:
        return f"jump:{route.via.host}:{route.via.port}"
    return None


class RouteLimiter:
    """Bounds concurrent sessions per proxy host and per gateway (create inside the event loop)."""

    def __init__(self, max_proxy_sessions: int = 50, max_targets_per_gateway: int = 3) -> None:
        if max_proxy_sessions < 1 or max_targets_per_gateway < 1:
            raise ValueError("route limits must be at least 1")
        self.max_proxy_sessions = max_proxy_sessions
        self.max_targets_per_gateway = max_targets_per_gateway
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def _semaphore(self, key: str, size: int) -> asyncio.Semaphore:
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(size)
        return self._semaphores[key]

    @asynccontextmanager
    async def slot(self, route: Route) -> AsyncIterator[None]:
        """Hold a slot for ``route``: its gateway first, then its proxy host.

        Taking the gateway first means a task waiting for a busy gateway holds no proxy slot,
        so a few busy gateways cannot starve the whole sweep of proxy sessions.
        """
        async with AsyncExitStack() as stack:
            gateway = gateway_key(route)
            if gateway is not None:
                await stack.enter_async_context(
                    self._semaphore(gateway, self.max_targets_per_gateway)
                )
            proxy = proxy_key(route)
            if proxy is not None:
                await stack.enter_async_context(self._semaphore(proxy, self.max_proxy_sessions))
            yield
