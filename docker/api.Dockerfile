# API image: FastAPI + the Celery client. CPU-only torch (the API never trains, but imports the shared code).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir torch==2.4.1 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY service service
COPY worker worker
COPY migrations migrations
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["ftaas", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
