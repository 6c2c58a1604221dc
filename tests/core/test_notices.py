"""Notices know where they name each user, and lose only that user's names."""

from __future__ import annotations

from palaver.core.models import User
from palaver.core.notices import DELETED_USER, NamedUser, Notice, without_user


def person(user_id: int, display_name: str) -> User:
    return User(
        id=user_id,
        username=display_name.lower(),
        email=None,
        display_name=display_name,
        password_hash="",
        is_admin=False,
        is_active=True,
        created_at=0,
    )


ADA = person(1, "Ada")
BOB = person(2, "Bob Smith")


def test_a_notice_records_where_it_names_users() -> None:
    notice = Notice.of(ADA, " made ", BOB, " admin")
    assert notice.text == "Ada made Bob Smith admin"
    assert notice.names == (NamedUser(1, 0, 3), NamedUser(2, 9, 9))
    for name, user in zip(notice.names, (ADA, BOB), strict=True):
        assert notice.text[name.start : name.start + name.length] == user.handle
    # Text stands in for a user that is gone; a user without a handle is not recorded.
    assert Notice.of(ADA, " removed ", "user 7").names == (NamedUser(1, 0, 3),)
    assert Notice.of(person(3, ""), " left").names == ()


def test_only_the_deleted_users_names_change() -> None:
    # The same words in free text (a room's new name) and another user called the same
    # stay as they are.
    notice = Notice.of(ADA, " renamed the room to Ada")
    assert without_user(notice.text, notice.names, 1) == (
        f"{DELETED_USER} renamed the room to Ada",
        (NamedUser(1, 0, len(DELETED_USER)),),
    )
    twins = Notice.of(ADA, " added ", person(9, "Ada"))
    text, names = without_user(twins.text, twins.names, 9)
    assert text == f"Ada added {DELETED_USER}"
    text, names = without_user(text, names, 1)
    assert text == f"{DELETED_USER} added {DELETED_USER}"
    assert names == (NamedUser(1, 0, 12), NamedUser(9, 19, 12))
    # The other user's place moves with the text before it.
    made = Notice.of(ADA, " made ", BOB, " admin")
    text, names = without_user(made.text, made.names, 1)
    assert text == f"{DELETED_USER} made Bob Smith admin"
    assert text[names[1].start : names[1].start + names[1].length] == "Bob Smith"


def test_places_that_do_not_fit_are_dropped() -> None:
    assert without_user("", [NamedUser(1, 0, 3)], 1) == ("", ())
    assert without_user("Ada joined", [NamedUser(1, 0, 3), NamedUser(2, 1, 3)], 2) == (
        "Ada joined",
        (NamedUser(1, 0, 3),),
    )
