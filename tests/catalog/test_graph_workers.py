"""Graph questions on worker threads: snapshots of the projection, turns, the bounded queue,
time budgets and cancellation (catalog/workers.py, GraphAnalysis.ask, CatalogGraph.snapshot)."""

from __future__ import annotations

import asyncio
import copy
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from catalog.analysis import GraphAnalysis
from catalog.demo import load_demo
from catalog.services import Services
from catalog.specs import RelationSpec, parse_document
from catalog.workers import SWITCH_INTERVAL, Workers, WorkersBusyError
from metadata.graph import CatalogGraph, GraphQueryTooExpensiveError, GraphView
from metadata.model import Kind, RelationType
from metadata.store import Change


def _node(i: int, kind: str = "system", lifecycle: str = "ACTIVE") -> Change:
    node_id = f"{kind}:n{i}"
    after = {"id": node_id, "kind": kind, "lifecycle": lifecycle, "owner": None}
    return Change(i, "node", node_id, "create", None, after)


def _rel(i: int, a: str, rtype: str, b: str, op: str = "create") -> Change:
    snap = {"from": a, "type": rtype, "to": b, "properties": None}
    before, after = (snap, None) if op == "delete" else (None, snap)
    return Change(i, "relation", f"{a}|{rtype}|{b}", op, before, after)


def dense_graph(systems: int, per_system: int, *, seed: int = 1) -> CatalogGraph:
    """A projection of ``systems`` systems, each DEPENDS_ON ``per_system`` random others."""
    rng = random.Random(seed)
    changes = [_node(i) for i in range(systems)]
    for i in range(systems):
        for j in rng.sample(range(systems), per_system):
            if j != i:
                changes.append(_rel(len(changes), f"system:n{i}", "DEPENDS_ON", f"system:n{j}"))
    graph = CatalogGraph()
    graph.apply(changes)
    return graph


def _picture(view: GraphView) -> tuple[dict[str, Any], list[Any]]:
    """Everything a question can read from a view, as plain values."""
    nodes = copy.deepcopy(dict(view.g.nodes(data=True)))
    edges = copy.deepcopy(sorted(view.g.edges(data=True)))
    return nodes, edges


SMALL = """
nodes:
  - {id: team:t, name: T}
  - {id: system:crm, name: CRM, owner: team:t}
  - {id: system:shop, name: Shop, owner: team:t}
  - {id: system:bot, name: Bot}
  - {id: capability:profile, name: Profile, owner: team:t}
  - {id: entity:customer, name: Customer}
relations:
  - {from: system:crm, type: PROVIDES, to: capability:profile}
  - {from: system:shop, type: DEPENDS_ON, to: system:crm}
  - {from: system:bot, type: DEPENDS_ON, to: system:shop}
  - {from: system:crm, type: MASTERS, to: entity:customer}
  - {from: capability:profile, type: READS, to: entity:customer}
"""


# -- snapshots ---------------------------------------------------------------------------------


async def test_a_snapshot_keeps_its_version_while_commits_change_the_projection(
    services: Services,
) -> None:
    await services.registry.apply_document(parse_document(SMALL))
    graph = services.graph
    snap = graph.snapshot()
    before = _picture(snap)
    version = snap.version
    await services.registry.relate(
        RelationSpec.model_validate(
            {"from": "system:bot", "type": "DEPENDS_ON", "to": "system:crm"}
        )
    )
    await services.registry.relate(
        RelationSpec.model_validate(
            {"from": "system:crm", "type": "STORES", "to": "entity:customer"}
        )
    )
    await services.registry.unrelate(
        RelationSpec.model_validate(
            {"from": "system:crm", "type": "MASTERS", "to": "entity:customer"}
        )
    )
    await services.registry.retire("system:shop")
    await services.registry.apply_document(parse_document("nodes: [{id: system:new, name: New}]"))
    assert _picture(snap) == before  # the snapshot saw none of it
    assert snap.version == version < graph.version
    assert graph.has("system:new") and not snap.has("system:new")
    assert not graph.active("system:shop") and snap.active("system:shop")
    assert graph.out("system:crm", RelationType.MASTERS) == []
    assert graph.out("system:crm", RelationType.STORES) == ["entity:customer"]
    assert snap.out("system:crm", RelationType.MASTERS) == ["entity:customer"]
    assert snap.out("system:crm", RelationType.STORES) == []
    # The live projection is still exactly what the store holds.
    fresh = CatalogGraph()
    await fresh.load(services.store)
    assert _picture(fresh) == _picture(graph)


