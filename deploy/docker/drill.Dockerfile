# syntax=docker/dockerfile:1.7
# recops drill. Build from the repository root:
#   docker build -f deploy/docker/drill.Dockerfile -t registry.example.com/recops/drill:0.1.0 .
# Pin the base by digest where the build runs: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Python environment from the project's lock. CPU images take torch's CPU build
# of the locked version and leave out the CUDA libraries.
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY requirements.lock ./
RUN grep -vE '^(nvidia-|cuda-|triton==|torch==)' requirements.lock > requirements-cpu.txt \
    && python -m venv /opt/recops \
    && /opt/recops/bin/pip install --no-cache-dir --no-deps -r requirements-cpu.txt \
    && /opt/recops/bin/pip install --no-cache-dir --no-deps --index-url "${TORCH_CPU_INDEX}" \
        "torch==$(sed -n 's/^torch==//p' requirements.lock)+cpu"
COPY proto/ proto/
RUN mkdir gen && /opt/recops/bin/python -m grpc_tools.protoc -Iproto \
        --python_out=gen --pyi_out=gen --grpc_python_out=gen proto/recops/v1/events.proto \
        proto/recops/v1/storefront.proto

# Runtime: the code and the environment, run as an unprivileged user with a
# read-only root file system in mind (scratch space is /tmp).
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 recops \
    && useradd --system --uid 10001 --gid recops --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin recops
ENV PATH=/opt/recops/bin:$PATH \
    PYTHONPATH=/app:/app/services:/app/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    RECOPS_STATE_DIR=/var/lib/recops
WORKDIR /app
COPY --from=build /opt/recops /opt/recops
COPY --from=build /src/gen /app/gen
COPY eventbus/ /app/eventbus/
COPY services/drill/ /app/services/drill/
USER 10001:10001
EXPOSE 9105
ENTRYPOINT ["python", "-m", "drill"]
CMD []
