"""Upload this repository to its Hugging Face Space, which then rebuilds and restarts.

Run by .github/workflows/deploy.yml after CI passed on main. Environment: HF_TOKEN (a token
with write access to the Space), HF_SPACE_ID (``owner/name``), GIT_COMMIT (the commit
deployed, shown by GET /metadata). ``--dry-run`` lists what would be uploaded, offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

ROOT = Path(__file__).resolve().parents[1]
# Never uploaded: VCS data, local environments and databases, secrets, caches.
IGNORE_PATTERNS = [
    ".git/",
    ".venv/",
    "data/",
    ".env",
    "*__pycache__*",
    "*.pyc",
    ".pytest_cache/",
    ".mypy_cache/",
    "htmlcov/",
    ".coverage",
    "coverage.xml",
]


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
        "--dry-run",
        action="store_true",
        help="list the files that would be uploaded, and upload nothing",
    )
    args = parser.parse_args(argv)

    if args.dry_run:
        files = (path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*") if path.is_file())
        print("\n".join(sorted(filter_repo_objects(files, ignore_patterns=IGNORE_PATTERNS))))
        return 0
    if not args.space:
        parser.error("which Space? Set HF_SPACE_ID or pass --space owner/name")
    token = os.environ.get("HF_TOKEN")
    if not token:
        parser.error("HF_TOKEN is not set: add it to the repository's Actions secrets")

    api = HfApi(token=token)
    api.create_repo(args.space, repo_type="space", space_sdk="docker", exist_ok=True)
    # A Space passes its variables to the Docker build as arguments: this becomes the image's
    # GIT_COMMIT. Set before the upload, so that the build the upload starts sees it.
    api.add_space_variable(args.space, "GIT_COMMIT", args.commit)
    info = api.upload_folder(
        repo_id=args.space,
        repo_type="space",
        folder_path=ROOT,
        ignore_patterns=IGNORE_PATTERNS,
        # Mirror the repository: files deleted on GitHub go from the Space too.
        delete_patterns="*",
        commit_message=f"Deploy {args.commit} from GitHub Actions",
    )
    print(f"uploaded {args.commit} to the Space {args.space}: {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
