"""Many shots at once: ``python -m memvos_core batch SHOTS.json`` (see :mod:`.command`).

Modules: ``spec`` (SHOTS.json -> checked single-shot CLI arguments), ``marker`` (the done-marker
and the skip rule), ``shot`` (one shot in a worker), ``local_pool`` (worker processes on this
machine), ``ray_runner`` (Ray tasks; the only module that imports ray), ``progress`` (the batch's
progress display and summary table).
"""
