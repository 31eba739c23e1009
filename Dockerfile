# The service image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
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
