"""Console login limits hold under parallel attempts, behind proxies, and against strangers.

Every test talks to a real server over HTTP on a real database (SQLite, and
PostgreSQL when configured). Argon2 verifications are counted by wrapping the
password hasher: a verification is a password tested, which is what a limit
has to bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from conftest import LiveBackend, start_app
from fakes.console import PASSWORD, ConsoleClient, add_agent, audit_actions

from backend.api.app import create_app
from backend.console import auth, limits, login_limits
from backend.services import Services, open_services
from backend.settings import Settings
from common.clock import FakeClock
from common.settings import SettingsError

ATTACKERS = [f"203.0.113.{n}" for n in range(1, 21)]


class CountingHasher(PasswordHasher):
    """Real argon2, remembering each verification's result.

    Cheap parameters (1 pass over 1 MiB), so that a test of a hundred guesses
    on two cores takes seconds; what is counted is the same call.
    """

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.results: list[bool] = []
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        try:
            ok = super().verify(hash, password)
        except Exception:
            with self._lock:
                self.results.append(False)
            raise
        with self._lock:
            self.results.append(ok)
        return ok


@pytest.fixture(autouse=True)
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    """Every argon2 call of the console goes through one CountingHasher."""
    counting = CountingHasher()
    monkeypatch.setattr(auth, "_hasher", counting)
    monkeypatch.setattr(auth, "_DUMMY_HASH", counting.hash("not anyone's password"))
    return counting


@pytest.fixture
async def proxied(services: Services) -> AsyncIterator[str]:
    """The backend as a reverse proxy on 127.0.0.1 reaches it: that address is trusted."""
    trusting = replace(
        services, settings=replace(services.settings, trusted_proxies=("127.0.0.1/32",))
    )
    runner, url = await start_app(create_app(trusting))
    try:
        yield url
    finally:
        await runner.cleanup()


async def _attempts(
    url: str, tries: list[tuple[str, str, str | None]]
) -> list[tuple[int, str, str | None]]:
    """Fire one login post per (name, password, X-Forwarded-For) at once, each from its own tab.

    Every tab first opens the form (for its CSRF cookie); then all posts go
    out together. Returns (status, page, Retry-After) in the same order.
    """
    tabs = [ConsoleClient(url) for _ in tries]
    try:
        await asyncio.gather(*(tab.get("/console/login") for tab in tabs))

        async def post(
            tab: ConsoleClient, name: str, password: str, xff: str | None
        ) -> tuple[int, str, str | None]:
            headers = {"Accept": "text/html", **({"X-Forwarded-For": xff} if xff else {})}
            form = {"name": name, "password": password, "csrf": tab.csrf or ""}
            async with tab.http.post(
                url + "/console/login", data=form, headers=headers, allow_redirects=False
            ) as resp:
                return resp.status, await resp.text(), resp.headers.get("Retry-After")

        return await asyncio.gather(
            *(post(tab, *attempt) for tab, attempt in zip(tabs, tries, strict=True))
        )
    finally:
        await asyncio.gather(*(tab.close() for tab in tabs))


async def _log_in_from(
    tab: ConsoleClient, address: str, name: str, password: str = PASSWORD
) -> tuple[int, str]:
    await tab.get("/console/login")
    return await tab.post(
        "/console/login",
        {"name": name, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_twenty_parallel_guesses_test_no_more_passwords_than_the_limit(
    backend: LiveBackend, services: Services, hasher: CountingHasher
) -> None:
    await add_agent(services, "alice")
    results = await _attempts(backend.url, [("alice", f"guess {n}", None) for n in range(20)])
    statuses = sorted(status for status, _, _ in results)
    # 0 of 20 tested beyond the limit: exactly five passwords reached argon2.
    assert len(hasher.results) == login_limits.PAIR.limit == 5
    assert statuses == [401] * 5 + [429] * 15
    assert all("Too many failed attempts" in page for status, page, _ in results if status == 429)
    refused = [o for a, _, o in await audit_actions(services) if a == "console.login"]
    assert sorted(refused) == ["too_many_attempts"] * 15 + ["wrong_password"] * 5


async def test_parallel_guesses_spread_over_two_backend_processes_share_one_limit(
    backend: LiveBackend,
    services: Services,
    settings: Settings,
    clock: FakeClock,
    hasher: CountingHasher,
) -> None:
    await add_agent(services, "alice")
    # A second backend with its own engine and connection pool, as a second process has.
    other = await open_services(settings, clock=clock)
    runner, other_url = await start_app(create_app(other))
    try:
        guesses = [("alice", f"guess {n}", None) for n in range(10)]
        results = await asyncio.gather(
            _attempts(backend.url, guesses), _attempts(other_url, guesses)
        )
    finally:
        await runner.cleanup()
        await other.close()
    statuses = sorted(status for half in results for status, _, _ in half)
    assert len(hasher.results) == 5
    assert statuses == [401] * 5 + [429] * 15


async def test_the_right_password_after_five_parallel_failures_is_refused_too(
    backend: LiveBackend, services: Services, hasher: CountingHasher
) -> None:
    await add_agent(services, "alice")
    await _attempts(backend.url, [("alice", f"guess {n}", None) for n in range(5)])
    [(status, page, retry_after)] = await _attempts(backend.url, [("alice", PASSWORD, None)])
    assert status == 429
    assert retry_after == "900"
    assert "Wait 15 minutes" in page
    assert hasher.results == [False] * 5  # the right password never reached argon2


async def test_guessing_one_name_from_twenty_addresses_is_slowed_not_spread(
    proxied: str, services: Services, clock: FakeClock, hasher: CountingHasher
) -> None:
    await add_agent(services, "alice")
    results = await _attempts(
        proxied, [("alice", f"guess {n}", address) for n, address in enumerate(ATTACKERS)]
    )
    # No pair or client reached its own limit; the name's slow-down let five through.
    assert len(hasher.results) == login_limits.NAME.free == 5
    slowed = [(page, wait) for status, page, wait in results if status == 429]
    assert len(slowed) == 15
    assert all("Someone has been trying many passwords" in page for page, _ in slowed)
    assert {wait for _, wait in slowed} == {"1"}
    # Each further guess waits twice as long as the one before, up to five minutes.
    waits = []
    for n in range(12):
        clock.advance(seconds=waits[-1] if waits else 1)
        [(status, _, wait)] = await _attempts(proxied, [("alice", f"later {n}", ATTACKERS[n])])
        assert status == 401
        [(status, _, wait)] = await _attempts(proxied, [("alice", "again", ATTACKERS[n])])
        assert status == 429
        assert wait is not None
        waits.append(int(wait))
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]


async def test_a_stranger_guessing_cannot_keep_the_agent_out_of_their_own_browser(
    proxied: str, services: Services, clock: FakeClock
) -> None:
    await add_agent(services, "alice")
    desk = ConsoleClient(proxied)
    try:
        status, _ = await _log_in_from(desk, "198.51.100.7", "alice")
        assert status == 302  # yesterday: this browser now holds a device cookie
        await desk.get("/console/")
        await desk.post("/console/logout")
        # A stranger tries the name from twenty addresses at once.
        await _attempts(proxied, [("alice", f"guess {n}", a) for n, a in enumerate(ATTACKERS)])
        status, where = await _log_in_from(desk, "198.51.100.7", "alice")
        assert (status, where) == (302, "/console/")
    finally:
        await desk.close()
    # A new browser is slowed down, not locked out: it gets its turn once the wait is over.
    laptop = ConsoleClient(proxied)
    try:
        status, page = await _log_in_from(laptop, "198.51.100.8", "alice")
        assert status == 429
        assert "Someone has been trying many passwords" in page
        clock.advance(minutes=5)
        status, where = await _log_in_from(laptop, "198.51.100.8", "alice")
        assert (status, where) == (302, "/console/")
    finally:
        await laptop.close()


async def test_five_wrong_passwords_lock_that_client_out_of_that_name_only(
    proxied: str, services: Services, clock: FakeClock
) -> None:
    await add_agent(services, "alice")
    await add_agent(services, "bob")
    stranger, alice = ConsoleClient(proxied), ConsoleClient(proxied)
    try:
        for n in range(5):
            status, _ = await _log_in_from(stranger, ATTACKERS[0], "alice", f"guess {n}")
            assert status == 401
        status, page = await _log_in_from(stranger, ATTACKERS[0], "alice")
        assert status == 429
        assert "Too many failed attempts" in page
        # The same client may still log in as someone else ...
        status, _ = await _log_in_from(stranger, ATTACKERS[0], "bob")
        assert status == 302
        # ... and alice, at her own address, is at most asked to wait a second.
        clock.advance(seconds=1)
        status, where = await _log_in_from(alice, "198.51.100.7", "alice")
        assert (status, where) == (302, "/console/")
    finally:
        await stranger.close()
        await alice.close()


async def test_twenty_failures_behind_the_proxy_lock_out_one_client_not_every_agent(
    proxied: str, services: Services
) -> None:
    await add_agent(services, "alice")
    stranger, alice = ConsoleClient(proxied), ConsoleClient(proxied)
    try:
        for n in range(20):
            status, _ = await _log_in_from(stranger, ATTACKERS[0], f"name{n}", "wrong")
            assert status == 401
        status, _ = await _log_in_from(stranger, ATTACKERS[0], "alice")
        assert status == 429
        status, where = await _log_in_from(alice, "198.51.100.7", "alice")
        assert (status, where) == (302, "/console/")
    finally:
        await stranger.close()
        await alice.close()


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    backend: LiveBackend, services: Services
) -> None:
    # DATADESK_TRUSTED_PROXIES is unset here: the socket peer is the client.
    await add_agent(services, "alice")
    results = await _attempts(
        backend.url, [(f"name{n}", "wrong", address) for n, address in enumerate(ATTACKERS)]
    )
    assert sorted(status for status, _, _ in results) == [401] * 20
    [(status, _, _)] = await _attempts(backend.url, [("alice", PASSWORD, "198.51.100.7")])
    assert status == 429  # all twenty counted on 127.0.0.1, whatever the header said
    async with services.sessions() as session:
        keys = await limits.counts(session)
    peer = f"client:{services.keyring.mac('console-login-client', '127.0.0.1')}"
    assert keys[peer] == 20
    assert not any(
        key == f"client:{services.keyring.mac('console-login-client', a)}"
        for key in keys
        for a in ATTACKERS
    )


async def test_a_forwarded_for_from_a_trusted_proxy_names_the_client(
    proxied: str, services: Services
) -> None:
    tab = ConsoleClient(proxied)
    try:
        await tab.get("/console/login")
        # The client's own header says 192.0.2.1; the proxy appended the real peer.
        await tab.post(
            "/console/login",
            {"name": "nobody", "password": "wrong"},
            headers={"X-Forwarded-For": "192.0.2.1, 203.0.113.9"},
        )
    finally:
        await tab.close()
    async with services.sessions() as session:
        keys = await limits.counts(session)
    assert keys[f"client:{services.keyring.mac('console-login-client', '203.0.113.9')}"] == 1
    assert f"client:{services.keyring.mac('console-login-client', '192.0.2.1')}" not in keys
    assert f"client:{services.keyring.mac('console-login-client', '127.0.0.1')}" not in keys


async def test_a_device_cookie_of_another_name_or_forged_counts_as_none(
    proxied: str, services: Services
) -> None:
    await add_agent(services, "alice")
    forged = login_limits.new_device_cookie(services.keyring, "mallory", services.clock.now())
    for cookie in (forged, "abc.123.0000", "not-a-cookie"):
        tried = login_limits.attempt(
            services.keyring, "alice", "203.0.113.1", cookie, services.clock.now()
        )
        assert not tried.trusted_device
    own = login_limits.new_device_cookie(services.keyring, "alice", services.clock.now())
    assert login_limits.attempt(
        services.keyring, "alice", "203.0.113.1", own, services.clock.now()
    ).trusted_device
    later = services.clock.now() + login_limits.DEVICE_LIFETIME
    assert not login_limits.attempt(
        services.keyring, "alice", "203.0.113.1", own, later
    ).trusted_device


async def test_a_device_cookie_used_for_guessing_is_locked_and_then_counts_as_none(
    proxied: str, services: Services, hasher: CountingHasher
) -> None:
    await add_agent(services, "alice")
    desk = ConsoleClient(proxied)
    try:
        status, _ = await _log_in_from(desk, "198.51.100.7", "alice")
        assert status == 302
        await desk.get("/console/")
        await desk.post("/console/logout")
        hasher.results.clear()
        # Someone with this browser's cookie guesses from many addresses.
        for n in range(5):
            status, _ = await _log_in_from(desk, ATTACKERS[n], "alice", f"guess {n}")
            assert status == 401
        # Past the device's limit the cookie buys nothing: the name's own slow-down applies.
        for n in range(5, 10):
            status, _ = await _log_in_from(desk, ATTACKERS[n], "alice", f"guess {n}")
            assert status == 401
        status, page = await _log_in_from(desk, ATTACKERS[10], "alice", "guess 10")
        assert status == 429
        assert "Someone has been trying many passwords" in page
    finally:
        await desk.close()
    assert hasher.results == [False] * 10


async def test_a_login_gets_a_long_lived_httponly_device_cookie(
    backend: LiveBackend, services: Services
) -> None:
    await add_agent(services, "alice")
    tab = ConsoleClient(backend.url)
    try:
        await tab.get("/console/login")
        async with tab.http.post(
            backend.url + "/console/login",
            data={"name": "alice", "password": PASSWORD, "csrf": tab.csrf or ""},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
            cookie = resp.cookies[login_limits.DEVICE_COOKIE]
    finally:
        await tab.close()
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert int(cookie["max-age"]) == 30 * 24 * 3600
    assert "alice" not in cookie.value


def test_trusted_proxies_are_read_as_networks() -> None:
    settings = Settings.from_env({"DATADESK_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16 fd00::/8"})
    assert settings.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "fd00::/8")
    assert Settings.from_env({}).trusted_proxies == ()


def test_a_bad_trusted_proxy_names_the_setting_and_the_value() -> None:
    with pytest.raises(SettingsError) as bad:
        Settings.from_env({"DATADESK_TRUSTED_PROXIES": "10.0.0.5, proxy.internal"})
    assert "DATADESK_TRUSTED_PROXIES" in str(bad.value)
    assert "'proxy.internal'" in str(bad.value)
