"""The job protocol's event dispatcher: event type -> on_<snake_name> of a consumer."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medviewer.jobs import EventConsumer, Progress, handler_name, run_to_end, unhandled_events


@dataclass(frozen=True)
class FileIndexed:
    name: str


@dataclass(frozen=True)
class HTTPRequestSent:
    url: str


class Listener(EventConsumer):
    ignored_events = (HTTPRequestSent,)

    def __init__(self) -> None:
        self.heard: list[str] = []

    def on_progress(self, event: Progress) -> None:
        self.heard.append(f"{event.done}/{event.total}")

    def on_file_indexed(self, event: FileIndexed) -> None:
        self.heard.append(event.name)


def test_handler_names_are_the_type_name_in_snake_case():
    assert handler_name(Progress) == "on_progress"
    assert handler_name(FileIndexed) == "on_file_indexed"
    assert handler_name(HTTPRequestSent) == "on_http_request_sent"


def test_each_event_goes_to_its_method_and_ignored_ones_are_dropped_quietly(caplog):
    def job():
        yield Progress(1, 2)
        yield FileIndexed("a.dcm")
        yield HTTPRequestSent("http://127.0.0.1")
        yield Progress(2, 2)
        return "done"

    listener = Listener()
    with caplog.at_level(logging.WARNING):
        assert run_to_end(job(), listener.dispatch) == "done"
    assert listener.heard == ["1/2", "a.dcm", "2/2"]
    assert not caplog.records


def test_an_event_without_a_handler_is_logged_once_not_lost_silently(caplog):
    @dataclass(frozen=True)
    class BrandNewEvent:
        pass

    listener = Listener()
    with caplog.at_level(logging.WARNING):
        listener.dispatch(BrandNewEvent())
        listener.dispatch(BrandNewEvent())
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["Listener has no on_brand_new_event method: BrandNewEvent events are "
                        "not shown"]
    assert unhandled_events(Listener, [Progress, FileIndexed, HTTPRequestSent,
                                       BrandNewEvent]) == [BrandNewEvent]
