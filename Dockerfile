# Self-hosting image for the MCD-AVQA demo: CPU inference, the shipped checkpoint baked in (docs/hosting.md).
#
#   docker build -t mcd-avqa .                  # podman: add --format docker, or the HEALTHCHECK is dropped
#   docker run --rm -p 7860:7860 mcd-avqa       # http://127.0.0.1:7860
#
# Limits and the mount point come from the environment: MCD_MAX_FILE_MB, MCD_MAX_DURATION_S, MCD_CONCURRENCY,
# MCD_CHECKPOINT, GRADIO_SERVER_NAME, GRADIO_SERVER_PORT, GRADIO_ROOT_PATH.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Empty: torch as pinned in requirements.txt from PyPI (a CUDA build that runs on the CPU; ~7 GB installed).
# https://download.pytorch.org/whl/cpu installs the same pinned versions as CPU-only wheels (~1 GB less network
# and ~5 GB less disk).
ARG TORCH_INDEX_URL=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860

# uid 1000, as Hugging Face Docker Spaces expect; the code stays owned by root (read-only for the server).
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app \
 && python -m venv /opt/venv

COPY requirements.txt /tmp/requirements.txt
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        grep -E '^(torch|torchaudio)==' /tmp/requirements.txt | xargs pip install --index-url "$TORCH_INDEX_URL"; \
    fi \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

WORKDIR /app
COPY . /app

USER app
# Fail the build now, not at the first request, when the checkpoint is missing or a Git LFS pointer, or a model
# file would need the network; this also builds matplotlib's font cache in the app user's home.
RUN python -c "import app; app.create_app()" && rm -rf /tmp/mcd-app-*

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/gradio_api/info' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=8)"
# Python as PID 1 ignores SIGTERM (no default action for PID 1); SIGINT stops Gradio's server cleanly at once.
STOPSIGNAL SIGINT
CMD ["python", "app.py"]
