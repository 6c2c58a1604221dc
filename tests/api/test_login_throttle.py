"""Failed logins: strict per account, looser per client IP, so one person's typos do
not lock out everyone behind the same address."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import pytest

from palaver.config import Settings
from tests.api.conftest import STRONG, open_api
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


@pytest.mark.parametrize("broker", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_racing_guesses_get_no_more_password_checks_than_the_limits(
    settings: Settings, broker: str
) -> None:
    # Each attempt takes its place in the counters before its password check, so a
    # burst of parallel guesses cannot all slip in before the first failure counts.
    namespace = f"palaver-test-{secrets.token_hex(6)}"
    update: dict[str, object] = {"login_ip_max_failures": 12}
    if broker == "redis":
        require("Redis", REDIS_URL)
        update |= {"redis_url": REDIS_URL, "redis_namespace": namespace}
    try:
        async for api in open_api(settings.model_copy(update=update)):
            await api.register("ada")
            guesses = await asyncio.gather(*(api.login("ada", f"Wrong-pass{i}") for i in range(20)))
            assert Counter(r.status_code for r in guesses) == {401: 5, 429: 15}
            for refused in (r for r in guesses if r.status_code == 429):
                assert refused.json()["error"]["code"] == "RATE_LIMITED"
                assert 1 <= int(refused.headers["retry-after"]) <= 60
            # The address has 7 failures left, whichever accounts they are for.
            guesses = await asyncio.gather(
                *(api.login(f"someone{i}", "Wrong-pass1") for i in range(20))
            )
            assert Counter(r.status_code for r in guesses) == {401: 7, 429: 13}
    finally:
        if broker == "redis":
            await delete_namespace(namespace)


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
