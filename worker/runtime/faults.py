"""The fault model (K8, K9, K10): every failure the runtime sees is classified here, and only here.

Two classes, decided by the exception's type (and aiokafka's `retriable`), never its text, and
a third that never reaches this module:

- `Fault.INFRASTRUCTURE` (K8): the broker or the store cannot answer now, or our own session
  with them is broken (a fenced producer, an expelled member, a rebalance). Retried with
  capped backoff after recovery (new producer, rewind to the committed offsets); surfaces in
  /readyz and `identity_worker_infrastructure_retries`; never a verdict, never a lost record.
- `Fault.FATAL` (K10): a misconfiguration no retry can fix — not authorized or not
  authenticated, a request or batch larger than the broker allows, a protocol the broker
  does not speak, a setting it refuses. One clear log line, /readyz fails, the process
  exits non-zero (`worker.exitcodes.EXIT_FATAL`) without committing the batch in hand.
- A record fault (K9): a property of one record. Such faults never reach this module as
  exceptions: a record the client cannot decode is an `UnreadableRecord`
  (worker.kafka.fetched) and an exception while deciding one is a dead letter
  (worker.runtime.decide); both give that record its one output and the stream goes on.
  A record that must wait (`ConfigUnavailable`) holds back only its partition
  (worker.runtime.partitions).

Anything else (a bug) is not classified: it propagates and the worker exits 2.
`Reporter` is what every `except` of the member calls: it counts, logs and shows the fault.
docs/fault-model.md lists each failure with its class and the test that covers it.
"""

from __future__ import annotations

import enum

import structlog
from aiokafka import errors as kafka

from worker.core.community import ConfigUnavailable
from worker.kafka.consumer import MemberExpelled
from worker.kafka.topics import OutputTopicUnusable
from worker.ops.metrics import Metrics
from worker.ops.probes import Health

log = structlog.get_logger(__name__)


class Fault(enum.Enum):
    INFRASTRUCTURE = "infrastructure"
    FATAL = "fatal"


# Misconfiguration, by type (K10): each needs an operator, not a retry.
FATAL_ERRORS: dict[type[BaseException], str] = {
    kafka.TopicAuthorizationFailedError: "not authorized for a topic (check the ACLs)",
    kafka.GroupAuthorizationFailedError: "not authorized for the consumer group (check the ACLs)",
    kafka.TransactionalIdAuthorizationFailed: "not authorized for the transactional id (check the ACLs)",
    kafka.ClusterAuthorizationFailedError: "not authorized on the cluster (check the ACLs)",
    kafka.DelegationTokenAuthorizationFailed: "not authorized (delegation token)",
    kafka.SaslAuthenticationFailed: "authentication failed (check the credentials)",
    kafka.AuthenticationFailedError: "authentication failed (check the credentials)",
    kafka.AuthenticationMethodNotSupported: "the broker does not offer this authentication method",
    kafka.UnsupportedSaslMechanismError: "the broker does not offer this SASL mechanism",
    kafka.IllegalSaslStateError: "SASL handshake refused",
    kafka.MessageSizeTooLargeError: (
        "a record batch is larger than the topic accepts "
        "(lower IDENTITY_WORKER_KAFKA_BATCH_BYTES or raise max.message.bytes)"
    ),
    kafka.RecordListTooLargeError: "a request is larger than the broker accepts (message.max.bytes)",
    kafka.InvalidTransactionTimeout: (
        "the transaction timeout exceeds the broker's transaction.max.timeout.ms"
    ),
    kafka.UnsupportedVersionError: "the broker does not support a request this worker needs",
    kafka.IncompatibleBrokerVersion: "the broker is too old for this worker",
    kafka.UnsupportedForMessageFormatError: "the topic's message format is too old for transactions",
    kafka.InvalidConfigurationError: "the broker refused a setting",
    kafka.KafkaConfigurationError: "the Kafka client settings are invalid",
    kafka.InvalidTopicError: "a topic name is invalid",
    kafka.InvalidGroupIdError: "the consumer group id is invalid",
    kafka.InvalidTimestampError: (
        "an output topic refuses the records' timestamps (its message.timestamp.* settings, or the clock)"
    ),
    kafka.InvalidRequiredAcksError: "the broker refused the acks setting",
    kafka.SecurityDisabled: "the broker has security disabled for a request this worker needs",
    kafka.InvalidSessionTimeoutError: "the session timeout is outside the broker's allowed range",
    kafka.UnsupportedCodecError: "a compression library is missing (install cramjam, see pyproject.toml)",
    OutputTopicUnusable: "an output topic leaves no room for an output (its max.message.bytes)",
}

