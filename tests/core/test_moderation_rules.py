"""The sans-I/O moderation rules and the word filter."""

from __future__ import annotations

import pytest

from palaver.core.errors import PalaverError
from palaver.core.models import ConversationKind, Role
from palaver.core.moderation_commands import parse
from palaver.core.permissions import Move, Standing, check
from palaver.core.wordfilter import compile_filter, fold, normalise_words

ROOM = ConversationKind.ROOM
OWNER, ADMIN, MEMBER = Standing(Role.OWNER), Standing(Role.ADMIN), Standing(Role.MEMBER)
STAFF_MEMBER = Standing(Role.MEMBER, server_admin=True)


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (OWNER, ADMIN, True),
        (OWNER, MEMBER, True),
        (ADMIN, MEMBER, True),
        (ADMIN, ADMIN, False),
        (ADMIN, OWNER, False),
        (MEMBER, MEMBER, False),
        (STAFF_MEMBER, ADMIN, True),
        (STAFF_MEMBER, OWNER, False),
        (Standing(None, server_admin=True), MEMBER, False),
    ],
)
@pytest.mark.parametrize("move", [Move.KICK, Move.BAN, Move.MUTE])
def test_who_may_act_on_whom(move: Move, actor: Standing, target: Standing, allowed: bool) -> None:
    assert (check(move, ROOM, actor, target) is None) is allowed


def test_roles_and_special_cases() -> None:
    assert check(Move.KICK, ConversationKind.DIRECT, OWNER, MEMBER) is not None
    assert check(Move.KICK, ROOM, OWNER, OWNER, self_target=True) is not None
    assert check(Move.BAN, ROOM, ADMIN, Standing(None)) is None  # someone who left
    assert check(Move.MUTE, ROOM, ADMIN, Standing(None)) is not None
    assert check(Move.SET_ROLE, ROOM, OWNER, MEMBER, new_role=Role.ADMIN) is None
    assert check(Move.SET_ROLE, ROOM, ADMIN, MEMBER, new_role=Role.ADMIN) is not None
    assert check(Move.SET_ROLE, ROOM, STAFF_MEMBER, MEMBER, new_role=Role.OWNER) is not None
    assert check(Move.SET_ROLE, ROOM, OWNER, ADMIN, new_role=Role.OWNER) is None
    assert check(Move.INVITE, ROOM, ADMIN) is None
    assert check(Move.INVITE, ROOM, MEMBER) is not None


def test_filter_whole_words_case_and_accents() -> None:
    words = normalise_words(["Darn", " heck ", "", "darn", "naïve idea"])
    assert words == ("darn", "heck", "naive idea")
    word_filter = compile_filter(words)
    assert compile_filter(words) is word_filter  # compiled once
    result = word_filter.apply("DÄRN! darned, Heck-heck; a NAÏVE   idea? naive idea")
    assert result.text == "****! darned, ****-****; a *****   ****? ***** ****"
    assert result.hits == ("darn", "heck", "heck", "naive   idea", "naive idea")
    assert word_filter.apply("nothing here").hits == ()
    assert compile_filter(()).apply("darn").text == "darn"
    assert fold("ﬁancé") == "fiance"


def test_filter_keeps_length_with_expanding_characters() -> None:
    result = compile_filter(("fin",)).apply("the ﬁn end")  # ligature folds to two letters
    assert result.text == "the ** end"


def test_word_lists_are_bounded() -> None:
    with pytest.raises(ValueError, match="at most"):
        normalise_words([f"w{i}" for i in range(1001)])
    with pytest.raises(ValueError, match="characters"):
        normalise_words(["x" * 65])


def test_moderation_frames_parse_and_refuse() -> None:
    op = parse("ban", {"conversation_id": 3, "user_id": 4, "duration": 60, "reason": "spam"})
    assert (op.conversation_id, op.user_id, op.duration, op.reason) == (3, 4, 60, "spam")
    assert parse("set_notifications", {"conversation_id": 1, "mute": True}).mute is True
    assert parse("set_notifications", {"conversation_id": 1, "mute": 30}).mute == 30
    for action, raw, field in [
        ("kick", {"conversation_id": 1}, "user_id"),
        ("mute", {"conversation_id": 1, "user_id": 2, "duration": 0}, "duration"),
        ("set_role", {"conversation_id": 1, "user_id": 2, "role": "god"}, "role"),
        ("join_invite", {"code": 5}, "code"),
        ("set_notifications", {"conversation_id": 1, "level": "loud"}, "level"),
        ("set_notifications", {"conversation_id": 1, "mute": -1}, "mute"),
    ]:
        with pytest.raises(PalaverError) as caught:
            parse(action, raw)
        assert caught.value.field == field
