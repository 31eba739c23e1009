# The service image used by docker-compose.yml.
# Chart.js for the query explorer, as pinned in package-lock.json (one self-contained file).
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY --from=web /web/node_modules/chart.js/dist/chart.umd.min.js ./node_modules/chart.js/dist/
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY service ./service
COPY index_templates ./index_templates
COPY wsgi.py gunicorn.conf.py ./
RUN useradd --system app
USER app
EXPOSE 8888
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/ready')"
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
