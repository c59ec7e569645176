"""OAuth2 password flow: a username and password in, a signed JWT out; user management."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.errors import ConflictError, NotFoundError, UnauthorizedError
from api.schemas import TokenResponse, UserCreate, UserPublic, UserUpdate, error_responses
from api.security import (
    AdminUser,
    CurrentUser,
    LoginGuardDep,
    client_address,
    create_access_token,
    hash_password,
    log_in,
)
from db.tables import Role, User
from db.users import (
    UserExistsError,
    any_user_exists,
    create_user,
    get_user,
    list_users,
    update_user,
)

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    responses=error_responses(
        401,
        422,
        429,
        503,
        descriptions={
            401: "Wrong username or password",
            429: "Too many failed logins (see Retry-After)",
            503: "Too many logins at once, or no database",
        },
    ),
)
async def issue_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    guard: LoginGuardDep,
) -> TokenResponse:
    """Log in (form fields ``username``, case-insensitive, and ``password``); get a token.

    Failed logins are limited per username and per client address (429 with Retry-After).
    """
    user = await log_in(guard, session, form.username, form.password, client_address(request))
    if user is None:
        raise UnauthorizedError(await _login_failed_message(session))
    token = create_access_token(user, settings.jwt_secret, settings.access_token_minutes)
    return TokenResponse(
        access_token=token, expires_in=settings.access_token_minutes * 60, role=user.role
    )


_NO_USER_YET = (
    "wrong username or password: no user exists yet; start the API with ADMIN_USERNAME and "
    "ADMIN_PASSWORD set, or run `python -m api.manage create-user NAME --role admin`"
)


async def _login_failed_message(session: SessionDep) -> str:
    """Why a login failed; a fresh install, with no user at all, is told how to make one."""
    if await run_in_threadpool(any_user_exists, session):
        return "wrong username or password"
    return _NO_USER_YET


@router.get("/auth/me", response_model=UserPublic, responses=error_responses(401, 503))
def who_am_i(user: CurrentUser) -> UserPublic:
    """The user the token belongs to."""
    return _public(user)


_ADMIN_ERRORS = error_responses(401, 403, 503)
_USER_CONFLICT = {409: "A user of this name exists already (names are case-insensitive)"}


@router.get("/users", response_model=list[UserPublic], tags=["users"], responses=_ADMIN_ERRORS)
def users(session: SessionDep, _admin: AdminUser) -> list[UserPublic]:
    """Every user (admin)."""
    return [_public(user) for user in list_users(session)]


# Sync routes: FastAPI runs them in its thread pool, off the event loop, since the commits
# block; they hash passwords on the guard's hasher, as logins do.
@router.post(
    "/users",
    response_model=UserPublic,
    status_code=201,
    tags=["users"],
    responses=error_responses(401, 403, 409, 422, 503, descriptions=_USER_CONFLICT),
)
def add_user(
    body: UserCreate, session: SessionDep, guard: LoginGuardDep, _admin: AdminUser
) -> UserPublic:
    """Create a viewer or an admin (admin); names are stored in lowercase."""
    hashed = guard.hasher.run_blocking(hash_password, body.password)
    try:
        user = create_user(session, body.username, hashed, Role(body.role))
    except UserExistsError as error:
        raise ConflictError(str(error)) from error
    return _public(user)


@router.patch(
    "/users/{username}",
    response_model=UserPublic,
    tags=["users"],
    responses=error_responses(
        401,
        403,
        404,
        409,
        422,
        503,
        descriptions={
            404: "No user of this name",
            409: "An admin cannot disable or demote itself",
        },
    ),
)
def change_user(
    username: str, body: UserUpdate, session: SessionDep, guard: LoginGuardDep, admin: AdminUser
) -> UserPublic:
    """Change a user's password or role, or disable it (admin).

    A new password or a disabling revokes the user's tokens (a role change does not: each
    request reads the role from the database).
    """
    user = get_user(session, username)
    if user is None:
        raise NotFoundError(f"no user named '{username}'")
    if user.username == admin.username and (body.is_active is False or body.role == Role.VIEWER):
        raise ConflictError("an admin cannot disable or demote itself")
    hashed = guard.hasher.run_blocking(hash_password, body.password) if body.password else None
    role = Role(body.role) if body.role else None
    return _public(
        update_user(session, user, hashed_password=hashed, role=role, is_active=body.is_active)
    )


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)