_FATAL = tuple(FATAL_ERRORS)
# Transient by nature: time-outs, sockets, the store, a member the group has expelled.
_INFRASTRUCTURE: tuple[type[BaseException], ...] = (TimeoutError, OSError, ConfigUnavailable, MemberExpelled)


def classify(exc: BaseException) -> Fault | None:
    """The class of a failure, by type; None for an unexpected exception (a bug)."""
    if isinstance(exc, (FatalFault, *_FATAL)):
        return Fault.FATAL
    if isinstance(exc, kafka.KafkaError) and exc.retriable:
        # Retriable by its own type, whatever it wraps: e.g. OutputTopicChanged over a size
        # refusal, after which the output topics are read again and the outputs refitted (K9).
        return Fault.INFRASTRUCTURE
    if any(isinstance(cause, _FATAL) for cause in _chain(exc)):
        return Fault.FATAL
    if isinstance(exc, kafka.KafkaError):
        # `retriable` errors come back by themselves; the others are states of our own session
        # (fenced producer, invalid transaction state, unknown member id, rebalance) that the
        # recovery — a new producer, a rewind to the committed offsets — clears (K8).
        return Fault.INFRASTRUCTURE
    if isinstance(exc, _INFRASTRUCTURE):
        return Fault.INFRASTRUCTURE
    return None


# Fatal faults whose own message is ours and says what the operator must know — the topic and
# the sizes (K10) — and never holds record content: kept in the one line.
_OWN_DETAIL: tuple[type[BaseException], ...] = (OutputTopicUnusable,)


def hint(exc: BaseException) -> str:
    """What a fatal fault means for the operator (one line, no record content)."""
    if isinstance(exc, FatalFault):
        return exc.hint
    for cause in _chain(exc):
        for kind, text in FATAL_ERRORS.items():
            if isinstance(cause, kind):
                detail = str(cause.args[0]) if isinstance(cause, _OWN_DETAIL) and cause.args else ""
                return f"{text}: {detail}" if detail else text
    return type(exc).__name__


class FatalFault(Exception):
    """A fatal misconfiguration met at run time (K10): the worker stops, exit `exitcodes.EXIT_FATAL`."""

    def __init__(self, what: str, cause: BaseException) -> None:
        self.what = what
        self.error_type = type(cause).__name__
        self.hint = hint(cause)
        super().__init__(f"{what}: {self.error_type}: {self.hint}")


class Reporter:
    """Every fault the member meets goes through here (K10).

    Infrastructure: counted (`identity_worker_infrastructure_retries{component,error}`), logged,
    /readyz not ready (Kafka); the caller retries. Fatal: /readyz says why and `FatalFault` is
    raised. A bug (unclassified) is raised as it is.
    """

    def __init__(self, metrics: Metrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health

    def __call__(self, component: str, exc: BaseException, what: str) -> None:
        kind = classify(exc)
        if kind is None:
            raise exc
        error = type(exc).__name__
        if kind is Fault.FATAL:
            fatal = exc if isinstance(exc, FatalFault) else FatalFault(what, exc)
            self.health.fatal = str(fatal)
            self.metrics.fatal_errors.labels(fatal.error_type).inc()
            raise fatal from exc
        self.metrics.infrastructure_retries.labels(component, error).inc()
        if component == "kafka":
            self.health.kafka_failed(f"{what}: {error}")
        log.warning(what, component=component, error_type=error, error=str(exc)[:300])


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (aiokafka wraps some errors), at most a few deep."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 5:
        found.append(current)
        current = current.__cause__
    return found
