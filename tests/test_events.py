import pytest

from medviewer.events import Emitter, EventGroup


def test_subscribers_are_called_in_order_once_each():
    calls = []
    emitter = Emitter("opened")
    first = emitter.connect(lambda value: calls.append(("first", value)))
    emitter.connect(lambda value: calls.append(("second", value)))
    emitter.connect(first)  # a second connect of the same callable is ignored
    emitter.emit(7)
    assert calls == [("first", 7), ("second", 7)]
    emitter.disconnect(first)
    emitter.emit(8)
    assert calls[-1] == ("second", 8) and len(calls) == 3


def test_a_failing_subscriber_does_not_silence_the_others_and_is_raised():
    heard = []
    emitter = Emitter("changed")

    def broken(_value):
        raise ValueError("bug in a subscriber")

    emitter.connect(broken)
    emitter.connect(heard.append)
    with pytest.raises(ValueError, match="bug in a subscriber"):
        emitter.emit("x")
    assert heard == ["x"]


def test_blocked_emitter_calls_nobody():
    heard = []
    emitter = Emitter()
    emitter.connect(heard.append)
    with emitter.blocked():
        emitter.emit(1)
    emitter.emit(2)
    assert heard == [2]


def test_event_group_makes_named_emitters_and_disconnects_a_subscriber_everywhere():
    class Events(EventGroup):
        names = ("opened", "closed")

    events = Events("extra")
    heard = []
    for emitter in events:
        emitter.connect(heard.append)
    events.opened.emit("a")
    events.extra.emit("b")
    events.disconnect_all(heard.append)
    events.closed.emit("c")
    assert heard == ["a", "b"]
    assert [e.name for e in events] == ["opened", "closed", "extra"]
