FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core core
COPY bots bots
COPY ussd ussd
COPY web web
COPY sim sim
COPY migrations migrations
COPY docs/guides docs/guides
RUN pip install --no-cache-dir . && useradd --system --uid 10001 lipapush \
    && mkdir -p /var/lib/lipapush/exports && chown lipapush /var/lib/lipapush/exports
USER lipapush
EXPOSE 8000
CMD ["lipapush", "web", "--host", "0.0.0.0", "--port", "8000"]
