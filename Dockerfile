# w2vjax image.  CPU JAX by default; a build argument picks CUDA or TPU JAX instead.
#
#   docker build -t w2vjax .                                   # CPU (jax from PyPI)
#   docker build --build-arg JAX_EXTRA=cuda12 -t w2vjax:cuda . # NVIDIA GPUs: run with --gpus all
#   docker build --build-arg JAX_EXTRA=tpu -t w2vjax:tpu .     # Cloud TPU VM: run with --privileged --net=host
#
#   docker run --rm w2vjax          # the default command: the test suite, then the embedded default job
#   docker run --rm -v /path/to/corpora:/data -v $PWD/runs:/runs w2vjax \
#       w2vjax train /data/corpus.txt --workdir /runs/demo
#   docker run --rm -v /path/to/corpora:/data -v $PWD/work:/app/experiments/work \
#       -v $PWD/experiments/results:/app/experiments/results w2vjax \
#       python -m experiments.run objectives --corpus /data/enwiki2015_text8style.zip
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# "" (CPU), "cuda12" or "tpu": installs jax[$JAX_EXTRA] at the version of the jax already installed
ARG JAX_EXTRA=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# a C++ compiler for the fused CPU kernel (w2vjax/kernels/, built on first use; without one the
# trainer runs the plain XLA step)
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*

# dependencies first (a layer that survives source edits), then the source
COPY pyproject.toml README.md ./
COPY w2vjax ./w2vjax
RUN pip install -e ".[test,experiments]" \
 && if [ -n "$JAX_EXTRA" ]; then \
        pip install "jax[${JAX_EXTRA}]==$(python -c 'import jax; print(jax.__version__)')"; \
    fi \
 && python -c "import jax; print('jax', jax.__version__, jax.default_backend())" \
 && python -c "from w2vjax import kernel; print('CPU kernel', kernel.available())"

COPY benchmarks ./benchmarks
COPY experiments ./experiments
COPY tests ./tests

# the demo: CBOW/NS on the embedded 2.1 M-word text8 sample, then evaluation.
# The tests instead: docker run --rm IMAGE python -m pytest -q
CMD ["w2vjax", "train", "--workdir", "/tmp/demo"]
