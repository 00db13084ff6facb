"""OpenTelemetry tracing of the worker, off by default (DESIGN §7, K1; docs/operations.md "Tracing").

On when an OTLP endpoint or exporter is configured by the standard variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER`
= `otlp`/`console`) and `OTEL_SDK_DISABLED` is not `true`. Everything else is the SDK's own
reading of `OTEL_*` (service name and resource, sampler, batch processor, the exporter's
endpoint, headers, timeout and compression). The exporter speaks OTLP over HTTP/protobuf.

When on, each committed batch gives:

- one span per event, `<input topic> process` (kind consumer), continuing the trace of the
  input's W3C `traceparent`/`tracestate` headers (a new trace when there is none), with the
  verdict (`identity_worker.outcome`), the reason and the community as attributes, and the
  input's position (`messaging.*`). Never the token, the identity or the value;
- the output record carrying that span's context in its `traceparent`/`tracestate` (replacing
  the input's, every other header kept in place: K1), so the next hop continues it;
- one span per commit, `identity-worker commit` (kind producer), linked to the batch's event
  spans, in error when the commit fails (the batch is then redone: K8).

Off, nothing here runs: `commit_tracer` answers None when the member starts and the member
awaits its checkpoint's commit as it is, so the cost is one check per batch, none per event.
"""

from __future__ import annotations

import atexit
import copy
import functools
import os
import time
from collections.abc import Awaitable, Iterable, MutableSequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.propagators.textmap import Getter

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

#: runtime.decide.Decided (record, output); ops does not import the runtime.
Decided = Any

TRACE_HEADERS: Final = ("traceparent", "tracestate")
#: Links from one commit span to its events: beyond this the SDK would drop them anyway.
MAX_LINKS: Final = 128


def enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` variables ask for traces (the module docstring's rule)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter in {"otlp", "console"}
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


@functools.cache
def tracer() -> Tracer:
    """The process's tracer, its provider configured from `OTEL_*` once (flushed at exit)."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    from worker.exitcodes import PROG

    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over this default.
    resource = Resource({SERVICE_NAME: PROG}).merge(Resource.create())
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* for its timing
    atexit.register(provider.shutdown)  # the last spans are sent before the process exits
    _providers.append(provider)
    return provider.get_tracer("identity-worker")


_providers: list[Any] = []


def flush() -> None:
    """Send the spans still queued (the exit does it too)."""
    for provider in _providers:
        provider.force_flush()


def commit_tracer(group_id: str) -> CommitTracer | None:
    """The spans of each commit when tracing is on; None when off (nothing to run)."""
    if not enabled():
        return None
    return CommitTracer(group_id, tracer())


class _Headers(Getter[list[tuple[str, bytes]]]):
    """The W3C propagator's view of a Kafka record's headers: (str, bytes) pairs."""

    def get(self, carrier: list[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name == key and value is not None]
        return found or None

    def keys(self, carrier: list[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


_HEADERS: Final = _Headers()


def with_context(
    headers: Iterable[tuple[str, bytes]] | None, context: dict[str, str]
) -> list[tuple[str, bytes]]:
    """`headers` with `traceparent`/`tracestate` replaced by `context`'s, in place, others kept."""
    result: list[tuple[str, bytes]] = []
    pending = dict(context)
    for name, value in headers or ():
        if name in TRACE_HEADERS:
            if name in pending:
                result.append((name, pending.pop(name).encode("ascii")))
            continue  # a tracestate the new context does not carry is dropped, as W3C asks
        result.append((name, value))
    result += [(name, value.encode("ascii")) for name, value in pending.items()]
    return result


class CommitTracer:
    """Spans around one checkpoint's commit (the module docstring says which)."""

    def __init__(self, group_id: str, tracer: Tracer) -> None:
        self._group_id, self._tracer = group_id, tracer

    async def around(self, batch: MutableSequence[Decided], committing: Awaitable[None]) -> None:
        """Await `committing`, a checkpoint's commit not yet started, with the spans of its events
        and of itself; each output record of `batch` first gets its event span's context."""
        from opentelemetry import trace

        started = time.time_ns()
        spans = self._event_spans(batch, started)
        links = [trace.Link(span.get_span_context()) for span in spans[:MAX_LINKS]]
        commit = self._tracer.start_span(
            "identity-worker commit",
            kind=trace.SpanKind.PRODUCER,
            links=links,
            start_time=started,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(batch)},
        )
        try:
            await committing
        except BaseException as exc:  # the batch is redone (K8): its events and the commit failed
            commit.record_exception(exc)
            for span in (*spans, commit):
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            ended = time.time_ns()
            for span in (*spans, commit):
                span.end(ended)

    def _event_spans(self, batch: MutableSequence[Decided], started: int) -> list[Any]:
        """One span per event, each output's record given its context (K1: in batch order)."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = TraceContextTextMapPropagator()
        spans = []
        for index, item in enumerate(batch):
            record, output = item.record, item.output
            headers = list(record.headers or ())
            parent = propagator.extract(headers, getter=_HEADERS) if headers else None
            attributes: dict[str, Any] = {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "messaging.consumer.group.name": self._group_id,
                "identity_worker.outcome": output.outcome.value,
            }
            if output.reason is not None:
                attributes["identity_worker.reason"] = output.reason.value
            community = output.community_id
            if isinstance(community, str):
                attributes["identity_worker.community_id"] = community
            span = self._tracer.start_span(
                f"{record.topic} process",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                start_time=started,
                attributes=attributes,
            )
            carrier: dict[str, str] = {}
            propagator.inject(carrier, context=trace.set_span_in_context(span))
            moved = copy.copy(record)
            moved.headers = tuple(with_context(headers, carrier))
            batch[index] = item._replace(record=moved)
            spans.append(span)
        return spans