def test_a_snapshot_copies_only_the_outer_dicts_and_changed_nodes() -> None:
    graph = dense_graph(300, 5)
    snap = graph.snapshot()
    assert snap is graph.snapshot()  # one snapshot per version
    assert snap.g._succ is not graph.g._succ
    # Untouched nodes share their adjacency dicts with the snapshot: no copy per question.
    assert snap.g._succ["system:n7"] is graph.g._succ["system:n7"]
    graph.apply([_rel(10_000, "system:n1", "DEPENDS_ON", "system:n2")])
    assert snap.g._succ["system:n1"] is not graph.g._succ["system:n1"]  # copied on write
    assert snap.g._pred["system:n2"] is not graph.g._pred["system:n2"]
    assert snap.g._succ["system:n7"] is graph.g._succ["system:n7"]
    assert graph.snapshot() is not snap and graph.snapshot().version == graph.version


def test_a_node_is_copied_once_after_a_snapshot_then_changed_in_place() -> None:
    graph = dense_graph(50, 3)
    snap = graph.snapshot()
    shared = graph.g._succ["system:n1"]
    del snap
    # The latest snapshot is kept for the next question at this version (metadata/graph.py,
    # ``snapshot``): the first change of a node copies its adjacency, the snapshot keeps the
    # old one ...
    graph.apply([_rel(10_000, "system:n1", "DEPENDS_ON", "system:n2")])
    copied = graph.g._succ["system:n1"]
    assert copied is not shared and "system:n2" in copied and "system:n2" not in shared
    assert graph.snapshot() is not None  # a new version: a new snapshot, the old one let go
    # ... and before the next snapshot, further changes of it are made in place.
    again = graph.g._succ["system:n1"]
    graph.apply([_rel(10_001, "system:n3", "DEPENDS_ON", "system:n4")])
    graph.apply([_rel(10_002, "system:n1", "DEPENDS_ON", "system:n5")])
    assert graph.g._succ["system:n1"] is not again  # copied once for the new snapshot
    once = graph.g._succ["system:n1"]
    graph.apply([_rel(10_003, "system:n1", "DEPENDS_ON", "system:n6")])
    assert graph.g._succ["system:n1"] is once and "system:n6" in once


def test_questions_on_a_snapshot_race_a_stream_of_changes_without_harm() -> None:
    graph = dense_graph(400, 6)
    analysis = GraphAnalysis(graph, time_budget=60)
    snap = graph.snapshot()
    on_snapshot = analysis._on(snap, lambda: False)
    expected = on_snapshot.impact("system:n0", 10), on_snapshot.neighborhood("system:n3", 2, None)
    errors: list[BaseException] = []
    answers: list[Any] = []
    done = threading.Event()

    def ask_again_and_again() -> None:
        try:
            while not done.is_set():
                answers.append(
                    (
                        on_snapshot.impact("system:n0", 10),
                        on_snapshot.neighborhood("system:n3", 2, None),
                    )
                )
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    reader = threading.Thread(target=ask_again_and_again)
    reader.start()
    rng = random.Random(3)
    try:
        for i in range(3_000):
            a, b = rng.sample(range(400), 2)
            op = "delete" if i % 3 == 2 else "create"
            changes = [_rel(20_000 + i, f"system:n{a}", "DEPENDS_ON", f"system:n{b}", op)]
            if i % 50 == 0:
                changes.append(_node(a, lifecycle="RETIRED" if i % 100 == 0 else "ACTIVE"))
            graph.apply(changes)
            if i % 200 == 0:
                time.sleep(0.001)  # let the reader run between the writer's bursts
    finally:
        done.set()
        reader.join()
    assert not errors, errors
    assert answers and all(answer == expected for answer in answers)


