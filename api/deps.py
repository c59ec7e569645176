"""Dependencies: the app's collaborators (settings, registry, database) for the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from api.settings import Settings
from db.traces import TraceWriter
from registry.registry import ModelRegistry
from registry.sync import RegistrySync
from serving.dataplane import DataPlane


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_registry_sync(request: Request) -> RegistrySync:
    sync: RegistrySync = request.app.state.registry_sync
    return sync


def get_data_plane(request: Request) -> DataPlane:
    data_plane: DataPlane = request.app.state.data_plane
    return data_plane


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_trace_writer(request: Request) -> TraceWriter:
    writer: TraceWriter = request.app.state.trace_writer
    return writer


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
RegistrySyncDep = Annotated[RegistrySync, Depends(get_registry_sync)]
DataPlaneDep = Annotated[DataPlane, Depends(get_data_plane)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
TraceWriterDep = Annotated[TraceWriter, Depends(get_trace_writer)]
