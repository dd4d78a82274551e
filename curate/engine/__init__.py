"""Where per-image work runs: one small executor interface, two engines.

The work that is independent per image (decoding and the face stage at ingest, perceptual
hashes and quality sums, embeddings, the audit's originals, defect-model and photo-check
scoring) and the per-fold training of the mislabel check go through :class:`Engine`:

- :class:`~curate.engine.local.LocalEngine` (the default; nothing to install): threads in this
  process, exactly as curate always ran;
- :class:`~curate.engine.ray_engine.RayEngine` (``curate --engine ray``, optional extra
  ``curate[ray]``): Ray Data ``map_batches`` over actor pools that build their models once per
  worker, and Ray tasks for the mislabel folds (one GPU each where the cluster has GPUs).

Workers only compute and return results; every workspace write and the manifest commit stay
in the driver, so the workspace remains the commit point whatever runs the work. The choice
(``--engine``, ``--ray-address``, ``CURATE_ENGINE``, ``CURATE_RAY_ADDRESS``, ``RAY_ADDRESS``)
is made once per process (:mod:`curate.engine.choice`) and recorded with every command run.
"""
from curate.engine.base import Engine, EngineError, Factory
from curate.engine.choice import (ENGINES, EngineChoice, engine_choice, get_engine, local_engine, set_cli_engine,
                                  shutdown_engine, use_engine)
from curate.engine.local import LocalEngine

__all__ = ["ENGINES", "Engine", "EngineChoice", "EngineError", "Factory", "LocalEngine", "engine_choice",
           "get_engine", "local_engine", "set_cli_engine", "shutdown_engine", "use_engine"]