# -- the pool ------------------------------------------------------------------------------------


def _blocker(release: threading.Event, started: list[str]) -> Callable[[Callable[[], bool]], str]:
    def work(cancelled: Callable[[], bool]) -> str:
        started.append(threading.current_thread().name)
        while not release.wait(0.005):
            if cancelled():
                return "cancelled"
        return "done"

    return work


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_full_queue_refuses_further_work_at_once() -> None:
    workers = Workers(1, waiting=2, name="test-pool")
    release, started = threading.Event(), list[str]()
    try:
        jobs = [asyncio.ensure_future(workers.run(_blocker(release, started))) for _ in range(3)]
        await _until(lambda: started == ["test-pool_0"])
        assert workers.pending == 3
        t = time.perf_counter()
        with pytest.raises(WorkersBusyError, match="busy") as refused:
            await workers.run(_blocker(release, started))
        assert time.perf_counter() - t < 0.1
        assert refused.value.code == "UNAVAILABLE" and refused.value.retry_after >= 1
        release.set()
        assert await asyncio.gather(*jobs) == ["done", "done", "done"]
        assert workers.pending == 0
    finally:
        release.set()
        workers.close()


async def test_a_cancelled_job_stops_its_thread_and_a_waiting_one_never_starts() -> None:
    workers = Workers(1, waiting=1)
    release, started = threading.Event(), list[str]()
    try:
        running = asyncio.ensure_future(workers.run(_blocker(release, started)))
        await _until(lambda: len(started) == 1)
        waiting = asyncio.ensure_future(workers.run(_blocker(release, started)))
        await asyncio.sleep(0.05)
        waiting.cancel()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await _until(lambda: workers.pending == 0, timeout=1.0)  # the thread is free again
        assert len(started) == 1
        assert await workers.run(lambda cancelled: "next") == "next"
    finally:
        release.set()
        workers.close()


async def test_jobs_of_one_group_take_turns_and_others_share_the_threads() -> None:
    workers = Workers(2)
    running, most = 0, {"one request": 0, "many": 0}
    lock = threading.Lock()

    def work(label: str) -> Callable[[Callable[[], bool]], None]:
        def run(cancelled: Callable[[], bool]) -> None:
            nonlocal running
            with lock:
                running += 1
                most[label] = max(most[label], running)
            time.sleep(0.02)
            with lock:
                running -= 1

        return run

    async def in_turn(group: object, label: str) -> None:
        async with workers.turn(group):
            await workers.run(work(label))

    try:
        request = object()
        await asyncio.gather(*(in_turn(request, "one request") for _ in range(8)))
        await asyncio.gather(*(in_turn(object(), "many") for _ in range(8)))
        assert most == {"one request": 1, "many": 2}
        assert not workers._turns  # entries go with their last user
    finally:
        workers.close()


