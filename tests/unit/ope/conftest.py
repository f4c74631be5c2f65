"""The OPE tests reuse the replay tests' tiny shop (its replay context with a registered champion)."""

from ..replay.conftest import (  # noqa: F401  (fixtures, found by name)
    context,
    feature_settings,
    model_settings,
    params,
    registry_dir,
    scorer,
    snapshots,
)
