"""Failed logins: strict per account, looser per client IP, so one person's typos do
not lock out everyone behind the same address."""

from __future__ import annotations

from palaver.config import Settings
from tests.api.conftest import STRONG, open_api


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