async def test_the_switch_interval_is_short_only_while_jobs_run() -> None:
    usual = sys.getswitchinterval()
    workers = Workers(1)
    seen: list[float] = []
    try:
        await workers.run(lambda cancelled: seen.append(sys.getswitchinterval()))
    finally:
        workers.close()
    assert seen == [min(usual, SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == usual


async def test_closing_stops_running_jobs_and_refuses_new_ones() -> None:
    workers = Workers(1)
    release, started = threading.Event(), list[str]()
    job = asyncio.ensure_future(workers.run(_blocker(release, started)))
    await _until(lambda: len(started) == 1)
    workers.close()
    assert await job == "cancelled"
    with pytest.raises(WorkersBusyError, match="shutting down"):
        await workers.run(lambda cancelled: None)


# -- questions through the pool --------------------------------------------------------------


async def test_answers_off_the_loop_equal_the_answers_on_it(services: Services) -> None:
    await load_demo(services.registry)
    analysis = services.analysis
    assert analysis.workers is not None
    threads: list[str] = []

    def where(question: Callable[[GraphAnalysis], Any]) -> Callable[[GraphAnalysis], Any]:
        def ask(q: GraphAnalysis) -> Any:
            threads.append(threading.current_thread().name)
            return question(q)

        return ask

    journey = next(iter(services.graph.nodes_of(Kind.JOURNEY)))
    questions: list[Callable[[GraphAnalysis], Any]] = [
        lambda q: q.impact("system:crm", 3),
        lambda q: q.impact("system:crm", 10),
        lambda q: q.path("system:chatbot", "entity:order", 6),
        lambda q: q.neighborhood("system:crm", 2, None),
        lambda q: q.neighborhood("system:crm", 3, [RelationType.DEPENDS_ON]),
        lambda q: q.lineage("entity:customer", "both", 5),
        lambda q: q.gaps(None),
        lambda q: q.gaps([Kind.TOUCHPOINT, Kind.DATA_ENTITY]),
        lambda q: q.redundancies(),
        lambda q: q.capability_map(None, 3),
        lambda q: q.journey_coverage(journey, {}),
        lambda q: q.hotspots(20),
    ]
    for question in questions:
        assert await analysis.ask(where(question)) == question(analysis)
    assert threads and all(name.startswith("capahub-graph") for name in threads)


async def test_a_question_past_its_budget_stops_and_frees_its_thread() -> None:
    graph = dense_graph(2_000, 20)
    workers = Workers(1)
    analysis = GraphAnalysis(graph, time_budget=60, workers=workers)
    try:
        t = time.perf_counter()
        await analysis.ask(lambda q: q.neighborhood("system:n0", 10, None))
        took = time.perf_counter() - t
        analysis.time_budget = round(took / 5, 3)  # a fifth of what the whole question takes
        t = time.perf_counter()
        with pytest.raises(GraphQueryTooExpensiveError, match="took longer than") as err:
            await analysis.ask(lambda q: q.neighborhood("system:n0", 10, None))
        assert err.value.code == "BAD_USER_INPUT"
        assert time.perf_counter() - t < took * 0.8
        assert workers.pending == 0
    finally:
        workers.close()


async def test_a_cancelled_question_stops_soon_after() -> None:
    graph = dense_graph(2_000, 20)
    workers = Workers(1)
    analysis = GraphAnalysis(graph, time_budget=60, workers=workers)
    try:
        t = time.perf_counter()
        whole = await analysis.ask(lambda q: q.neighborhood("system:n0", 10, None))
        took = time.perf_counter() - t
        assert len(whole.nodes) == 2_000
        asked = asyncio.ensure_future(analysis.ask(lambda q: q.neighborhood("system:n0", 10, None)))
        await _until(lambda: workers.pending == 1)
        await asyncio.sleep(min(0.05, took / 4))
        stopped = time.perf_counter()
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked
        await _until(lambda: workers.pending == 0, timeout=took)
        # It stopped well before it would have finished.
        assert time.perf_counter() - stopped < max(0.5, took / 2)
    finally:
        workers.close()


async def test_many_questions_of_one_request_share_the_workers_with_others() -> None:
    graph = dense_graph(500, 8)
    workers = Workers(2, waiting=0)
    analysis = GraphAnalysis(graph, time_budget=60, workers=workers)
    request = object()
    try:
        # 40 questions of one request hold one thread: another request still gets the other.
        many = [
            asyncio.ensure_future(analysis.ask(lambda q: q.impact("system:n1", 10), group=request))
            for _ in range(40)
        ]
        other = await analysis.ask(lambda q: q.path("system:n1", "system:n2", 6), group=object())
        assert other is not None
        answers = await asyncio.gather(*many)
        assert all(a == answers[0] for a in answers)
    finally:
        workers.close()
