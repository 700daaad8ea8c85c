"""The models a server answers with, swapped atomically when the registry changes.

For each model name the holder keeps a `Deployment`: the production version and, when one exists,
the staging version (the canary). `sync()` re-reads the registry; a version that changed is loaded in
a thread while the old one keeps answering, then the name's entry is replaced in one assignment. A
request takes a *lease* on the `Served` version it was routed to, so a swap never pulls a model from
under a request: the old version's batcher is closed only after its last lease is returned, and its
memory is freed when nothing refers to it any more.

Invariant: a lease is always on a fully loaded version; a request never sees half of a swap.
Not here: which version should be in production (registry/), when to roll back (monitor/).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunegate.errors import RegistryError, ServeError
from tunegate.models import TextClassifier
from tunegate.models.dtypes import slow_bf16_warning
from tunegate.registry.resolve import load_model
from tunegate.serve.batcher import MicroBatcher
from tunegate.serve.chat import ChatModel
from tunegate.serve.errors_http import ApiError
from tunegate.serve.settings import ServeSettings
from tunegate.store import Store, VersionRecord

ROUTES = ("production", "staging")
log = logging.getLogger("tunegate.serve")


@dataclass(frozen=True)
class TextResult:
    """One text through a classifier: its (normalised) encoder embedding and class probabilities."""

    embedding: np.ndarray
    probabilities: np.ndarray


@dataclass(eq=False)
class Served:
    """One loaded version. `inflight` counts leases; a retired version closes when it reaches 0."""

    version: VersionRecord
    classifier: TextClassifier | None = None
    chat: ChatModel | None = None
    batcher: MicroBatcher | None = None
    inflight: int = 0
    retired: bool = False
    requests_served: int = 0

    @property
    def ref(self) -> str:
        return self.version.ref

    counting_tokenizer: Any = None

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Token counts, on the event loop thread, with a tokenizer of its own.

        A fast (Rust) tokenizer keeps padding/truncation state that each call rewrites, so sharing one
        with the inference thread corrupts batches under load (measured: ragged-tensor errors, ~1% of
        requests at 32 clients). A private copy makes the two threads independent.
        """
        if self.counting_tokenizer is None:
            source = self.classifier.encoder.tokenizer if self.classifier else self.chat.tokenizer  # type: ignore[union-attr]
            self.counting_tokenizer = copy.deepcopy(source)
        return [len(ids) for ids in self.counting_tokenizer(texts, add_special_tokens=True)["input_ids"]]


@dataclass
class Deployment:
    production: Served
    staging: Served | None = None
    canary_draws: random.Random = field(default_factory=random.Random)


def classify_texts(classifier: TextClassifier, texts: list[str], sub_batch: int = 16) -> list[TextResult]:
    """The batch function: the encoder over every text, then the float64 head.

    sentence-transformers sorts the texts by length and runs forwards of `sub_batch` texts, each padded
    only to its own longest text. Micro-batches mix 10- and 60-token tickets; one forward over all of
    them pads every text to the longest, which measured about half as fast per text (2026-12-02, 32
    tickets of 9-59 tokens, one core: 45 texts/s in one forward vs 87 in forwards of 16).
    """
    embeddings = classifier.embed(texts, batch_size=max(1, min(len(texts), sub_batch)))
    probabilities = classifier.head.probabilities(embeddings)
    return [TextResult(e, p) for e, p in zip(embeddings, probabilities, strict=True)]


