"""A model version's drift: PSI of its recent traced inputs and answers against its profile."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import RegistryDep
from api.errors import ConflictError
from api.schemas import error_responses
from api.security import CurrentUser
from ml.drift import PSI_ALERT, PSI_WARN
from serving.drift_monitor import DriftMonitor, level

router = APIRouter(prefix="/models", tags=["models"])


class FeatureDrift(BaseModel):
    feature: str
    psi: float
    level: str
    """``stable`` (PSI under 0.1), ``warn`` (under 0.25) or ``alert``."""


class DriftWindowInfo(BaseModel):
    requests: int
    """The answered requests the rows came in (a batch request gives several rows)."""
    rows: int
    """The last rows this version answered, ``limit`` at most."""
    limit: int
    since: datetime | None
    until: datetime | None


class ModelDrift(BaseModel):
    model: str
    version: str
    window: DriftWindowInfo
    thresholds: dict[str, float]
    prediction_psi: float | None
    prediction_level: str | None
    features: list[FeatureDrift]
    """Every feature, the most drifted first; empty when ``problem`` says why."""
    problem: str | None


@router.get(
    "/{name}/drift",
    response_model=ModelDrift,
    responses=error_responses(
        401,
        404,
        409,
        422,
        503,
        descriptions={409: "The model version has no reference profile (an audio model)"},
    ),
    summary="PSI of each feature and of the predictions, recent traffic against the profile",
)
async def model_drift(
    name: str,
    request: Request,
    registry: RegistryDep,
    _user: CurrentUser,
    version: str | None = None,
) -> ModelDrift:
    """Measured now on the last ``DRIFT_WINDOW`` rows answered by the version the name
    serves (or ``?version=``, a version or an alias); the gauges are updated too."""
    entry = registry.resolve(f"{name}@{version}" if version else name)
    if entry.manifest.reference_profile is None:
        raise ConflictError(f"{entry.ref} has no reference profile: drift is not measured")
    monitor: DriftMonitor = request.app.state.drift_monitor
    report = await asyncio.to_thread(monitor.measure, entry)
    features = sorted(report.features.items(), key=lambda item: -item[1])
    return ModelDrift(
        model=report.model,
        version=report.version,
        window=DriftWindowInfo(
            requests=report.window_requests,
            rows=report.window_rows,
            limit=monitor.window,
            since=report.since,
            until=report.until,
        ),
        thresholds={"warn": PSI_WARN, "alert": PSI_ALERT},
        prediction_psi=report.prediction_psi,
        prediction_level=None if report.prediction_psi is None else level(report.prediction_psi),
        features=[FeatureDrift(feature=f, psi=psi, level=level(psi)) for f, psi in features],
        problem=report.problem,
    )
