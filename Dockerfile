FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY pantau ./pantau
COPY ingest ./ingest
COPY processors ./processors
COPY alerts ./alerts
COPY grafana ./grafana
COPY devices ./devices
RUN pip install --no-cache-dir . && useradd --system --uid 10001 pantau \
    && mkdir -p /var/lib/pantau && chown pantau /var/lib/pantau
USER pantau
EXPOSE 8080
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
CMD ["pantau", "run"]
