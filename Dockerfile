# One image for the API (`descent serve`) and the workers (`descent worker`).
# Base images are pinned to exact versions: a rebuild gets the same interpreter and system libraries.
# Build stage: install the pinned dependencies into a virtual environment, then the project.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/descent
# The dependencies first, in a layer of their own, from pyproject.toml and the constraints file only:
# a change to the source reuses this layer instead of installing everything again.
COPY pyproject.toml ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && /opt/descent/bin/pip install -c requirements/constraints.txt -r requirements.txt
COPY README.md ./
COPY engine engine
COPY service service
COPY descent_client descent_client
RUN /opt/descent/bin/pip install --no-deps -c requirements/constraints.txt .

# Runtime stage: the virtual environment only, run as an unprivileged user.
FROM python:3.11.11-slim-bookworm AS runtime
ENV PATH=/opt/descent/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DESCENT_HOST=0.0.0.0 \
    DESCENT_PORT=8000
RUN useradd --system --uid 10001 --home-dir /var/lib/descent --create-home descent
COPY --from=build /opt/descent /opt/descent
USER descent
WORKDIR /var/lib/descent
EXPOSE 8000
# Liveness on the port the service is configured with (DESCENT_PORT), not a fixed one.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DESCENT_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["descent", "serve"]
