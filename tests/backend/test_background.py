"""Background iteration: order kept, producer errors reach the consumer, early exit stops it."""

import threading

import pytest

from scail_backend.background import Background


def test_items_arrive_in_order_through_a_small_queue():
    with Background(iter(range(100)), depth=2) as items:
        assert list(items) == list(range(100))


def test_a_producer_error_is_raised_in_the_consuming_thread():
    def items():
        yield 1
        raise ValueError("decoder broke")

    with Background(items()) as produced:
        with pytest.raises(ValueError, match="decoder broke"):
            list(produced)


def test_leaving_early_stops_the_producer_thread():
    before = {t for t in threading.enumerate()}
    endless = iter(int, 1)  # never ends
    with Background(endless, depth=1, name="scail-test-producer") as items:
        assert next(iter(items)) == 0
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []
