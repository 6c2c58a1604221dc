from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from palaver.services import signals


@given(
    st.integers(1, 2**40),
    st.lists(st.tuples(st.integers(1, 2**40), st.binary(max_size=200)), min_size=1, max_size=20),
)
def test_message_wake_ups_round_trip(conversation: int, messages: list[tuple[int, bytes]]) -> None:
    payload = signals.encode_messages(conversation, messages)
    assert signals.decode_messages(payload) == (conversation, messages)
    assert signals.decode_event(payload) is None


def test_events_and_control_signals_are_not_message_wake_ups() -> None:
    event = signals.encode_event({"type": "typing", "conversation_id": 3})
    assert signals.decode_messages(event) is None
    assert signals.decode_event(event) == b'{"type":"typing","conversation_id":3}'
    control = signals.encode("revoke", user_id=1, sessions=None)
    assert signals.decode_messages(control) is None
    assert signals.decode(control) == {"type": "revoke", "user_id": 1, "sessions": None}
