# The same service as `make run`, for a server: non-root, listening on all interfaces.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
RUN useradd --create-home --uid 10001 bot && mkdir -p /app/data && chown bot:bot /app/data
USER bot
EXPOSE 8080
# Production mode: give it BOT_SECRET_KEY (serve refuses to start without one), BOT_PUBLIC_BASE_URL
# and DATABASE_URL, e.g. docker run -e BOT_SECRET_KEY=$(openssl rand -hex 32) …
CMD ["python", "run_bot.py", "serve", "--host", "0.0.0.0", "--port", "8080"]
