"""`seeds`: the one place where a seed becomes randomness.

Every function of simkit that draws random numbers takes one ``seed`` parameter, an
``int`` or a :class:`numpy.random.SeedSequence` (and, where a single stream is enough, a
:class:`numpy.random.Generator`), and hands it to :func:`seed_sequence` or
:func:`generator` here. Replications are split with :meth:`~numpy.random.SeedSequence.spawn`,
never by adding to an integer seed, and :func:`seed_record` gives the entropy and spawn key
that a manifest records, so any replication can be drawn again alone::

    >>> import numpy as np
    >>> first, second = np.random.SeedSequence(7).spawn(2)
    >>> seed_record(second)
    {'entropy': 7, 'spawn_key': [1]}
    >>> seed_sequence(seed_record(second)).generate_state(1) == second.generate_state(1)
    array([ True])

There is no global random state anywhere in simkit. This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np

__all__ = ["Seed", "generator", "seed_record", "seed_sequence"]

Seed: TypeAlias = int | np.random.SeedSequence
"""What a ``seed`` parameter accepts: a non-negative integer or a ``SeedSequence``."""


def seed_sequence(seed: Seed | Mapping[str, Any]) -> np.random.SeedSequence:
    """A fresh :class:`~numpy.random.SeedSequence` for `seed`.

    `seed` is a non-negative integer, a ``SeedSequence`` (copied, so that spawning from
    the result never depends on what was spawned from it before), or a record made by
    :func:`seed_record`.

    Raises
    ------
    ValueError
        `seed` is negative, or not one of the accepted types.

    Examples
    --------
    >>> seed_sequence(3).entropy, seed_sequence(3).spawn_key
    (3, ())
    """
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)
    if isinstance(seed, Mapping):
        entropy, key = seed.get("entropy"), seed.get("spawn_key", ())
        if not _is_whole(entropy) or not isinstance(key, Sequence) or not all(_is_whole(k) for k in key):
            raise ValueError(f"a seed record needs an integer 'entropy' and a list 'spawn_key', got {seed!r}")
        return np.random.SeedSequence(int(entropy), spawn_key=tuple(int(k) for k in key))  # type: ignore[arg-type]
    if not _is_whole(seed):
        raise ValueError(f"seed must be a non-negative integer or a numpy SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def generator(seed: Seed | np.random.Generator) -> np.random.Generator:
    """A :class:`~numpy.random.Generator` for `seed` (a ``Generator`` is used as it is).

    Examples
    --------
    >>> int(generator(1).integers(100)) == int(generator(np.random.SeedSequence(1)).integers(100))
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed_sequence(seed))


def seed_record(seed: Seed) -> dict[str, Any]:
    """The entropy and spawn key of `seed`, as plain JSON values (for a manifest).

    Examples
    --------
    >>> seed_record(42)
    {'entropy': 42, 'spawn_key': []}
    """
    sequence = seed_sequence(seed)
    entropy = sequence.entropy
    if not isinstance(entropy, int):  # a SeedSequence made from a list of integers
        raise ValueError("seed_record: a SeedSequence's entropy must be one integer to be recorded")
    return {"entropy": entropy, "spawn_key": [int(k) for k in sequence.spawn_key]}


def _is_whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and bool(value >= 0)
