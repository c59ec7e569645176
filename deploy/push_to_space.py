"""Prepare the Hugging Face Space for this commit, and upload the files its image needs.

Run by .github/workflows/deploy.yml after CI passed on main: there, ``--stage DIR`` copies
the files to DIR and configures the Space, and the huggingface/hub-sync action uploads DIR.
Run by hand without ``--stage``, it uploads them itself. The files are the Docker build
context: the tracked files less what .dockerignore leaves out, plus the Dockerfile (and
README.md, whose YAML header configures the Space). Configuring means: the Space created as
a Docker Space if missing, its GIT_COMMIT variable (what GET /metadata shows) set before the
upload starts the build, and with ``--bucket``, a storage bucket (created private if missing)
mounted as a volume where deploy/start.sh looks for one. ``--dry-run`` says what it would do,
offline, without a token.

Environment: HF_TOKEN (a token with write access to the Space), HF_SPACE_ID (``owner/name``),
GIT_COMMIT (the commit deployed), HF_BUCKET_ID (``owner/name`` of the bucket, optional).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi, Volume
from huggingface_hub.errors import HfHubHTTPError

ROOT = Path(__file__).resolve().parents[1]
# deploy/start.sh's BUCKET_DIR default: where the trace log goes when a bucket is there.
BUCKET_MOUNT = "/data"
# .dockerignore leaves itself and the Dockerfile out of the image; the Space needs both.
BUILD_FILES = ["Dockerfile", ".dockerignore"]


def space_files(root: Path = ROOT) -> list[str]:
    """The files the Space's image is built from: the build context, and its Dockerfile."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    patterns = _dockerignore_patterns(root / ".dockerignore")
    context = [path for path in tracked if path and not _ignored(path, patterns)]
    return sorted({*context, *BUILD_FILES})


def _dockerignore_patterns(path: Path) -> list[str]:
    patterns = []
    for line in path.read_text().splitlines():
        pattern = line.strip().strip("/")
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.startswith("!"):
            # Not needed so far; refused rather than misread.
            raise ValueError(f".dockerignore: exceptions ({pattern}) are not supported here")
        patterns.append(pattern)
    return patterns


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a pattern matching a folder leaves out everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            name = prefix.rsplit("/", 1)[-1]
            if pattern.startswith("**/") and fnmatch.fnmatchcase(name, pattern[3:]):
                return True
    return False


def stage(files: list[str], destination: Path, root: Path = ROOT) -> None:
    """Copy ``files`` to ``destination``, which must be empty or absent."""
    if destination.exists() and any(destination.iterdir()):
        raise SystemExit(f"{destination} is not empty: the upload mirrors it, so it must be")
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def configure(api: HfApi, space: str, commit: str, bucket: str | None) -> None:
    """The Space as a Docker Space, its GIT_COMMIT, and the bucket volume when asked."""
    try:
        api.create_repo(space, repo_type="space", space_sdk="docker", exist_ok=True)
    except HfHubHTTPError as error:
        raise SystemExit(
            f"could not create or reach the Space {space}: {error}\n"
            "(Creating a Docker Space needs a paid Hugging Face plan since 2026-07-21.)"
        ) from error
    # A Space passes its variables to the Docker build as arguments: this becomes the image's
    # GIT_COMMIT. Set before the upload, so that the build the upload starts sees it.
    api.add_space_variable(space, "GIT_COMMIT", commit)
    if bucket:
        api.create_bucket(bucket, private=True, exist_ok=True)
        # set_space_volumes replaces the list: keep the volumes mounted elsewhere.
        current = api.get_space_runtime(space).volumes or []
        others = [volume for volume in current if volume.mount_path != BUCKET_MOUNT]
        api.set_space_volumes(space, [*others, bucket_volume(bucket)])


def bucket_volume(bucket: str) -> Volume:
    return Volume(type="bucket", source=bucket, mount_path=BUCKET_MOUNT, read_only=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--space",
        default=os.environ.get("HF_SPACE_ID"),
        help="owner/name of the Space (default: HF_SPACE_ID)",
    )
    parser.add_argument(
        "--commit",
        default=os.environ.get("GIT_COMMIT", "unknown"),
        help="the commit deployed (default: GIT_COMMIT)",
    )
    parser.add_argument(
        "--bucket",
        default=os.environ.get("HF_BUCKET_ID") or None,
        help=f"owner/name of a storage bucket to mount at {BUCKET_MOUNT} (default: HF_BUCKET_ID)",
    )
    parser.add_argument(
        "--stage",
        type=Path,
        metavar="DIR",
        help="copy the files to DIR for another tool to upload (hub-sync), not upload them",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the files and what would be done, change nothing on the Hub",
    )
    args = parser.parse_args(argv)

    files = space_files()
    if args.stage:
        stage(files, args.stage)
    if args.dry_run:
        print("\n".join(files))
        print(f"# {len(files)} files; would create {args.space or '<HF_SPACE_ID>'} (sdk docker)")
        print(f"# would set the Space variable GIT_COMMIT={args.commit}")
        if args.bucket:
            print(f"# would mount {bucket_volume(args.bucket).to_uri()}")
        print("# would upload nothing: --stage" if args.stage else "# would upload the files")
        return 0
    if not args.space:
        parser.error("which Space? Set HF_SPACE_ID or pass --space owner/name")
    token = os.environ.get("HF_TOKEN")
    if not token:
        parser.error("HF_TOKEN is not set: add it to the repository's Actions secrets")

    api = HfApi(token=token)
    configure(api, args.space, args.commit, args.bucket)
    if args.stage:
        print(f"configured the Space {args.space} for {args.commit}; {args.stage} to upload")
        return 0
    info = api.upload_folder(
        repo_id=args.space,
        repo_type="space",
        folder_path=ROOT,
        allow_patterns=files,
        # Mirror the repository: files deleted on GitHub go from the Space too.
        delete_patterns="*",
        commit_message=f"Deploy {args.commit} from GitHub Actions",
    )
    print(f"uploaded {args.commit} to the Space {args.space}: {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
