"""OAuth2 password flow: a username and password in, a signed JWT out; user management."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.errors import ConflictError, NotFoundError, UnauthorizedError
from api.schemas import ErrorResponse, TokenResponse, UserCreate, UserPublic, UserUpdate
from api.security import AdminUser, CurrentUser, authenticate, create_access_token, hash_password
from db.tables import Role, User
from db.users import UserExistsError, create_user, get_user, list_users, update_user

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses={401: {"model": ErrorResponse, "description": "Wrong username or password"}},
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> TokenResponse:
    """Log in (form fields ``username`` and ``password``) and get a bearer token."""
    # Password hashing is deliberately slow: keep it off the event loop.
    user = await run_in_threadpool(authenticate, session, form.username, form.password)
    if user is None:
        raise UnauthorizedError("wrong username or password")
    token = create_access_token(user, settings.jwt_secret, settings.access_token_minutes)
    return TokenResponse(
        access_token=token, expires_in=settings.access_token_minutes * 60, role=user.role
    )


@router.get("/auth/me", response_model=UserPublic, responses={401: {"model": ErrorResponse}})
def who_am_i(user: CurrentUser) -> UserPublic:
    """The user the token belongs to."""
    return _public(user)


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def users(session: SessionDep, _admin: AdminUser) -> list[UserPublic]:
    """Every user (admin)."""
    return [_public(user) for user in list_users(session)]


# Sync routes: FastAPI runs them in its thread pool, off the event loop, since password
# hashing is deliberately slow and the commits block.
@router.post("/users", response_model=UserPublic, status_code=201, tags=["users"])
def add_user(body: UserCreate, session: SessionDep, _admin: AdminUser) -> UserPublic:
    """Create a viewer or an admin (admin)."""
    try:
        user = create_user(session, body.username, hash_password(body.password), Role(body.role))
    except UserExistsError as error:
        raise ConflictError(str(error)) from error
    return _public(user)


@router.patch(
    "/users/{username}",
    response_model=UserPublic,
    tags=["users"],
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
def change_user(
    username: str, body: UserUpdate, session: SessionDep, admin: AdminUser
) -> UserPublic:
    """Change a user's password or role, or disable it (admin); its tokens stop working."""
    user = get_user(session, username)
    if user is None:
        raise NotFoundError(f"no user named '{username}'")
    if user.username == admin.username and (body.is_active is False or body.role == Role.VIEWER):
        raise ConflictError("an admin cannot disable or demote itself")
    hashed = hash_password(body.password) if body.password else None
    role = Role(body.role) if body.role else None
    return _public(
        update_user(session, user, hashed_password=hashed, role=role, is_active=body.is_active)
    )


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)
