# The Hugging Face Space image (Docker SDK): nginx on port 7860 serves the API at / and the
# Streamlit dashboard at /dashboard/, all supervised; see deploy/start.sh.
FROM python:3.11-slim-bookworm

# nginx is the only system package: every Python dependency installs from a wheel, so no
# compiler enters the image. Not pinned to a version: Debian's security updates replace it,
# and a pinned version would stop the Space from building.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*

# The Space runs the container as user 1000.
RUN useradd --create-home --uid 1000 user
ENV HOME=/home/user \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /home/user/app

# Requirements before the code, so that a code change reuses the installed layer. The
# virtualenv belongs to root: the app cannot modify its own dependencies.
COPY requirements.txt ./
COPY deploy/install-deps.sh deploy/requirements-space.txt deploy/
RUN sh deploy/install-deps.sh /opt/venv

COPY --chown=1000:1000 . .
USER 1000

# The Space passes its variables as build arguments: push_to_space.py sets GIT_COMMIT.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=$GIT_COMMIT \
    ENV=prod \
    PORT=7860 \
    RUN_DIR=/tmp/futurisys-space

EXPOSE 7860
# Through nginx to the API, so both must be up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['PORT'] + '/health', timeout=4)"]
# Through sh: an upload to the Space does not keep the scripts' executable bit.
CMD ["sh", "deploy/start.sh"]
