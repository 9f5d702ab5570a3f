"""The fuzz suite runs on the soak's world (the shop and the five emulated PGs on a live server)."""

from tests.soak.conftest import _no_worker_left, world  # noqa: F401  (fixtures)
