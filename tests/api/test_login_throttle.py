"""Failed logins: strict per account, looser per client IP, so one person's typos do
not lock out everyone behind the same address. A wrong password given to change the
password or delete the account is a failed login of that account."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import httpx
import pytest

from palaver.config import Settings
from tests.api.conftest import STRONG, Api, open_api
from tests.services import REDIS_URL, delete_namespace, require


async def test_one_accounts_failures_do_not_block_another_below_the_ip_limit(
    settings: Settings,
) -> None:
    assert Settings().login_ip_max_failures == 30
    async for api in open_api(settings.model_copy(update={"login_ip_max_failures": 12})):
        await api.register("ada")
        await api.register("bob")
        for _ in range(5):
            assert (await api.login("ada", "Wrong-pass1")).status_code == 401
        # Ada's account is locked, even with the right password...
        locked = await api.login("ada", STRONG)
        assert (locked.status_code, locked.json()["error"]["code"]) == (429, "RATE_LIMITED")
        # ...but Bob, at the same address, logs in.
        assert (await api.login("bob", STRONG)).status_code == 200
        # Failures of many accounts from one address add up to the address's limit.
        for i in range(7):
            assert (await api.login(f"someone{i}", "Wrong-pass1")).status_code == 401
        blocked = await api.login("bob", STRONG)
        assert (blocked.status_code, blocked.json()["error"]["code"]) == (429, "RATE_LIMITED")
        assert int(blocked.headers["retry-after"]) >= 1


async def test_the_account_limit_holds_across_its_username_and_email(
    settings: Settings,
) -> None:
    # One account, two names for it: failures under either count against the account,
    # or a guesser would get login_max_failures tries per alias.
    async for api in open_api(settings):
        await api.register("ada", email="ada@example.com")
        for login in ("ada", "ada@example.com", "ADA", "ada", "ada@example.com"):
            assert (await api.login(login, "Wrong-pass1")).status_code == 401
        for login in ("ada", "ada@example.com"):
            locked = await api.login(login, "Wrong-pass1")
            assert (locked.status_code, locked.json()["error"]["code"]) == (429, "RATE_LIMITED")


# The counters live in the broker: each of these runs on both.
BROKERS = pytest.mark.parametrize(
    "broker", ["memory", pytest.param("redis", marks=pytest.mark.redis)]
)


@contextlib.asynccontextmanager
async def api_on(broker: str, settings: Settings, **update: object) -> AsyncIterator[Api]:
    """An app whose broker is ``broker`` (Redis under a namespace of its own)."""
    namespace = f"palaver-test-{secrets.token_hex(6)}"
    if broker == "redis":
        require("Redis", REDIS_URL)
        update |= {"redis_url": REDIS_URL, "redis_namespace": namespace}
    try:
        # Closed on the way out even when the test fails, so the app's lifespan ends.
        async with contextlib.aclosing(open_api(settings.model_copy(update=update))) as apis:
            async for api in apis:
                yield api
    finally:
        if broker == "redis":
            await delete_namespace(namespace)


@BROKERS
async def test_racing_guesses_get_no_more_password_checks_than_the_limits(
    settings: Settings, broker: str
) -> None:
    # Each attempt takes its place in the counters before its password check, so a
    # burst of parallel guesses cannot all slip in before the first failure counts.
    async with api_on(broker, settings, login_ip_max_failures=12) as api:
        await api.register("ada")
        guesses = await asyncio.gather(*(api.login("ada", f"Wrong-pass{i}") for i in range(20)))
        assert Counter(r.status_code for r in guesses) == {401: 5, 429: 15}
        assert_refused(r for r in guesses if r.status_code == 429)
        # The address has 7 failures left, whichever accounts they are for.
        guesses = await asyncio.gather(
            *(api.login(f"someone{i}", "Wrong-pass1") for i in range(20))
        )
        assert Counter(r.status_code for r in guesses) == {401: 7, 429: 13}


def assert_refused(responses: Iterable[httpx.Response]) -> None:
    for refused in responses:
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60


# Someone holding a stolen access token must get no more guesses at the password
# through the routes that ask for it again than through the login form.


async def change_password(api: Api, token: str, current: str) -> httpx.Response:
    return await api.http.post(
        "/api/auth/password",
        json={"current_password": current, "new_password": "N3w-password"},
        headers=api.bearer(token),
    )


async def delete_account(api: Api, token: str, password: str) -> httpx.Response:
    return await api.http.request(
        "DELETE", "/api/auth/me", json={"password": password}, headers=api.bearer(token)
    )


@BROKERS
@pytest.mark.parametrize("route", [change_password, delete_account])
async def test_racing_wrong_passwords_of_a_signed_in_user_get_no_more_checks(
    settings: Settings,
    broker: str,
    route: Callable[[Api, str, str], Awaitable[httpx.Response]],
) -> None:
    async with api_on(broker, settings) as api:
        token = (await api.register("ada"))["token"]
        guesses = await asyncio.gather(*(route(api, token, f"Wrong-pass{i}") for i in range(20)))
        assert Counter(r.status_code for r in guesses) == {401: 5, 429: 15}
        assert_refused(r for r in guesses if r.status_code == 429)
        # Refused before the check: even the right password waits for the window.
        right = await route(api, token, STRONG)
        assert right.status_code == 429
        assert_refused([right])
        assert (await api.http.get("/api/auth/me", headers=api.bearer(token))).is_success
        assert (await api.login("ada")).status_code == 429


@BROKERS
async def test_guesses_through_login_and_password_change_add_up(
    settings: Settings, broker: str
) -> None:
    async with api_on(broker, settings) as api:
        token = (await api.register("ada"))["token"]
        for _ in range(3):
            assert (await api.login("ada", "Wrong-pass1")).status_code == 401
        for _ in range(2):
            assert (await change_password(api, token, "Wrong-pass1")).status_code == 401
        assert (await change_password(api, token, STRONG)).status_code == 429
        assert (await delete_account(api, token, STRONG)).status_code == 429
        assert (await api.login("ada")).status_code == 429


@BROKERS
async def test_a_right_current_password_clears_the_account_as_a_login_does(
    settings: Settings, broker: str
) -> None:
    async with api_on(broker, settings) as api:
        token = (await api.register("ada"))["token"]
        for _ in range(4):
            assert (await api.login("ada", "Wrong-pass1")).status_code == 401
        assert (await change_password(api, token, STRONG)).status_code == 204
        # The account starts again from none: five more failures fit, then it is locked.
        for _ in range(5):
            assert (await delete_account(api, token, "Wrong-pass1")).status_code == 401
        assert (await api.login("ada", "N3w-password")).status_code == 429


async def test_a_success_clears_the_account_but_not_the_address(settings: Settings) -> None:
    async for api in open_api(settings.model_copy(update={"login_ip_max_failures": 6})):
        await api.register("ada")
        for _ in range(4):
            assert (await api.login("ada", "Wrong-pass1")).status_code == 401
        assert (await api.login("ada", STRONG)).status_code == 200
        # The account starts again from none; a success does not count for the address,
        # whose four failures stand.
        for _ in range(2):
            assert (await api.login("ada", "Wrong-pass1")).status_code == 401
        assert (await api.login("ada", STRONG)).status_code == 429