def split_by_length(texts: list[str], parts: int) -> list[list[int]]:
    """Indices of `texts` sorted by length and cut into `parts` runs of about equal total length."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    total = sum(len(texts[i]) for i in order) or 1
    groups: list[list[int]] = [[]]
    done = 0
    for i in order:
        # A new part starts where this text would end more than half past the current part's share.
        if done + len(texts[i]) / 2 > total * len(groups) / parts and len(groups) < parts and groups[-1]:
            groups.append([])
        groups[-1].append(i)
        done += len(texts[i])
    return [g for g in groups if g]


class ModelHolder:
    def __init__(
        self,
        store: Store,
        settings: ServeSettings,
        executor: Executor,
        *,
        inflight_hint: Callable[[], int] | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_swap: Callable[[str, str, VersionRecord | None], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.executor = executor
        self.inflight_hint = inflight_hint
        self.on_batch = on_batch
        self.on_swap = on_swap  # (name, route, new version or None) for metrics and logs
        self.deployments: dict[str, Deployment] = {}
        self.failed: dict[int, str] = {}  # version id -> why it could not be loaded
        self._sync_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    # -- registry -> loaded models ----------------------------------------------------------------

    def _wanted(self) -> dict[str, dict[str, VersionRecord]]:
        """{name: {route: version}} from the registry (runs in a thread: it is blocking I/O)."""
        names = self.settings.models or tuple(
            sorted({v.name for v in self.store.meta.list_versions() if v.stage == "production"})
        )
        wanted: dict[str, dict[str, VersionRecord]] = {}
        for name in names:
            routes = {}
            for route in ROUTES:
                with suppress(RegistryError):
                    routes[route] = self.store.meta.resolve(f"{name}@{route}")
            if "production" in routes:
                wanted[name] = routes
        return wanted

    def _load(self, version: VersionRecord) -> Served:
        if version.task == "classify":
            served = Served(version, classifier=load_model(self.store, version))
            dtype = served.classifier.inference_dtype  # type: ignore[union-attr]
        else:
            folder = self.store.artifacts.get_tree(
                version.artifact_sha256, verify=self.settings.verify_artifacts
            )
            served = Served(version, chat=ChatModel.load(folder, self.store.workspace.cache_dir))
            parameter = next(served.chat.model.parameters())  # type: ignore[union-attr]
            dtype = str(parameter.dtype).removeprefix("torch.") if parameter.device.type == "cpu" else ""
        if message := slow_bf16_warning(f"{version.ref} inference_dtype", dtype):
            log.warning("%s", message)
        return served

    async def sync(self) -> list[str]:
        """Bring the served versions in line with the registry; returns what changed, for logs.

        A version that fails to load is remembered and not retried (a broken artifact must not be
        re-hashed every poll); production then keeps the version it had, staging gets none.
        """
        async with self._sync_lock:
            wanted = await asyncio.to_thread(self._wanted)
            changes = []
            for name, routes in wanted.items():
                current = self.deployments.get(name)
                loaded = (
                    {s.version.id: s for s in (current.production, current.staging) if s} if current else {}
                )
                served: dict[str, Served | None] = {}
                for route in ROUTES:
                    old = getattr(current, route) if current else None
                    new_version = routes.get(route)
                    if new_version is None:
                        served[route] = None
                    elif new_version.id in loaded:  # unchanged, or staging promoted: no reload
                        served[route] = loaded[new_version.id]
                    elif new_version.id in self.failed:
                        served[route] = old if route == "production" else None
                    else:
                        try:
                            served[route] = await self._prepare(new_version)
                            changes.append(f"{name}@{route} -> {new_version.ref}")
                        except ServeError as exc:
                            self.failed[new_version.id] = str(exc)
                            served[route] = old if route == "production" else None
                            changes.append(
                                f"{name}@{route}: {exc}; still serving {old.ref if old else 'nothing'}"
                            )
                prod = served["production"]
                if prod is None:
                    continue  # nothing loadable for this model yet
                draws = current.canary_draws if current else random.Random(self.settings.canary_seed)
                self.deployments[name] = Deployment(prod, served["staging"], draws)  # the swap
                for route in ROUTES:
                    old = getattr(current, route) if current else None
                    if old is not None and old not in served.values():
                        self._retire(old)
                    if self.on_swap and old is not served[route]:
                        self.on_swap(name, route, served[route].version if served[route] else None)
            for name in set(self.deployments) - set(wanted):
                gone = self.deployments.pop(name)
                changes.append(f"{name}: no production version, no longer served")
                for old in (gone.production, gone.staging):
                    if old is not None:
                        self._retire(old)
            return changes

    async def _prepare(self, version: VersionRecord) -> Served:
        try:
            served = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            raise ServeError(f"cannot serve {version.ref}: {exc}") from exc
        if served.classifier is not None:
            classifier = served.classifier
            served.batcher = MicroBatcher(
                lambda texts: classify_texts(classifier, texts, self.settings.encoder_sub_batch),
                self.executor,
                max_items=self.settings.batch_max_items,
                max_wait_ms=self.settings.batch_max_wait_ms,
                on_batch=self.on_batch,
                inflight_hint=self.inflight_hint,
                max_concurrent=1 if self.settings.split_batches else self.settings.inference_workers,
                split=(
                    functools.partial(split_by_length, parts=self.settings.inference_workers)
                    if self.settings.split_batches
                    else None
                ),
            )
            served.batcher.start()
        return served

    def _retire(self, served: Served) -> None:
        served.retired = True
        if served.inflight == 0:
            self._close(served)

    def _close(self, served: Served) -> None:
        if served.batcher is not None:
            task = asyncio.get_running_loop().create_task(served.batcher.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- leases -----------------------------------------------------------------------------------

    def pick(self, model: str | None) -> tuple[Served, str]:
        """Route a request: `name` (production, or staging for the canary share), `name@staging`."""
        name, _, route = (model or "").partition("@")
        if not name:
            if len(self.deployments) != 1:
                raise ApiError(400, "say which model: " + ", ".join(sorted(self.deployments)), param="model")
            name = next(iter(self.deployments))
        deployment = self.deployments.get(name)
        if deployment is None:
            known = ", ".join(sorted(self.deployments)) or "none"
            raise ApiError(
                404, f"model {name!r} is not served (served: {known})", param="model", code="model_not_found"
            )
        if route in ("", "production"):
            canary = deployment.staging is not None and (
                deployment.canary_draws.random() < self.settings.canary_fraction
            )
            if canary:
                return deployment.staging, "canary"  # type: ignore[return-value]
            return deployment.production, "production"
        if route == "staging" and deployment.staging is not None:
            return deployment.staging, "staging"
        raise ApiError(
            404,
            f"model {model!r}: no such route (use {name} or {name}@staging)",
            param="model",
            code="model_not_found",
        )

    def acquire(self, model: str | None) -> tuple[Served, str]:
        """Route and lease in one step; pair every acquire with `release` (streams release when done)."""
        served, route = self.pick(model)
        served.inflight += 1  # single-threaded event loop: nothing runs between pick and here
        return served, route

    def release(self, served: Served) -> None:
        served.inflight -= 1
        served.requests_served += 1
        if served.retired and served.inflight == 0:
            self._close(served)

    @asynccontextmanager
    async def lease(self, model: str | None) -> AsyncIterator[tuple[Served, str]]:
        """(the version answering, its route: production / canary / staging) for one request."""
        served, route = self.acquire(model)
        try:
            yield served, route
        finally:
            self.release(served)

    async def close(self) -> None:
        for deployment in list(self.deployments.values()):
            for served in (deployment.production, deployment.staging):
                if served is not None and served.batcher is not None:
                    await served.batcher.close()
        self.deployments.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                route: {"version": s.version.version, "ref": s.ref, "inflight": s.inflight}
                for route, s in (("production", d.production), ("staging", d.staging))
                if s is not None
            }
            for name, d in self.deployments.items()
        }
