"""The circuit breaker between the service and Redis, on a clock the test moves."""

from data_platform.serving.cache import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_trial_per_interval_after_a_failure_and_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(retry_interval_s=1.0, clock=clock)
    assert breaker.allow() and breaker.allow()  # closed: everyone goes to Redis
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    clock.now += 0.99
    assert not breaker.allow()
    clock.now += 0.02
    assert breaker.allow()  # the one trial...
    assert not breaker.allow()  # ...and nobody else meanwhile
    # A trial that never reports back (its request was cancelled) does not lock the circuit.
    clock.now += 1.01
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()
    assert breaker.failures == 1
