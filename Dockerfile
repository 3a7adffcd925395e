FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY gateway gateway
COPY search search
COPY outbound outbound
COPY migrations migrations
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
