# One image for the API (`descent serve`) and the workers (`descent worker`).
# Build stage: resolve and install the pinned dependencies into a virtual environment.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/descent
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY engine engine
COPY service service
COPY descent_client descent_client
RUN /opt/descent/bin/pip install -c requirements/constraints.txt .

# Runtime stage: the virtual environment only, run as an unprivileged user.
FROM python:3.11-slim AS runtime
ENV PATH=/opt/descent/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DESCENT_HOST=0.0.0.0 \
    DESCENT_PORT=8000
RUN useradd --system --uid 10001 --home-dir /var/lib/descent --create-home descent
COPY --from=build /opt/descent /opt/descent
USER descent
WORKDIR /var/lib/descent
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2); sys.exit(0)"]
STOPSIGNAL SIGTERM
CMD ["descent", "serve"]
