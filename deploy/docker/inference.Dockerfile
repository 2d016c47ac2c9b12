# syntax=docker/dockerfile:1.7
# recops inference, CPU (target cpu, the default) or CUDA (target cuda). Build from the repository root:
#   docker build -f deploy/docker/inference.Dockerfile --target cuda \
#       -t registry.example.com/recops/inference:0.1.0-cuda .
# (the chart picks the -cpu or -cuda tag from gpu.enabled)
# Pin the base by digest where the build runs: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Python environment from the project's lock. CPU images take torch's CPU build
# of the locked version and leave out the CUDA libraries.
FROM ${PYTHON_IMAGE} AS build-cpu
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

# The whole lock: torch's CUDA build and the NVIDIA libraries it loads.
FROM ${PYTHON_IMAGE} AS build-cuda
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/recops \
    && /opt/recops/bin/pip install --no-cache-dir --no-deps -r requirements.lock
COPY proto/ proto/
RUN mkdir gen && /opt/recops/bin/python -m grpc_tools.protoc -Iproto \
        --python_out=gen --pyi_out=gen --grpc_python_out=gen proto/recops/v1/events.proto \
        proto/recops/v1/storefront.proto

# CUDA runtime: the GPU driver comes from the node (NVIDIA container toolkit);
# CUDA and cuDNN come with torch's wheels.
# Runtime: the code and the environment, run as an unprivileged user with a
# read-only root file system in mind (scratch space is /tmp).
FROM ${PYTHON_IMAGE} AS cuda
RUN groupadd --system --gid 10001 recops \
    && useradd --system --uid 10001 --gid recops --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin recops
ENV PATH=/opt/recops/bin:$PATH \
    PYTHONPATH=/app:/app/services:/app/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/tmp/huggingface \
    MPLCONFIGDIR=/tmp/matplotlib \
    RECOPS_STATE_DIR=/var/lib/recops \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    RECOPS_INFERENCE_DEVICE=cuda
WORKDIR /app
COPY --from=build-cuda /opt/recops /opt/recops
COPY --from=build-cuda /src/gen /app/gen
COPY eventbus/ /app/eventbus/
COPY services/inference/ /app/services/inference/
USER 10001:10001
EXPOSE 50051 9103
ENTRYPOINT ["python", "-m", "inference"]
CMD []

# Runtime: the code and the environment, run as an unprivileged user with a
# read-only root file system in mind (scratch space is /tmp).
FROM ${PYTHON_IMAGE} AS cpu
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
COPY --from=build-cpu /opt/recops /opt/recops
COPY --from=build-cpu /src/gen /app/gen
COPY eventbus/ /app/eventbus/
COPY services/inference/ /app/services/inference/
USER 10001:10001
EXPOSE 50051 9103
ENTRYPOINT ["python", "-m", "inference"]
CMD []
